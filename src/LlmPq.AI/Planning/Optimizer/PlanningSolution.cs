namespace LlmPq.Planning.Optimizer;

/// <summary>The optimizer's answer: the best plan for a <see cref="PlanningProblem"/> and what it costs.</summary>
public sealed record PlanningSolution
{
    /// <summary>Gets the stages in pipeline order.</summary>
    public required IReadOnlyList<PlannedStage> Stages { get; init; }

    /// <summary>Gets the index of the chosen configuration in <see cref="PlanningProblem.Configurations"/>.</summary>
    public required int Configuration { get; init; }

    /// <summary>Gets ξp of the chosen configuration.</summary>
    public required int PrefillMicroBatch { get; init; }

    /// <summary>Gets ξd of the chosen configuration.</summary>
    public required int DecodeMicroBatch { get; init; }

    /// <summary>Gets the modelled latency of the batch in seconds (see <see cref="PlanningProblem"/>).</summary>
    public required double LatencySeconds { get; init; }

    /// <summary>Gets Σ_l ω[l, t_l].</summary>
    public required double Omega { get; init; }

    /// <summary>Gets latency + θ·Σω, the value minimized.</summary>
    public required double Objective { get; init; }

    /// <summary>Gets B·μn / latency: the generated tokens per second.</summary>
    public required double TokensPerSecond { get; init; }

    /// <summary>Gets how long the optimizer took.</summary>
    public required TimeSpan SolveTime { get; init; }

    /// <summary>Gets the device indices in pipeline order.</summary>
    public IReadOnlyList<int> DeviceOrder => Stages.Select(s => s.Device).ToArray();
}

/// <summary>One stage of a plan.</summary>
/// <param name="Device">The device's index in <see cref="PlanningProblem.Devices"/>.</param>
/// <param name="LayerStart">The first layer of the stage.</param>
/// <param name="LayerEnd">One past the last layer of the stage.</param>
/// <param name="Types">The type index of each layer of the stage, in order.</param>
/// <param name="MemoryBytes">The bytes the stage holds: its layers plus its first- or last-stage extras.</param>
/// <param name="PrefillSeconds">Tpre_j: the larger of its prefill compute and its send to the next stage.</param>
/// <param name="DecodeSeconds">Tdec_j: the larger of its decode compute and its send to the next stage.</param>
public sealed record PlannedStage(
    int Device, int LayerStart, int LayerEnd, IReadOnlyList<int> Types, long MemoryBytes, double PrefillSeconds, double DecodeSeconds);
