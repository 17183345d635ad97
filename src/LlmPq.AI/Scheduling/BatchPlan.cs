namespace LlmPq.Scheduling;

/// <summary>One entry of an iteration's batch: <paramref name="Count"/> tokens of a sequence, starting at its first uncached token.</summary>
internal readonly record struct BatchEntry(SequenceState Sequence, int Count)
{
    /// <summary>Gets a value indicating whether the entry ends with the sequence's last token, so the model samples after it.</summary>
    public bool Samples => Count == Sequence.Pending;

    /// <summary>Gets a value indicating whether this is a single decode step (rather than a prefill chunk).</summary>
    public bool IsDecode => Sequence.IsDecoding;
}

/// <summary>A sequence evicted from its KV slot; the engine must clear <paramref name="Slot"/> before reusing it.</summary>
internal readonly record struct Eviction(SequenceState Sequence, int Slot);

/// <summary>
/// Cells of a slot to remove from position <paramref name="From"/> on before the batch: a prefix cache reclaimed
/// (from 0), or what a sequence admitted to the slot (<paramref name="For"/>) does not share with the cache.
/// </summary>
internal readonly record struct SlotTrim(int Slot, int From, SequenceState? For);

/// <summary>Positions [0, <paramref name="Count"/>) of the running sequence in slot <paramref name="Source"/> to share with the (emptied) slot <paramref name="Slot"/>, after the trims.</summary>
internal readonly record struct SlotCopy(int Source, int Slot, int Count);

/// <summary>
/// What one engine iteration does: sequences to evict, slot caches to trim and running prefixes to share first,
/// sequences to admit, then one batch to decode.
/// </summary>
internal sealed record BatchPlan(IReadOnlyList<Eviction> Preempted, IReadOnlyList<SlotTrim> Trims, IReadOnlyList<SlotCopy> Copies, IReadOnlyList<SequenceState> Admitted, IReadOnlyList<BatchEntry> Entries)
{
    /// <summary>
    /// Gets the entries in the order the batch takes them: by slot. llama.cpp's cache per sequence puts sequences in
    /// one micro-batch only while their slots ascend by one in batch order; in the plan's order (decodes by admission,
    /// then prompts) a step of 8 decodes could run as several graphs, each reading all the weights again.
    /// </summary>
    public IEnumerable<BatchEntry> BatchOrder => Entries.OrderBy(e => e.Sequence.Slot);

    /// <summary>Gets the tokens in the batch.</summary>
    public int TokenCount => Entries.Sum(e => e.Count);

    /// <summary>Gets the decode tokens in the batch.</summary>
    public int DecodeTokens => Entries.Where(e => e.IsDecode).Sum(e => e.Count);

    /// <summary>Gets the prefill tokens in the batch.</summary>
    public int PrefillTokens => TokenCount - DecodeTokens;

    /// <summary>Gets what the batch holds: prompt chunks, decodes, or both.</summary>
    public IterationKind Kind => (PrefillTokens > 0, DecodeTokens > 0) switch
    {
        (true, true) => IterationKind.Hybrid,
        (true, false) => IterationKind.Prefill,
        _ => IterationKind.Decode,
    };
}

/// <summary>What an iteration's batch holds; iterations of one kind take similar time, so their spread shows bubbles.</summary>
internal enum IterationKind
{
    /// <summary>Prompt chunks only.</summary>
    Prefill,

    /// <summary>Decodes only.</summary>
    Decode,

    /// <summary>Decodes and prompt chunks together (stall-free batching).</summary>
    Hybrid,
}
