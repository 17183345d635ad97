namespace LlmPq.Scheduling;

/// <summary>
/// Sarathi-Serve's stall-free batching: every iteration takes one token of every running decode, then chunks of the
/// prompts being prefilled, then new requests first come first served, until the token budget is spent. KV capacity
/// is accounted in tokens: a request is admitted only when the cache can hold all of its tokens, and when running
/// sequences would overflow it the youngest is evicted and recomputed later.
/// </summary>
internal sealed class StallFreeScheduler
{
    private readonly int _tokenBudget;
    private readonly int _kvCapacity;
    private readonly Stack<int> _freeSlots;

    /// <summary>Creates a scheduler.</summary>
    /// <param name="tokenBudget">The most tokens of one iteration (decodes are never skipped, so they may use all of it).</param>
    /// <param name="kvCapacity">The KV cache size in tokens, shared by all sequences.</param>
    /// <param name="slots">The number of sequence slots (llama.cpp's <c>n_seq_max</c>).</param>
    public StallFreeScheduler(int tokenBudget, int kvCapacity, int slots)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokenBudget);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvCapacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        _tokenBudget = tokenBudget;
        _kvCapacity = kvCapacity;
        _freeSlots = new Stack<int>(Enumerable.Range(0, slots).Reverse());
    }

    /// <summary>Gets the sequences holding a slot, in admission order.</summary>
    public List<SequenceState> Running { get; } = [];

    /// <summary>Gets the sequences waiting for a slot, in arrival order (evicted ones go back by arrival).</summary>
    public List<SequenceState> Waiting { get; } = [];

    /// <summary>Gets the KV tokens the resident sequences hold or have reserved.</summary>
    public int KvTokensReserved => Running.Sum(s => s.Tokens.Count);

    /// <summary>Gets the KV tokens actually in the cache.</summary>
    public int KvTokensCached => Running.Sum(s => s.Cached);

    /// <summary>Gets the token budget of one iteration.</summary>
    public int TokenBudget => _tokenBudget;

    /// <summary>Queues a new request behind every earlier one.</summary>
    public void Enqueue(SequenceState sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        InsertWaiting(sequence);
    }

    /// <summary>Takes a sequence out wherever it is (finished, cancelled or failed) and frees its slot.</summary>
    public void Remove(SequenceState sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.IsResident)
        {
            _freeSlots.Push(sequence.Slot);
            Running.Remove(sequence);
        }
        else
        {
            Waiting.Remove(sequence);
        }

        sequence.Release();
    }

    /// <summary>Plans the next iteration; returns null when there is nothing to run.</summary>
    public BatchPlan? Plan()
    {
        var preempted = new List<Eviction>();

        // Every decode grows by one token; evict the youngest until the cache holds them all.
        while (Running.Count > 1 && KvTokensReserved + Running.Count(s => s.IsDecoding) > _kvCapacity)
        {
            preempted.Add(EvictYoungest());
        }

        var entries = new List<BatchEntry>();
        int budget = _tokenBudget;
        foreach (SequenceState s in Running)
        {
            if (s.IsDecoding)
            {
                entries.Add(new BatchEntry(s, 1));
                budget--;
            }
        }

        foreach (SequenceState s in Running)
        {
            if (budget <= 0)
            {
                break;
            }

            if (!s.IsDecoding && s.Pending > 0)
            {
                int take = Math.Min(s.Pending, budget);
                entries.Add(new BatchEntry(s, take));
                budget -= take;
            }
        }

        var admitted = new List<SequenceState>();
        int reserved = KvTokensReserved + entries.Count(e => e.IsDecode);
        while (budget > 0 && Waiting.Count > 0 && _freeSlots.Count > 0)
        {
            SequenceState head = Waiting[0];
            if (reserved + head.Tokens.Count + 1 > _kvCapacity && Running.Count > 0)
            {
                break; // first come, first served: nobody overtakes the head while it waits for room
            }

            Waiting.RemoveAt(0);
            head.Admit(_freeSlots.Pop());
            Running.Add(head);
            admitted.Add(head);
            reserved += head.Tokens.Count;
            int take = Math.Min(head.Pending, budget);
            entries.Add(new BatchEntry(head, take));
            budget -= take;
        }

        return entries.Count == 0 && preempted.Count == 0 ? null : new BatchPlan(preempted, admitted, entries);
    }

    /// <summary>
    /// Evicts the most recently admitted sequence (it is recomputed when readmitted). The engine calls it when
    /// llama.cpp finds no room for a batch the token accounting allowed (for example a fragmented cache).
    /// </summary>
    public Eviction EvictYoungest()
    {
        SequenceState youngest = Running[^1];
        var eviction = new Eviction(youngest, youngest.Slot);
        _freeSlots.Push(youngest.Slot);
        Running.RemoveAt(Running.Count - 1);
        youngest.Evict();
        InsertWaiting(youngest);
        return eviction;
    }

    private void InsertWaiting(SequenceState sequence)
    {
        int i = Waiting.FindIndex(w => w.Id > sequence.Id);
        Waiting.Insert(i < 0 ? Waiting.Count : i, sequence);
    }
}
