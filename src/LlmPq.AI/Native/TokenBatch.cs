namespace LlmPq.Native;

/// <summary>A reusable <c>llama_batch</c>: tokens with their positions, sequences and whether each wants logits.</summary>
internal sealed unsafe class TokenBatch : IDisposable
{
    private readonly int _maxSequencesPerToken;
    private LlamaBatch _batch;

    /// <summary>Allocates room for <paramref name="capacity"/> tokens, each in at most <paramref name="maxSequencesPerToken"/> sequences.</summary>
    public TokenBatch(int capacity, int maxSequencesPerToken = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxSequencesPerToken);
        Capacity = capacity;
        _maxSequencesPerToken = maxSequencesPerToken;
        _batch = LlamaNative.llama_batch_init(capacity, 0, maxSequencesPerToken);
    }

    /// <summary>Gets the most tokens the batch holds.</summary>
    public int Capacity { get; }

    /// <summary>Gets the tokens in the batch.</summary>
    public int Count => _batch.NTokens;

    /// <summary>Gets the native struct for <c>llama_decode</c>.</summary>
    internal LlamaBatch Native => _batch;

    /// <summary>Empties the batch.</summary>
    public void Clear() => _batch.NTokens = 0;

    /// <summary>Adds a token of one sequence; returns its index in the batch (the index of its logits).</summary>
    public int Add(int token, int position, int sequence, bool wantLogits)
    {
        ObjectDisposedException.ThrowIf(_batch.Token == null, this);
        int i = _batch.NTokens;
        if (i >= Capacity)
        {
            throw new InvalidOperationException($"The batch is full ({Capacity} tokens).");
        }

        _batch.Token[i] = token;
        _batch.Pos[i] = position;
        _batch.NSeqId[i] = 1;
        _batch.SeqId[i][0] = sequence;
        _batch.Logits[i] = wantLogits ? (sbyte)1 : (sbyte)0;
        _batch.NTokens = i + 1;
        return i;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_batch.Token != null)
        {
            LlamaNative.llama_batch_free(_batch);
            _batch = default;
        }
    }
}
