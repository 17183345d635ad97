using System.Text.Json.Serialization;
using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// One weight matrix: a tensor that <c>llama_model_quantize</c> quantizes, so the one a plan gives a type.
/// </summary>
/// <param name="Name">The tensor's name inside its layer, such as <c>attn_q</c> or <c>ffn_up_exps</c>, or <c>output</c>.</param>
/// <param name="RowLength">The row length (ggml's <c>ne0</c>): the input width a type's blocks must divide.</param>
/// <param name="Rows">The number of rows: all other dimensions multiplied (every expert's rows for an expert tensor).</param>
public sealed record MatrixSpec(string Name, long RowLength, long Rows)
{
    /// <summary>
    /// Gets the rows one token multiplies with when that is fewer than <see cref="Rows"/>: for the expert tensors of a
    /// mixture-of-experts layer, the rows of the experts a token is routed to; null when it uses them all.
    /// </summary>
    public long? ActiveRows { get; init; }

    /// <summary>Gets the number of weights.</summary>
    [JsonIgnore]
    public long Parameters => RowLength * Rows;

    /// <summary>Gets the number of weights one token multiplies with.</summary>
    [JsonIgnore]
    public long ActiveParameters => RowLength * (ActiveRows ?? Rows);

    /// <summary>Gets whether the matrix can be stored as <paramref name="type"/>: its rows are whole blocks of it.</summary>
    /// <param name="type">A ggml type.</param>
    /// <returns><see langword="true"/> when <see cref="RowLength"/> is a multiple of the type's block size.</returns>
    public bool CanTake(GgmlType type) => RowLength % GgmlTypes.BlockSize(type) == 0;

    /// <summary>Gets the bytes the matrix takes as <paramref name="type"/>.</summary>
    /// <param name="type">A type the matrix can take (see <see cref="CanTake"/>).</param>
    /// <returns>The rows times the bytes of one row.</returns>
    /// <exception cref="ArgumentException">The rows are not whole blocks of <paramref name="type"/>.</exception>
    public long Bytes(GgmlType type) => GgmlTypes.RowBytes(type, RowLength) * Rows;
}

/// <summary>
/// One layer as the planner sees it: the matrices a type applies to, the rest of its parameters, and its attention shape.
/// </summary>
/// <param name="Index">The layer number (the N of <c>blk.N</c>); <see cref="ModelSpec.LayerCount"/> for the output layer.</param>
/// <param name="Matrices">The weight matrices that take the layer's planned type.</param>
/// <param name="OtherParameters">Every other parameter (norms, biases, small tensors llama.cpp keeps as they are), counted as F32.</param>
/// <param name="HeadCount">The attention (query) heads; 0 for a layer without attention.</param>
/// <param name="KvHeadCount">The key/value heads, whose keys and values the KV cache holds; 0 for a layer without attention.</param>
/// <param name="HeadDim">The width of one head.</param>
public sealed record LayerSpec(int Index, IReadOnlyList<MatrixSpec> Matrices, long OtherParameters, int HeadCount, int KvHeadCount, int HeadDim)
{
    /// <summary>Gets the number of weights in <see cref="Matrices"/>.</summary>
    public long MatrixParameters => Matrices.Sum(m => m.Parameters);

    /// <summary>Gets all parameters of the layer.</summary>
    public long Parameters => MatrixParameters + OtherParameters;

    /// <summary>
    /// Gets the matrix FLOPs of one token through the layer: 2 per weight it multiplies with (a multiply and an add);
    /// the attention over the context comes on top (see <see cref="AttentionFlops"/>).
    /// </summary>
    public long FlopsPerToken => 2 * Matrices.Sum(m => m.ActiveParameters);

    /// <summary>Gets the bytes of KV cache one token takes in this layer: keys and values, F16, as llama.cpp stores them by default.</summary>
    public long KvBytesPerToken => 2L * KvHeadCount * HeadDim * sizeof(short);

    /// <summary>Gets the attention FLOPs of one token that attends to <paramref name="contextTokens"/> positions.</summary>
    /// <param name="contextTokens">The positions attended to, the token itself included.</param>
    /// <returns>2 FLOPs per multiply-add for Q·Kᵀ and for the scores times V, over every head: 4 × heads × head width × context.</returns>
    public long AttentionFlops(long contextTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(contextTokens);
        return 4L * HeadCount * HeadDim * contextTokens;
    }

    /// <summary>Gets whether every matrix of the layer can be stored as <paramref name="type"/>.</summary>
    /// <param name="type">A ggml type.</param>
    /// <returns><see langword="true"/> when each matrix's rows are whole blocks of <paramref name="type"/>.</returns>
    public bool CanTake(GgmlType type) => Matrices.All(m => m.CanTake(type));

    /// <summary>Gets the bytes of the layer's weights with its matrices at <paramref name="type"/> and the rest at F32.</summary>
    /// <param name="type">A type the layer can take (see <see cref="CanTake"/>).</param>
    /// <returns>The bytes the layer's weights occupy on its device.</returns>
    /// <exception cref="ArgumentException">A matrix's rows are not whole blocks of <paramref name="type"/>.</exception>
    public long WeightBytes(GgmlType type) => Matrices.Sum(m => m.Bytes(type)) + (OtherParameters * sizeof(float));
}

/// <summary>
/// A model's shape as the planner needs it: per layer its matrices, FLOPs per token and KV bytes per token; the token
/// embedding and the output layer counted apart. Read it from a GGUF file (<see cref="FromGguf"/>) or take a named shape
/// (<see cref="Preset"/>).
/// </summary>
/// <remarks>
/// llama.cpp keeps the token embedding (the input layer) in the memory of the process that holds the context, on the
/// CPU, and puts the output layer on the last device as one more layer; a model whose output is tied to its embedding
/// loads the embedding a second time there (<c>TENSOR_DUPLICATED</c>), so <see cref="Output"/> then holds a copy of it.
/// </remarks>
public sealed record ModelSpec
{
    /// <summary>Gets the model's name (<c>general.name</c>, or the preset's name).</summary>
    public required string Name { get; init; }

    /// <summary>Gets llama.cpp's architecture name, such as <c>llama</c>, <c>qwen2</c> or <c>bloom</c>.</summary>
    public required string Architecture { get; init; }

    /// <summary>Gets the width of the residual stream.</summary>
    public required long EmbeddingLength { get; init; }

    /// <summary>Gets the hidden width of the feed-forward blocks (the widest, when layers differ).</summary>
    public required long FeedForwardLength { get; init; }

    /// <summary>Gets the attention heads of the first layer.</summary>
    public required int HeadCount { get; init; }

    /// <summary>Gets the key/value heads of the first layer.</summary>
    public required int KvHeadCount { get; init; }

    /// <summary>Gets the width of one attention head.</summary>
    public required int HeadDim { get; init; }

    /// <summary>Gets the number of tokens in the vocabulary (the rows of the token embedding).</summary>
    public required long VocabularySize { get; init; }

    /// <summary>Gets the context length the model was trained for; 0 when unknown.</summary>
    public required long ContextLength { get; init; }

    /// <summary>Gets the repeating layers, in order.</summary>
    public required IReadOnlyList<LayerSpec> Layers { get; init; }

    /// <summary>Gets the token embedding (<c>token_embd</c>), which llama.cpp keeps on the CPU of the process holding the context.</summary>
    public required MatrixSpec TokenEmbedding { get; init; }

    /// <summary>
    /// Gets the output layer (the final norm and the <c>output</c> matrix, or a copy of <c>token_embd</c> when tied), which
    /// llama.cpp places on the last device; its <see cref="LayerSpec.Index"/> is <see cref="LayerCount"/>.
    /// </summary>
    public required LayerSpec Output { get; init; }

    /// <summary>Gets whether the output matrix is the token embedding (no <c>output</c> tensor); it then has the embedding's type.</summary>
    public required bool OutputTied { get; init; }

    /// <summary>Gets the parameters outside the layers that stay with the input layer on the CPU, such as learned position embeddings.</summary>
    public required long InputParameters { get; init; }

    /// <summary>Gets the number of repeating layers.</summary>
    public int LayerCount => Layers.Count;

    /// <summary>Gets the number of parameters of the model, a tied output matrix counted once.</summary>
    public long Parameters =>
        Layers.Sum(l => l.Parameters) + TokenEmbedding.Parameters + InputParameters
        + (OutputTied ? Output.OtherParameters : Output.Parameters);

    /// <summary>Gets the bytes of the activations of <paramref name="tokens"/> tokens passed between two stages (F32, as ggml's RPC sends them).</summary>
    /// <param name="tokens">The tokens of the micro-batch.</param>
    /// <returns>4 × <see cref="EmbeddingLength"/> × <paramref name="tokens"/>.</returns>
    public long ActivationBytes(long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        return sizeof(float) * EmbeddingLength * tokens;
    }

    /// <summary>
    /// Gets the bytes of the attention mask llama.cpp builds for a step (<c>llama-graph.cpp</c>,
    /// <c>build_attn_inp_kq_mask</c>): F16 (flash attention, which llama.cpp turns on for the CPU) of n_kv × tokens,
    /// n_kv the cache cells attended to padded to 256 (<c>llama_kv_cache::get_n_kv</c>). It is an input on the host,
    /// so ggml RPC sends every stage server a copy of it each step.
    /// </summary>
    /// <param name="tokens">The tokens of the step (all sequences).</param>
    /// <param name="cells">The cache cells the longest sequence attends to (its context and the step's tokens).</param>
    /// <returns>Bytes.</returns>
    public static long AttentionMaskBytes(long tokens, long cells)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(cells);
        const long pad = 256;
        return sizeof(ushort) * tokens * Math.Max(pad, (cells + pad - 1) / pad * pad);
    }

    /// <summary>Reads a model's shape from a GGUF file's metadata and tensor table.</summary>
    /// <param name="file">A model of any llama.cpp architecture built of <c>blk.N</c> layers, at any tensor types.</param>
    /// <returns>The shape: per-layer matrices from the tensor table, heads from the metadata.</returns>
    /// <exception cref="InvalidDataException">The file is not such a model.</exception>
    public static ModelSpec FromGguf(GgufFile file) => GgufModelReader.Read(file);

    /// <summary>Gets a named model shape that needs no file: LLM-PQ's models and current open ones (see <see cref="ModelPresets.Names"/>).</summary>
    /// <param name="name">A name from <see cref="ModelPresets.Names"/>, such as <c>llama-3.1-8b</c>; case is ignored.</param>
    /// <returns>The shape.</returns>
    /// <exception cref="ArgumentException">No preset has that name; the message lists the known ones.</exception>
    public static ModelSpec Preset(string name) => ModelPresets.Get(name);
}
