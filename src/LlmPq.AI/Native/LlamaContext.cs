namespace LlmPq.Native;

/// <summary>The sizes of a llama.cpp context.</summary>
internal sealed record LlamaContextOptions
{
    /// <summary>Gets the KV cache size in tokens, over all sequences; 0 takes the model's training context.</summary>
    public uint ContextLength { get; init; } = 2048;

    /// <summary>Gets the most tokens one <c>llama_decode</c> call takes (the scheduler's token budget fits in it).</summary>
    public uint BatchSize { get; init; } = 512;

    /// <summary>Gets the physical micro-batch; with several pipeline stages, micro-batches of one call are pipelined.</summary>
    public uint MicroBatchSize { get; init; } = 512;

    /// <summary>Gets the most sequences that can live in the cache at once.</summary>
    public uint SequenceCount { get; init; } = 1;

    /// <summary>Gets the CPU threads for decoding; 0 or less uses every core.</summary>
    public int Threads { get; init; }

    /// <summary>
    /// Gets a value indicating whether all sequences share one cache of <see cref="ContextLength"/> cells
    /// (<c>kv_unified</c>). Otherwise each sequence owns <c>ContextLength / SequenceCount</c> cells: attention then
    /// runs per sequence, which is faster without shared prefixes and gives a sequence the same results whatever
    /// else is in the batch.
    /// </summary>
    public bool SharedKvCache { get; init; }
}

/// <summary>
/// A llama.cpp context: a KV cache with sequences and the compute of <c>llama_decode</c>.
/// Not thread-safe: one owner thread drives it.
/// </summary>
internal sealed unsafe class LlamaContext : IDisposable
{
    private readonly IntPtr _memory;

    /// <summary>Creates a context for <paramref name="model"/>.</summary>
    public LlamaContext(LlamaModel model, LlamaContextOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        LlamaContextParams p = LlamaNative.llama_context_default_params();
        p.NCtx = options.ContextLength;
        p.NBatch = options.BatchSize;
        p.NUbatch = Math.Min(options.MicroBatchSize, options.BatchSize);
        p.NSeqMax = options.SequenceCount;
        int threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        p.NThreads = threads;
        p.NThreadsBatch = threads;
        p.NoPerf = 0;
        p.KvUnified = options.SharedKvCache ? (byte)1 : (byte)0;

        using LlamaBackend.ErrorCapture errors = LlamaBackend.CaptureErrors();
        LlamaContextHandle handle = LlamaNative.llama_init_from_model(model.Handle, p);
        if (handle.IsInvalid)
        {
            handle.Dispose();
            throw new LlamaException($"llama.cpp could not create a context (n_ctx={p.NCtx}, n_batch={p.NBatch}, n_seq_max={p.NSeqMax}) for '{model.Path}': {errors.Summary}");
        }

        handle.Retain(model.Handle);
        Handle = handle;
        SharedKvCache = options.SharedKvCache;
        Model = model;
        _memory = LlamaNative.llama_get_memory(handle);
        ContextLength = LlamaNative.llama_n_ctx(handle);
        SequenceContextLength = LlamaNative.llama_n_ctx_seq(handle);
        BatchSize = LlamaNative.llama_n_batch(handle);
        SequenceCount = LlamaNative.llama_n_seq_max(handle);
    }

    /// <summary>Gets the native handle.</summary>
    public LlamaContextHandle Handle { get; }

    /// <summary>Gets the model.</summary>
    public LlamaModel Model { get; }

    /// <summary>Gets the KV cache size in tokens, over all sequences.</summary>
    public uint ContextLength { get; }

    /// <summary>Gets the most tokens one sequence can hold.</summary>
    public uint SequenceContextLength { get; }

    /// <summary>Gets the most tokens one decode takes.</summary>
    public uint BatchSize { get; }

    /// <summary>Gets the most sequences.</summary>
    public uint SequenceCount { get; }

    /// <summary>Gets a value indicating whether all sequences share one cache (<c>kv_unified</c>).</summary>
    public bool SharedKvCache { get; }

    /// <summary>Runs the model on a batch. Returns false when the KV cache has no room for it (nothing was decoded).</summary>
    public bool Decode(TokenBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using LlamaBackend.ErrorCapture errors = LlamaBackend.CaptureErrors();
        int rc = LlamaNative.llama_decode(Handle, batch.Native);
        return rc switch
        {
            0 => true,
            1 => false,
            2 => throw new OperationCanceledException("llama_decode was aborted."),
            _ => throw new LlamaException($"llama_decode failed with {rc} on a batch of {batch.Count} tokens: {errors.Summary}"),
        };
    }

    /// <summary>Gets the logits of the batch entry <paramref name="index"/> (which must have asked for them); valid until the next decode.</summary>
    public ReadOnlySpan<float> Logits(int index)
    {
        float* p = LlamaNative.llama_get_logits_ith(Handle, index);
        return p == null
            ? throw new LlamaException($"No logits for batch entry {index}: it did not ask for output.")
            : new ReadOnlySpan<float>(p, Model.VocabularySize);
    }

    /// <summary>Removes positions [<paramref name="from"/>, <paramref name="to"/>) of a sequence (-1 for open ends) from the cache.</summary>
    public bool RemoveSequence(int sequence, int from = -1, int to = -1) => LlamaNative.llama_memory_seq_rm(_memory, sequence, from, to);

    /// <summary>
    /// Makes positions [0, <paramref name="count"/>) of a sequence also those of another, emptied one. In a shared cache
    /// the destination shares their cells; across per-sequence cells llama.cpp copies only whole streams (a range
    /// aborts the process), so the source's whole stream is copied (at the next decode) and the rest removed.
    /// </summary>
    public void ShareSequence(int source, int destination, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (SharedKvCache)
        {
            LlamaNative.llama_memory_seq_cp(_memory, source, destination, 0, count);
            return;
        }

        LlamaNative.llama_memory_seq_cp(_memory, source, destination, -1, -1);
        LlamaNative.llama_memory_seq_rm(_memory, destination, count, -1);
    }

    /// <summary>Gets the highest position a sequence holds in the cache, or -1 when it holds none.</summary>
    public int SequenceMaxPosition(int sequence) => LlamaNative.llama_memory_seq_pos_max(_memory, sequence);

    /// <summary>Empties the cache.</summary>
    public void ClearMemory() => LlamaNative.llama_memory_clear(_memory, true);

    /// <summary>Gets llama.cpp's timing counters.</summary>
    public LlamaPerfContextData Performance => LlamaNative.llama_perf_context(Handle);

    /// <inheritdoc/>
    public void Dispose() => Handle.Dispose();
}
