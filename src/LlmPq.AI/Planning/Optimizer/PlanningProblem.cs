namespace LlmPq.Planning.Optimizer;

/// <summary>
/// The optimizer's input: a purely numeric LLM-PQ problem (research/llm-pq.md §1), filled from a model's shape, a
/// cluster, a cost model and a quality indicator.
/// </summary>
/// <remarks>
/// <para>
/// A plan puts the devices (all of them, or a subset when <see cref="UseAllDevices"/> is false) in a pipeline order,
/// gives each a contiguous, non-empty range of layers, gives each layer a type, and picks one of the
/// <see cref="Configurations"/>. All layers have the same shape, so a layer's bytes and times depend on its type and its
/// device's kind only; its quality cost <see cref="Omega"/> depends on the layer.
/// </para>
/// <para>
/// With stage <c>j</c>'s per-micro-batch times <c>Tpre_j = max(Σ prefill of its layers + its fixed prefill,
/// send_pre(j → j+1))</c> and <c>Tdec_j</c> alike (the last stage sends nothing), the latency is LLM-PQ's
/// (<c>llm_pq/algo/llm_pq.py::solve_ilp_pulp</c>):
/// <c>Σ_j Tpre_j + (m_p − 1)·max_j Tpre_j + Σ_j Tdec_j + (max(m_d, N)·μn − 1)·max_j Tdec_j</c>, with
/// <c>m_p = ⌈B/ξp⌉</c> prefill and <c>m_d = ⌈B/ξd⌉</c> decode micro-batches. The optimizer minimizes
/// <c>latency + θ·Σ_l ω[l, t_l]</c> subject to every device's memory and, when set, <see cref="MaxOmega"/>.
/// </para>
/// <para>
/// When <see cref="SharedCompute"/> is set, the stages share one machine's cores and nothing overlaps: both bottleneck
/// weights are 0, the latency is <c>Σ_j Tpre_j + Σ_j Tdec_j</c>, and the costs given are those of the whole phase (every
/// micro-batch's pass, every decode step).
/// </para>
/// <para>
/// Unlike LLM-PQ's code, the last stage is not charged a send back to the first: with llama.cpp the loop closes
/// through the process that holds the context, whose costs belong in <see cref="KindCosts.FirstStage"/> and
/// <see cref="KindCosts.LastStage"/>.
/// </para>
/// </remarks>
public sealed record PlanningProblem
{
    /// <summary>Gets the names of the candidate types, such as <c>f16</c> or <c>q4_K</c>; their indices are the type indices.</summary>
    public required IReadOnlyList<string> TypeNames { get; init; }

    /// <summary>
    /// Gets ω indexed [layer][type]: the quality cost (≥ 0, larger is worse) of storing the layer at the type, or null
    /// where the layer cannot take the type. Its length is the number of layers.
    /// </summary>
    public required IReadOnlyList<IReadOnlyList<double?>> Omega { get; init; }

    /// <summary>Gets the devices; a plan refers to them by index.</summary>
    public required IReadOnlyList<PlanningDevice> Devices { get; init; }

    /// <summary>Gets the candidate micro-batch configurations with their costs; a plan picks one.</summary>
    public required IReadOnlyList<PlanningConfiguration> Configurations { get; init; }

    /// <summary>Gets the global batch B: the sequences served together.</summary>
    public required int BatchSize { get; init; }

    /// <summary>Gets μn: the tokens each sequence is expected to generate (at least 1).</summary>
    public required double GeneratedTokens { get; init; }

    /// <summary>Gets θ, the weight of Σω against the latency in seconds (≥ 0).</summary>
    public double Theta { get; init; }

    /// <summary>Gets a hard bound on Σ_l ω[l, t_l], or null for none (LLM-PQ has none; quality enters through θ only).</summary>
    public double? MaxOmega { get; init; }

    /// <summary>
    /// Gets whether every device must hold at least one layer, as in LLM-PQ (the default); when false, leaving a device
    /// out is allowed where that is better.
    /// </summary>
    public bool UseAllDevices { get; init; } = true;

    /// <summary>Gets the number of layers, the length of <see cref="Omega"/>.</summary>
    public int LayerCount => Omega.Count;

    /// <summary>
    /// Gets whether the stages share the same cores (local CPU devices served from stage servers on one machine), so
    /// that one stage's work never overlaps another's: the latency is the sum of the stages' times, the costs are
    /// each phase's whole, and sends are part of the costs (<see cref="PlanningConfiguration.PrefillSendSeconds"/> null).
    /// </summary>
    public bool SharedCompute { get; init; }

    /// <summary>Gets m_p = ⌈B/ξp⌉, the number of prefill micro-batches of a configuration.</summary>
    /// <param name="configuration">A configuration.</param>
    /// <returns>The number of prefill micro-batches.</returns>
    public int PrefillMicroBatchCount(PlanningConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return (BatchSize + configuration.PrefillMicroBatch - 1) / configuration.PrefillMicroBatch;
    }

    /// <summary>Gets m_d = ⌈B/ξd⌉, the number of decode micro-batches of a configuration.</summary>
    /// <param name="configuration">A configuration.</param>
    /// <returns>The number of decode micro-batches.</returns>
    public int DecodeMicroBatchCount(PlanningConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return (BatchSize + configuration.DecodeMicroBatch - 1) / configuration.DecodeMicroBatch;
    }

    /// <summary>Gets the weight of the prefill bottleneck, m_p − 1 (0 with <see cref="SharedCompute"/>: nothing overlaps).</summary>
    /// <param name="configuration">A configuration.</param>
    /// <returns>The coefficient of max_j Tpre_j in the latency.</returns>
    public double PrefillBottleneckWeight(PlanningConfiguration configuration) =>
        SharedCompute ? 0 : PrefillMicroBatchCount(configuration) - 1;

    /// <summary>
    /// Gets the weight of the decode bottleneck, (max(m_d, N)·μn − 1) (0 with <see cref="SharedCompute"/>): decode is a pipeline of μn steps of every decode
    /// micro-batch, and a step of one micro-batch cannot start before its previous step left the last of the N stages.
    /// </summary>
    /// <param name="configuration">A configuration.</param>
    /// <returns>The coefficient of max_j Tdec_j in the latency.</returns>
    public double DecodeBottleneckWeight(PlanningConfiguration configuration) =>
        SharedCompute ? 0 : (Math.Max(DecodeMicroBatchCount(configuration), Devices.Count) * GeneratedTokens) - 1;
}

/// <summary>One device as the optimizer sees it.</summary>
/// <param name="Name">A name for reports.</param>
/// <param name="Kind">
/// The device kind, the key of <see cref="PlanningConfiguration.Costs"/>. Devices of one kind with the same memory,
/// between which and every other device the sends cost the same, are interchangeable, and the search treats them so.
/// </param>
/// <param name="Host">The host the device is on (for reports; sends between devices carry the cost of their link).</param>
/// <param name="MemoryBytes">The bytes available for layers (after the runtime's own reserve).</param>
public sealed record PlanningDevice(string Name, string Kind, string Host, long MemoryBytes);

/// <summary>One candidate pair of micro-batch sizes, with everything that costs under it.</summary>
public sealed record PlanningConfiguration
{
    /// <summary>Gets ξp, the sequences of one prefill micro-batch.</summary>
    public required int PrefillMicroBatch { get; init; }

    /// <summary>Gets ξd, the sequences of one decode micro-batch.</summary>
    public required int DecodeMicroBatch { get; init; }

    /// <summary>
    /// Gets the bytes every device sets aside under this configuration before layers are placed (buffers that grow
    /// with the micro-batches, for one): a device holds layers in its <see cref="PlanningDevice.MemoryBytes"/> less these.
    /// </summary>
    public long ReservedBytes { get; init; }

    /// <summary>Gets the costs of each device kind under this configuration, keyed by <see cref="PlanningDevice.Kind"/>.</summary>
    public required IReadOnlyDictionary<string, KindCosts> Costs { get; init; }

    /// <summary>
    /// Gets the seconds to send one prefill micro-batch's activations from device [i] to device [j] (the next stage),
    /// or null when sends are free.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<double>>? PrefillSendSeconds { get; init; }

    /// <summary>Gets the seconds to send one decode step's activations from device [i] to device [j], or null when sends are free.</summary>
    public IReadOnlyList<IReadOnlyList<double>>? DecodeSendSeconds { get; init; }
}

/// <summary>The costs of one device kind under one configuration.</summary>
public sealed record KindCosts
{
    /// <summary>
    /// Gets, per type index, one layer's cost: its bytes (weights at the type plus its KV cache for the workload), the
    /// seconds of one prefill micro-batch and the seconds of one decode step of one decode micro-batch.
    /// </summary>
    public required IReadOnlyList<StageCost> Layer { get; init; }

    /// <summary>Gets what the first stage holds and spends on top of its layers (the input side, such as the token embedding).</summary>
    public StageCost FirstStage { get; init; }

    /// <summary>Gets what the last stage holds and spends on top of its layers (the output layer).</summary>
    public StageCost LastStage { get; init; }
}

/// <summary>Bytes held and seconds spent by a part of a stage.</summary>
/// <param name="Bytes">The bytes it holds on the device.</param>
/// <param name="PrefillSeconds">The seconds it adds to one prefill micro-batch.</param>
/// <param name="DecodeSeconds">The seconds it adds to one decode step.</param>
public readonly record struct StageCost(long Bytes, double PrefillSeconds, double DecodeSeconds);
