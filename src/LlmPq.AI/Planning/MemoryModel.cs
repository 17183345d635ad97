using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// The memory a stage needs on its device: the weights of its layers at their types, the KV cache of the workload on
/// those layers, llama.cpp's compute buffer, and a runtime reserve.
/// </summary>
/// <remarks>
/// <para>
/// KV cache: every stage holds the keys and values of all <see cref="Workload.BatchSize"/> sequences at full length
/// for its layers, B × (s + n) tokens × <see cref="LayerSpec.KvBytesPerToken"/> (F16), as LLM-PQ counts it.
/// </para>
/// <para>
/// Compute buffer: llama.cpp sizes it for a worst-case micro-batch of u = <c>n_ubatch</c> tokens, reusing memory
/// between the graph's nodes, so it is the largest of what is alive at once: in a layer, the FFN's gate and up
/// activations, 4 × u × 2 × n_ff bytes, plus without flash attention the scores and mask, 4 × u × n_ctx × (heads + 1);
/// in the output layer, the logits of every token of the micro-batch and two activations, 4 × u × (n_vocab + 2 × n_embd).
/// This matched the <c>CPU compute buffer size</c> llama.cpp (the pinned build) printed for a 2048-wide model to the
/// byte, for u = 128 and 512, n_ctx = 4096 and 16384, flash attention on and off. llama.cpp turns flash attention on
/// by default (<c>flash_attn_type = auto</c>) where the backend supports it, which CUDA and CPU do.
/// </para>
/// <para>
/// Reserve: 1 GiB per GPU, the margin llama.cpp's own <c>--fit</c> leaves per device by default
/// (<c>fit_params_target</c> in <c>common/common.h</c>), which covers the CUDA context (0.3–0.5 GiB), cuBLAS
/// workspaces and fragmentation; 0 on a CPU, whose cluster-file memory is what the stage may use.
/// </para>
/// <para>
/// The token embedding and other input tensors stay in the coordinator's RAM (<see cref="InputBytes"/>), not on a stage.
/// </para>
/// </remarks>
/// <param name="model">The model.</param>
/// <param name="workload">The workload whose KV cache the stages hold.</param>
public sealed class MemoryModel(ModelSpec model, Workload workload)
{
    /// <summary>The runtime reserve of a GPU: 1 GiB.</summary>
    public const long GpuReserveBytes = 1L << 30;

    private readonly ModelSpec _model = model ?? throw new ArgumentNullException(nameof(model));
    private readonly Workload _workload = workload ?? throw new ArgumentNullException(nameof(workload));

    /// <summary>Gets whether llama.cpp runs flash attention, so no attention-score matrix is materialized; true by default.</summary>
    public bool FlashAttention { get; init; } = true;

    /// <summary>Gets the bytes of KV cache <paramref name="layer"/> holds for the workload.</summary>
    /// <param name="layer">A layer of the model.</param>
    /// <returns>B × (s + n) × <see cref="LayerSpec.KvBytesPerToken"/>.</returns>
    public long KvCacheBytes(LayerSpec layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return _workload.KvCacheTokens * layer.KvBytesPerToken;
    }

    /// <summary>Gets the bytes <paramref name="layer"/> takes on its device at <paramref name="type"/>: weights and KV cache.</summary>
    /// <param name="layer">A layer of the model, or its <see cref="ModelSpec.Output"/> layer.</param>
    /// <param name="type">The type of the layer's matrices.</param>
    /// <returns>The bytes.</returns>
    /// <exception cref="ArgumentException">The layer cannot take <paramref name="type"/>.</exception>
    public long LayerBytes(LayerSpec layer, GgmlType type) => layer.WeightBytes(type) + KvCacheBytes(layer);

    /// <summary>Gets the bytes of llama.cpp's compute buffer on a stage.</summary>
    /// <param name="microBatchTokens">u: the most tokens of one micro-batch (<c>n_ubatch</c>); at least 1.</param>
    /// <param name="holdsOutput">Whether the stage holds the output layer, and so the logits.</param>
    /// <returns>The bytes (see the remarks).</returns>
    public long ComputeBufferBytes(int microBatchTokens, bool holdsOutput)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(microBatchTokens, 1);
        long perToken = 2 * _model.FeedForwardLength;
        if (!FlashAttention)
        {
            perToken += _workload.KvCacheTokens * (_model.HeadCount + 1);
        }

        if (holdsOutput)
        {
            perToken = Math.Max(perToken, _model.VocabularySize + (2 * _model.EmbeddingLength));
        }

        return sizeof(float) * microBatchTokens * perToken;
    }

    /// <summary>Gets the memory a device keeps for its runtime: <see cref="GpuReserveBytes"/> on a GPU, 0 on a CPU.</summary>
    /// <param name="device">The device.</param>
    /// <returns>The bytes.</returns>
    public static long ReserveBytes(DeviceSpec device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.IsCpu ? 0 : GpuReserveBytes;
    }

    /// <summary>Gets the bytes a stage needs on <paramref name="device"/>.</summary>
    /// <param name="device">The stage's device.</param>
    /// <param name="layers">The stage's layers and their types; the output layer (<see cref="ModelSpec.Output"/>) among them on the last stage.</param>
    /// <param name="microBatchTokens">u: the most tokens of one micro-batch; at least 1.</param>
    /// <returns>Weights + KV cache + compute buffer + reserve; compare with <see cref="DeviceSpec.MemoryBytes"/>.</returns>
    public long StageBytes(DeviceSpec device, IEnumerable<(LayerSpec Layer, GgmlType Type)> layers, int microBatchTokens)
    {
        ArgumentNullException.ThrowIfNull(layers);
        long bytes = ReserveBytes(device);
        bool holdsOutput = false;
        foreach (var (layer, type) in layers)
        {
            bytes += LayerBytes(layer, type);
            holdsOutput |= layer.Index == _model.LayerCount;
        }

        return bytes + ComputeBufferBytes(microBatchTokens, holdsOutput);
    }

    /// <summary>Gets the bytes the input layer takes in the coordinator's RAM: the token embedding at its type and the other input tensors at F32.</summary>
    /// <param name="embeddingType">The token embedding's type (see <see cref="PlanTypes.EmbeddingType"/>).</param>
    /// <returns>The bytes.</returns>
    public long InputBytes(GgmlType embeddingType) => _model.TokenEmbedding.Bytes(embeddingType) + (_model.InputParameters * sizeof(float));

    /// <summary>
    /// Gets the weight bytes of the model quantized by <paramref name="plan"/>: every layer at its type, the input layer
    /// (<see cref="InputBytes"/>), and the output layer at the plan's output type (once when tied to the embedding).
    /// This is the tensor data a quantized file holds, padding aside.
    /// </summary>
    /// <param name="plan">A plan for this model.</param>
    /// <returns>The bytes.</returns>
    public long WeightBytes(Plan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        IReadOnlyList<GgmlType> types = plan.LayerTypes();
        long bytes = InputBytes(plan.EmbeddingType);
        for (int i = 0; i < types.Count; i++)
        {
            bytes += _model.Layers[i].WeightBytes(types[i]);
        }

        return bytes + (_model.OutputTied ? _model.Output.OtherParameters * sizeof(float) : _model.Output.WeightBytes(plan.OutputType));
    }
}
