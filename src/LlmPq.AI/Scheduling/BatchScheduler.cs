using System.Diagnostics;

namespace LlmPq.Scheduling;

/// <summary>
/// Plans the engine's iterations under one <see cref="SchedulingPolicy"/>. The policies share the accounting and
/// differ only in what one iteration carries. KV capacity is counted in tokens: a request is admitted, first come
/// first served, only when the cache can hold all of its tokens, and when the running decodes would overflow it
/// the youngest sequence is evicted and recomputed later. No iteration carries more than the token budget, except
/// that a decode is never split, so running decodes alone may outnumber a budget smaller than the sequence count.
/// </summary>
/// <remarks>
/// Under <see cref="SchedulingPolicy.PrefillFirst"/> a prompt longer than the budget is prefilled in budget-sized
/// chunks, in prefill-only iterations that run before any decode. vLLM (2023) would run it whole, but one
/// <c>llama_decode</c> takes at most <c>n_batch</c> tokens, which the engine sizes to the budget; raising it to the
/// context length would enlarge the compute buffers of every policy and make the comparison unfair. Chunking keeps
/// what the policy is compared for (decodes stall until the whole prompt is in the cache) and the budget strict.
/// </remarks>
internal sealed class BatchScheduler
{
    private readonly SchedulingPolicy _policy;
    private readonly int _kvCapacity;
    private readonly Stack<int> _freeSlots;
    private int _tokenBudget;
    private bool _prefillTurn = true;

    /// <summary>Creates a scheduler.</summary>
    /// <param name="policy">What one iteration carries.</param>
    /// <param name="tokenBudget">The most tokens of one iteration (decodes are never skipped, so they may use all of it).</param>
    /// <param name="kvCapacity">The KV cache size in tokens, shared by all sequences.</param>
    /// <param name="slots">The number of sequence slots (llama.cpp's <c>n_seq_max</c>).</param>
    public BatchScheduler(SchedulingPolicy policy, int tokenBudget, int kvCapacity, int slots)
    {
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown scheduling policy.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvCapacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        _policy = policy;
        TokenBudget = tokenBudget;
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

    /// <summary>Gets the running sequences in their decode phase.</summary>
    public int Decodes => Running.Count(s => s.IsDecoding);

    /// <summary>Gets or sets the token budget of one iteration; the engine may retune it between iterations, and metrics read it from any thread.</summary>
    public int TokenBudget
    {
        get => Volatile.Read(ref _tokenBudget);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            Volatile.Write(ref _tokenBudget, value);
        }
    }

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
        while (Running.Count > 1 && KvTokensReserved + Decodes > _kvCapacity)
        {
            preempted.Add(EvictYoungest());
        }

        var entries = new List<BatchEntry>();
        var admitted = new List<SequenceState>();
        switch (_policy)
        {
            case SchedulingPolicy.Sarathi:
                AddDecodes(entries);
                AddPrefills(entries, admitted, Admission.Chunks);
                break;

            case SchedulingPolicy.PrefillFirst:
                AddPrefills(entries, admitted, Admission.WholePrompts);
                AddDecodesIfIdle(entries);
                break;

            case SchedulingPolicy.RequestLevel:
                // A batch is admitted at once while nothing decodes, prefilled, then decoded until its last request ends.
                AddPrefills(entries, admitted, Decodes == 0 ? Admission.Batch : Admission.None);
                AddDecodesIfIdle(entries);
                break;

            case SchedulingPolicy.ChunkedOnly:
                if (_prefillTurn)
                {
                    AddPrefills(entries, admitted, Admission.Chunks);
                    AddDecodesIfIdle(entries);
                }
                else
                {
                    AddDecodes(entries);
                    if (entries.Count == 0)
                    {
                        AddPrefills(entries, admitted, Admission.Chunks);
                    }
                }

                if (entries.Count > 0)
                {
                    _prefillTurn = entries[0].IsDecode;
                }

                break;

            default:
                throw new UnreachableException();
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

    private void AddDecodes(List<BatchEntry> entries)
    {
        foreach (SequenceState s in Running)
        {
            if (s.IsDecoding)
            {
                entries.Add(new BatchEntry(s, 1));
            }
        }
    }

    /// <summary>Adds the decodes only to an iteration that has nothing else: the policies that never mix.</summary>
    private void AddDecodesIfIdle(List<BatchEntry> entries)
    {
        if (entries.Count == 0)
        {
            AddDecodes(entries);
        }
    }

    /// <summary>Fills what is left of the budget with chunks of the prompts being prefilled, then admits new requests first come first served.</summary>
    private void AddPrefills(List<BatchEntry> entries, List<SequenceState> admitted, Admission admission)
    {
        int budget = TokenBudget - entries.Sum(e => e.Count);
        foreach (SequenceState s in Running)
        {
            if (budget <= 0)
            {
                return;
            }

            if (!s.IsDecoding && s.Pending > 0)
            {
                int take = Math.Min(s.Pending, budget);
                entries.Add(new BatchEntry(s, take));
                budget -= take;
            }
        }

        int reserved = KvTokensReserved + Decodes;
        while (admission != Admission.None && (budget > 0 || admission == Admission.Batch) && Waiting.Count > 0 && _freeSlots.Count > 0)
        {
            SequenceState head = Waiting[0];
            if (reserved + head.Tokens.Count + 1 > _kvCapacity && Running.Count > 0)
            {
                return; // first come, first served: nobody overtakes the head while it waits for room
            }

            if (admission == Admission.WholePrompts && head.Pending > budget && entries.Count > 0)
            {
                return; // the head waits for an iteration of its own rather than be split behind others
            }

            Waiting.RemoveAt(0);
            head.Admit(_freeSlots.Pop());
            Running.Add(head);
            admitted.Add(head);
            reserved += head.Tokens.Count;
            int take = Math.Min(head.Pending, budget);
            if (take > 0)
            {
                entries.Add(new BatchEntry(head, take));
                budget -= take;
            }
        }
    }

    private void InsertWaiting(SequenceState sequence)
    {
        int i = Waiting.FindIndex(w => w.Id > sequence.Id);
        Waiting.Insert(i < 0 ? Waiting.Count : i, sequence);
    }

    /// <summary>Which new requests an iteration admits.</summary>
    private enum Admission
    {
        /// <summary>None.</summary>
        None,

        /// <summary>Those the budget has room for, the last one possibly as a first chunk.</summary>
        Chunks,

        /// <summary>Those whose whole prompt fits what is left of the budget; an iteration's first prompt may be chunked, so a prompt over the budget still runs.</summary>
        WholePrompts,

        /// <summary>Every one the slots and the cache hold, as one batch; those the budget has no room for yet are prefilled in the next iterations.</summary>
        Batch,
    }
}
