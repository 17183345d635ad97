using System.Diagnostics;

namespace LlmPq.Scheduling;

/// <summary>
/// Plans the engine's iterations under one <see cref="SchedulingPolicy"/>. The policies share the accounting and
/// differ only in what one iteration carries. KV capacity is counted in tokens: a request is admitted, first come
/// first served, only when the cache can hold all of its tokens, and when the running decodes would overflow it
/// the youngest sequence is evicted and recomputed later. No iteration carries more than the token budget, except
/// that a decode is never split, so running decodes alone may outnumber a budget smaller than the sequence count,
/// and that an iteration with no decode to protect takes its first prompt whole, up to the batch limit (<c>n_batch</c>),
/// and every waiting prompt up to that limit with <see cref="FillBatchWhenIdle"/>.
/// </summary>
/// <remarks>
/// <para>
/// With prefix reuse, a finished sequence leaves its cells in its slot: a new request takes the free slot whose cells
/// share the longest prefix with its tokens and computes only the rest (never its last token, whose logits it samples
/// from). Those cells count as KV in use; when admission or running decodes need the room, or a request needs a slot
/// and none is empty, the least recently used cache goes first, before any running sequence is evicted.
/// With <see cref="PrefixCopy"/>, a running sequence's computed prefix is copied too, and the queue's head waits while
/// a running sequence prefills a long prefix it shares, so that a burst sharing a system prompt computes it once.
/// </para>
/// <para>
/// Under <see cref="SchedulingPolicy.PrefillFirst"/>, while decodes wait, a prompt longer than the budget is prefilled
/// in budget-sized chunks, in prefill-only iterations that run before any decode. vLLM (2023) would run it whole; the
/// budget keeps the policies' iterations comparable. Chunking keeps what the policy is compared for (decodes stall
/// until the whole prompt is in the cache) and the budget strict.
/// </para>
/// </remarks>
internal sealed class BatchScheduler
{
    private readonly SchedulingPolicy _policy;
    private readonly int _kvCapacity;
    private readonly int _batchLimit;
    private readonly Slot[] _slots;
    private int _tokenBudget;
    private long _clock;
    private bool _prefillTurn = true;

    /// <summary>Creates a scheduler.</summary>
    /// <param name="policy">What one iteration carries.</param>
    /// <param name="tokenBudget">The most tokens of one iteration (decodes are never skipped, so they may use all of it).</param>
    /// <param name="kvCapacity">The KV cache size in tokens, shared by all sequences.</param>
    /// <param name="slots">The number of sequence slots (llama.cpp's <c>n_seq_max</c>).</param>
    /// <param name="batchLimit">The most tokens of one <c>llama_decode</c> (<c>n_batch</c>), which an iteration without decodes fills; null keeps every iteration within the budget.</param>
    /// <param name="prefixReuse">Whether finished sequences leave their cells for later requests that share a prefix.</param>
    public BatchScheduler(SchedulingPolicy policy, int tokenBudget, int kvCapacity, int slots, int? batchLimit = null, bool prefixReuse = false)
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
        _batchLimit = batchLimit ?? 0;
        _slots = [.. Enumerable.Range(0, slots).Select(i => new Slot(i))];
        PrefixReuse = prefixReuse;
    }

    /// <summary>Gets or sets a value indicating whether finished sequences leave their cells for later requests; turning it off forgets no cache already kept.</summary>
    public bool PrefixReuse { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether, with prefix reuse, a new sequence may start from the cells of a prefix
    /// it has in common with a running one (a unified KV cache shares them, per-sequence cells are copied), and wait
    /// for a prefix a running sequence is still prefilling. The accounting still counts those cells for each sequence,
    /// so it errs on the safe side.
    /// </summary>
    public bool PrefixCopy { get; set; }

    /// <summary>
    /// Gets the shortest prefix of a running sequence worth copying (with <see cref="PrefixCopy"/>): with per-sequence
    /// cells a copy moves the source's whole stream, which costs more than computing a few tokens.
    /// </summary>
    public int CopyMinimum { get; init; } = 1;

    /// <summary>
    /// Gets the shortest prefix worth waiting for: the queue's head waits (and the queue behind it) while a running
    /// sequence prefills at least this many of its leading tokens, then copies them rather than compute them again.
    /// </summary>
    public int HoldMinimum { get; init; } = 64;

    /// <summary>
    /// Gets a value indicating whether an iteration with no decode running fills the batch limit with every waiting
    /// prompt, not only its first. Pipelined stages overlap the micro-batches of one call, so one long call is faster
    /// there; on one device it only makes every prompt of a burst wait for the last (the first prompt goes whole
    /// either way, and those behind it get the rest of the budget, so their first tokens come an iteration apart).
    /// </summary>
    public bool FillBatchWhenIdle { get; init; }

    /// <summary>Gets the sequences holding a slot, in admission order.</summary>
    public List<SequenceState> Running { get; } = [];

    /// <summary>Gets the sequences waiting for a slot, in arrival order (evicted ones go back by arrival).</summary>
    public List<SequenceState> Waiting { get; } = [];

    /// <summary>Gets the KV tokens the resident sequences hold or have reserved, and the idle slots' caches.</summary>
    public int KvTokensReserved => Running.Sum(s => s.Tokens.Count) + IdleTokens;

    /// <summary>Gets the KV tokens actually in the cache.</summary>
    public int KvTokensCached => Running.Sum(s => s.Cached) + IdleTokens;

    /// <summary>Gets the tokens the free slots keep cached for reuse.</summary>
    public int IdleTokens => _slots.Sum(s => s.Owner is null ? s.Tokens.Count : 0);

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
    /// <param name="sequence">The sequence.</param>
    /// <param name="keepCells">Whether its cells are still valid and may stay in the slot for reuse.</param>
    /// <returns>Whether the slot keeps the cells (with prefix reuse); otherwise the engine must remove them.</returns>
    public bool Remove(SequenceState sequence, bool keepCells = false)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        bool kept = false;
        if (sequence.IsResident)
        {
            Slot slot = _slots[sequence.Slot];
            slot.Owner = null;
            slot.LastUsed = ++_clock;
            kept = keepCells && PrefixReuse && sequence.Cached > 0;
            if (kept)
            {
                slot.Tokens.AddRange(sequence.Tokens.Take(sequence.Cached));
            }

            Running.Remove(sequence);
        }
        else
        {
            Waiting.Remove(sequence);
        }

        sequence.Release();
        return kept;
    }

    /// <summary>Forgets every idle slot's cache (the engine cleared the whole KV cache).</summary>
    public void ForgetIdleCaches()
    {
        foreach (Slot slot in _slots)
        {
            if (slot.Owner is null)
            {
                slot.Tokens.Clear();
            }
        }
    }

    /// <summary>Reclaims the least recently used idle slot's cache; null when no free slot holds one.</summary>
    public SlotTrim? ReclaimIdle() => ReclaimIdle(except: null);

    /// <summary>Plans the next iteration; returns null when there is nothing to run.</summary>
    public BatchPlan? Plan()
    {
        var preempted = new List<Eviction>();
        var trims = new List<SlotTrim>();
        var copies = new List<SlotCopy>();

        // Every decode grows by one token; reclaim idle caches, then evict the youngest, until the cache holds them all.
        while (KvTokensReserved + Decodes > _kvCapacity)
        {
            if (ReclaimIdle() is { } trim)
            {
                trims.Add(trim);
            }
            else if (Running.Count > 1)
            {
                preempted.Add(EvictYoungest());
            }
            else
            {
                break;
            }
        }

        var entries = new List<BatchEntry>();
        var admitted = new List<SequenceState>();
        var prefills = new Prefills(entries, admitted, trims, copies);
        switch (_policy)
        {
            case SchedulingPolicy.Sarathi:
                AddDecodes(entries);
                AddPrefills(prefills, Admission.Chunks);
                break;

            case SchedulingPolicy.PrefillFirst:
                AddPrefills(prefills, Admission.WholePrompts);
                AddDecodesIfIdle(entries);
                break;

            case SchedulingPolicy.RequestLevel:
                // A batch is admitted at once while nothing decodes, prefilled, then decoded until its last request ends.
                AddPrefills(prefills, Decodes == 0 ? Admission.Batch : Admission.None);
                AddDecodesIfIdle(entries);
                break;

            case SchedulingPolicy.ChunkedOnly:
                if (_prefillTurn)
                {
                    AddPrefills(prefills, Admission.Chunks);
                    AddDecodesIfIdle(entries);
                }
                else
                {
                    AddDecodes(entries);
                    if (entries.Count == 0)
                    {
                        AddPrefills(prefills, Admission.Chunks);
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

        return entries.Count == 0 && preempted.Count == 0 && trims.Count == 0 ? null : new BatchPlan(preempted, trims, copies, admitted, entries);
    }

    /// <summary>
    /// Evicts the most recently admitted sequence (it is recomputed when readmitted). The engine calls it when
    /// llama.cpp finds no room for a batch the token accounting allowed (for example a fragmented cache).
    /// </summary>
    public Eviction EvictYoungest()
    {
        SequenceState youngest = Running[^1];
        var eviction = new Eviction(youngest, youngest.Slot);
        _slots[youngest.Slot].Owner = null;
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

    /// <summary>
    /// Fills what is left of the budget with chunks of the prompts being prefilled, then admits new requests first
    /// come first served. With no decode running there is nothing for chunks to protect: the first prompt goes whole,
    /// up to the batch limit (and every prompt, with <see cref="FillBatchWhenIdle"/> or a request-level batch).
    /// </summary>
    private void AddPrefills(Prefills plan, Admission admission)
    {
        (List<BatchEntry> entries, List<SequenceState> admitted, List<SlotTrim> trims, List<SlotCopy> copies) = plan;
        int used = entries.Sum(e => e.Count);
        int batchRoom = Decodes == 0 ? Math.Max(TokenBudget, _batchLimit) - used : 0;
        int budget = FillBatchWhenIdle || admission == Admission.Batch ? Math.Max(TokenBudget - used, batchRoom) : TokenBudget - used;
        bool first = true;
        int Room() => first ? Math.Max(budget, batchRoom) : budget;
        int Take(SequenceState s)
        {
            int take = Math.Clamp(Room(), 0, s.Pending);
            first = false;
            budget -= take;
            return take;
        }

        foreach (SequenceState s in Running)
        {
            if (Room() <= 0)
            {
                return;
            }

            if (!s.IsDecoding && s.Pending > 0)
            {
                entries.Add(new BatchEntry(s, Take(s)));
            }
        }

        while (admission != Admission.None && (Room() > 0 || admission == Admission.Batch) && Waiting.Count > 0 && _slots.Any(s => s.Owner is null))
        {
            SequenceState head = Waiting[0];
            (Slot slot, int reused, SequenceState? source) = ChooseSlot(head);
            if (admission != Admission.Batch && WaitsForPrefix(head))
            {
                return; // first come, first served: the queue waits with its head, at most until the prefix is computed
            }

            if (admission == Admission.WholePrompts && head.Tokens.Count - reused > Room() && entries.Count > 0)
            {
                return; // the head waits for an iteration of its own rather than be split behind others
            }

            // The head's tokens replace the slot's cache; other idle caches make room if needed.
            while (KvTokensReserved + Decodes - slot.Tokens.Count + head.Tokens.Count + 1 > _kvCapacity && ReclaimIdle(slot) is { } reclaimed)
            {
                trims.Add(reclaimed);
            }

            if (KvTokensReserved + Decodes - slot.Tokens.Count + head.Tokens.Count + 1 > _kvCapacity && Running.Count > 0)
            {
                return; // first come, first served: nobody overtakes the head while it waits for room
            }

            if (source is not null)
            {
                // The slot's own cache goes whole; the running sequence's prefix takes its place.
                if (slot.Tokens.Count > 0)
                {
                    trims.Add(new SlotTrim(slot.Index, 0, head));
                }

                copies.Add(new SlotCopy(source.Slot, slot.Index, reused));
            }
            else if (slot.Tokens.Count > reused)
            {
                trims.Add(new SlotTrim(slot.Index, reused, head));
            }

            Waiting.RemoveAt(0);
            slot.Tokens.Clear();
            slot.Owner = head;
            slot.LastUsed = ++_clock;
            head.Admit(slot.Index, reused);
            Running.Add(head);
            admitted.Add(head);
            int take = Take(head);
            if (take > 0)
            {
                entries.Add(new BatchEntry(head, take));
            }
        }
    }

    /// <summary>
    /// Chooses a free slot for a sequence: the one whose cache shares the longest prefix with it, when that prefix is
    /// at least a tenth of its tokens (llama-server's default slot similarity), so a cache is not given up for a few
    /// tokens (every prompt shares its BOS); else an empty slot (beside running slots first), else the least recently
    /// used cache (see <see cref="Fresh"/>). The sequence reuses what it shares with the chosen slot, but never its
    /// last token, which must be computed to sample. With <see cref="PrefixCopy"/>, a running sequence sharing a longer
    /// prefix than any free slot is its source instead.
    /// </summary>
    private (Slot Slot, int Reused, SequenceState? Source) ChooseSlot(SequenceState sequence)
    {
        Slot[] free = [.. _slots.Where(s => s.Owner is null)];
        Slot longest = free.MaxBy(s => Shared(sequence, s.Tokens, s.Tokens.Count))!;
        Slot chosen = Worth(sequence, Shared(sequence, longest.Tokens, longest.Tokens.Count)) ? longest : Fresh(free);
        int reused = Shared(sequence, chosen.Tokens, chosen.Tokens.Count);
        if (PrefixCopy && Running.Count > 0)
        {
            // Only the cells a running sequence already holds can be shared.
            (SequenceState source, int copied) = Running.Select(r => (r, Shared(sequence, r.Tokens, r.Cached))).MaxBy(c => c.Item2);
            if (copied > reused && copied >= CopyMinimum && Worth(sequence, copied))
            {
                return (Fresh(free), copied, source);
            }
        }

        return (chosen, reused, null);
    }

    /// <summary>
    /// The free slot to give a sequence that reuses none of its cells: an empty one, the one with the most running
    /// neighbours first (llama.cpp's cache per sequence decodes running slots in one micro-batch only where their
    /// numbers are consecutive, so a slot that closes a gap saves a pass over the weights every step); else the least
    /// recently used cache, whose prefix is the least likely to be asked for again.
    /// </summary>
    private Slot Fresh(Slot[] free) => free.MinBy(s => s.Tokens.Count > 0 ? (1, s.LastUsed) : (0, -RunningNeighbours(s.Index)))!;

    private int RunningNeighbours(int index) =>
        (index > 0 && _slots[index - 1].Owner is not null ? 1 : 0) + (index + 1 < _slots.Length && _slots[index + 1].Owner is not null ? 1 : 0);

    /// <summary>
    /// Whether a sequence should wait for a running one that is prefilling a prefix it shares: when that prefix, once
    /// computed, gives it at least <see cref="HoldMinimum"/> tokens (and a tenth of its own) more than any idle cache.
    /// The wait ends when the whole prefix is in the cache (not when part of it is: the rest would be computed twice),
    /// or when that sequence leaves (finished, cancelled, failed or evicted); a prefill advances every iteration, so
    /// nobody waits behind it for long.
    /// </summary>
    private bool WaitsForPrefix(SequenceState sequence)
    {
        if (!PrefixCopy)
        {
            return false;
        }

        int idle = _slots.Where(s => s.Owner is null).Select(s => Shared(sequence, s.Tokens, s.Tokens.Count)).DefaultIfEmpty().Max();
        return Running.Any(r =>
            !r.IsDecoding && r.Pending > 0
            && Shared(sequence, r.Tokens, r.Tokens.Count) is var shared
            && shared > r.Cached
            && shared - idle >= Math.Max(HoldMinimum, CopyMinimum)
            && Worth(sequence, shared - idle));
    }

    /// <summary>How many of its leading tokens a sequence may take from <paramref name="count"/> cached ones: never its last, which must be computed to sample.</summary>
    private int Shared(SequenceState sequence, IReadOnlyList<int> cached, int count) =>
        PrefixReuse && sequence.ReusesPrefix ? Math.Min(CommonPrefix(cached, count, sequence.Tokens), sequence.Tokens.Count - 1) : 0;

    /// <summary>Whether a shared prefix is worth a slot: at least a tenth of the sequence's tokens.</summary>
    private static bool Worth(SequenceState sequence, int shared) => shared > 0 && shared * 10 >= sequence.Tokens.Count;

    /// <summary>Empties the least recently used free slot's cache (but <paramref name="except"/>).</summary>
    private SlotTrim? ReclaimIdle(Slot? except)
    {
        Slot? lru = _slots.Where(s => s.Owner is null && s.Tokens.Count > 0 && s != except).MinBy(s => s.LastUsed);
        if (lru is null)
        {
            return null;
        }

        lru.Tokens.Clear();
        return new SlotTrim(lru.Index, 0, null);
    }

    /// <summary>Counts the leading tokens the first <paramref name="count"/> of <paramref name="a"/> share with <paramref name="b"/>.</summary>
    private static int CommonPrefix(IReadOnlyList<int> a, int count, IReadOnlyList<int> b)
    {
        int n = Math.Min(count, b.Count), i = 0;
        while (i < n && a[i] == b[i])
        {
            i++;
        }

        return i;
    }

    private void InsertWaiting(SequenceState sequence)
    {
        int i = Waiting.FindIndex(w => w.Id > sequence.Id);
        Waiting.Insert(i < 0 ? Waiting.Count : i, sequence);
    }

    /// <summary>A KV sequence slot: who runs in it, or the tokens its cells still hold since its last sequence left.</summary>
    private sealed class Slot(int index)
    {
        public int Index { get; } = index;

        public SequenceState? Owner { get; set; }

        /// <summary>Gets the tokens of the cells kept for reuse, in position order (empty while a sequence owns the slot).</summary>
        public List<int> Tokens { get; } = [];

        /// <summary>Gets or sets when the slot was last taken or freed (the scheduler's clock).</summary>
        public long LastUsed { get; set; }
    }

    /// <summary>What an iteration's admissions add to its plan.</summary>
    private readonly record struct Prefills(List<BatchEntry> Entries, List<SequenceState> Admitted, List<SlotTrim> Trims, List<SlotCopy> Copies);

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
