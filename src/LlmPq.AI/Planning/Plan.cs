using System.Text.Json;
using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>The device a stage runs on, as the plan records it.</summary>
/// <param name="Kind">The catalog kind (<c>T4</c>, <c>CPU</c>, …).</param>
/// <param name="Name">The device's name in the cluster file.</param>
/// <param name="MemoryBytes">The device's memory.</param>
/// <param name="Host">The host it sits on.</param>
/// <param name="Endpoint">The stage server's <c>host:port</c>, when the cluster file gives one.</param>
/// <param name="Threads">A CPU stage's threads, when the cluster file gives them; 0 otherwise.</param>
public sealed record PlanDevice(string Kind, string Name, long MemoryBytes, string Host, string? Endpoint, int Threads = 0);

/// <summary>One pipeline stage: a device, a contiguous layer range, and a type per layer.</summary>
/// <param name="Device">The device.</param>
/// <param name="LayerStart">The first layer.</param>
/// <param name="LayerEnd">One past the last layer.</param>
/// <param name="LayerTypes">The weight type of each layer of the range, in order.</param>
/// <param name="MemoryBytes">What the stage needs: weights, KV cache of the workload, compute buffers, reserve.</param>
/// <param name="PrefillSeconds">The stage's time for one prefill micro-batch.</param>
/// <param name="DecodeSeconds">The stage's time for one decode step of one decode micro-batch.</param>
public sealed record StagePlan(PlanDevice Device, int LayerStart, int LayerEnd, IReadOnlyList<GgmlType> LayerTypes, long MemoryBytes, double PrefillSeconds, double DecodeSeconds);

/// <summary>What the cost model predicts for a plan on the workload.</summary>
/// <param name="ThroughputTokensPerSecond">Generated tokens per second over the whole batch.</param>
/// <param name="PrefillSeconds">The prefill phase of the batch.</param>
/// <param name="DecodeSeconds">The decode phase of the batch.</param>
public sealed record PredictedPerformance(double ThroughputTokensPerSecond, double PrefillSeconds, double DecodeSeconds)
{
    /// <summary>Gets the end-to-end latency of the batch.</summary>
    public double LatencySeconds => PrefillSeconds + DecodeSeconds;
}

/// <summary>A baseline planned in the same simulator, for comparison.</summary>
/// <param name="Name">The baseline (<c>llama.cpp default</c>, <c>Uniform</c>, <c>PipeEdge</c>, <c>AdaBits</c>).</param>
/// <param name="Predicted">Its predicted performance, or null when it does not fit.</param>
/// <param name="Indicator">Its quality indicator Σω, or null when it does not fit.</param>
/// <param name="Stages">Its stages (empty when it does not fit).</param>
/// <param name="Note">Why it does not fit, or how it was formed.</param>
public sealed record BaselinePlan(string Name, PredictedPerformance? Predicted, double? Indicator, IReadOnlyList<StagePlan> Stages, string? Note = null)
{
    /// <summary>Gets whether the baseline fits the cluster (written as <c>fits</c>, so a plan file says so in words).</summary>
    public bool Fits => Predicted is not null;

    /// <summary>Gets the prefill micro-batch it was priced with (0 in plan files written before it was recorded: the decode micro-batch, as LLM-PQ runs baselines).</summary>
    public int PrefillMicroBatch { get; init; }
}

/// <summary>
/// The planner's answer: the device order, a contiguous layer range per device, a GGUF type per layer, and the
/// micro-batch sizes, with what they are predicted to do. Written as JSON (<see cref="PlanningJson"/>) by
/// <c>llmpq plan --out</c> and read by <c>llmpq quantize</c> and the pipeline.
/// </summary>
public sealed record Plan
{
    /// <summary>Gets the model's name.</summary>
    public required string Model { get; init; }

    /// <summary>Gets a fingerprint of the model's shape (layer count and every matrix's shape), so a plan is never applied to another model.</summary>
    public required string ModelShape { get; init; }

    /// <summary>Gets the model's repeating-layer count.</summary>
    public required int LayerCount { get; init; }

    /// <summary>Gets the workload planned for.</summary>
    public required Workload Workload { get; init; }

    /// <summary>Gets the quality weight θ the plan was made with.</summary>
    public required double Theta { get; init; }

    /// <summary>Gets the hard quality bound ("no worse than uniform TYPE"), or null.</summary>
    public GgmlType? QualityBound { get; init; }

    /// <summary>Gets the stages in pipeline order.</summary>
    public required IReadOnlyList<StagePlan> Stages { get; init; }

    /// <summary>Gets the token embedding's type (it stays in the coordinator's memory, as llama.cpp keeps the input layer on the CPU).</summary>
    public required GgmlType EmbeddingType { get; init; }

    /// <summary>Gets the output matrix's type (on the last stage).</summary>
    public required GgmlType OutputType { get; init; }

    /// <summary>Gets the prefill micro-batch in sequences.</summary>
    public required int PrefillMicroBatch { get; init; }

    /// <summary>Gets the decode micro-batch in sequences.</summary>
    public required int DecodeMicroBatch { get; init; }

    /// <summary>Gets the serving token budget per iteration (llama.cpp's <c>n_batch</c>; the micro-batch is <c>n_ubatch</c>).</summary>
    public required int TokenBudget { get; init; }

    /// <summary>Gets the plan's quality indicator Σω (lower is better).</summary>
    public required double Indicator { get; init; }

    /// <summary>Gets how the quality indicator was obtained (from the weights, or the documented fallback).</summary>
    public required string IndicatorMethod { get; init; }

    /// <summary>Gets the predicted performance.</summary>
    public required PredictedPerformance Predicted { get; init; }

    /// <summary>Gets the baselines planned in the same simulator.</summary>
    public IReadOnlyList<BaselinePlan> Baselines { get; init; } = [];

    /// <summary>Gets how long the optimizer took.</summary>
    public double SolveMilliseconds { get; init; }

    /// <summary>Gets the plan as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, PlanningJson.Options);

    /// <summary>Reads a plan from JSON; a malformed plan is an <see cref="InvalidDataException"/> saying what is wrong.</summary>
    public static Plan FromJson(string json)
    {
        Plan plan;
        try
        {
            plan = JsonSerializer.Deserialize<Plan>(json, PlanningJson.Options) ?? throw new InvalidDataException("plan: the JSON is null.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"plan: {ex.Message}", ex);
        }

        int next = 0;
        foreach (StagePlan stage in plan.Stages)
        {
            if (stage.LayerStart != next || stage.LayerEnd <= stage.LayerStart || stage.LayerTypes.Count != stage.LayerEnd - stage.LayerStart)
            {
                throw new InvalidDataException($"plan: stage on '{stage.Device.Name}' covers layers [{stage.LayerStart}, {stage.LayerEnd}) with {stage.LayerTypes.Count} types; stages must cover 0..{plan.LayerCount} contiguously with one type per layer.");
            }

            next = stage.LayerEnd;
        }

        return next == plan.LayerCount && plan.Stages.Count > 0
            ? plan
            : throw new InvalidDataException($"plan: the stages cover {next} of {plan.LayerCount} layers.");
    }

    /// <summary>Reads a plan file.</summary>
    public static Plan Load(string path)
    {
        try
        {
            return FromJson(File.ReadAllText(path));
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }

    /// <summary>Gets every layer's type in order.</summary>
    public IReadOnlyList<GgmlType> LayerTypes() => [.. Stages.SelectMany(s => s.LayerTypes)];

    /// <summary>
    /// Gets the plan that one of this plan's baselines stands for, to quantize and serve it as this plan would be: the
    /// same model and workload, the baseline's stages, types, prediction and prefill micro-batch (the decode
    /// micro-batch where it recorded none, ξp = ξd as LLM-PQ runs its baselines), and no baselines of its own.
    /// </summary>
    /// <param name="baseline">One of <see cref="Baselines"/> (or a baseline planned for the same model and cluster).</param>
    /// <returns>The baseline as a plan.</returns>
    /// <exception cref="ArgumentException">The baseline does not fit, or its stages do not cover this plan's layers.</exception>
    public Plan ForBaseline(BaselinePlan baseline)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        if (baseline is not { Predicted: { } predicted, Indicator: double omega } || baseline.Stages.Count == 0)
        {
            throw new ArgumentException($"The baseline '{baseline.Name}' does not fit the cluster ({baseline.Note}); there is no plan to run.", nameof(baseline));
        }

        int prefillMicroBatch = baseline.PrefillMicroBatch > 0 ? baseline.PrefillMicroBatch : DecodeMicroBatch;
        var plan = this with
        {
            Stages = baseline.Stages,
            PrefillMicroBatch = prefillMicroBatch,
            TokenBudget = Planner.TokenBudget(Workload, prefillMicroBatch, DecodeMicroBatch, baseline.Stages.Count),
            Indicator = omega,
            Predicted = predicted,
            Baselines = [],
            SolveMilliseconds = 0,
        };
        try
        {
            // The same checks as a plan file read back gets.
            return FromJson(plan.ToJson());
        }
        catch (InvalidDataException ex)
        {
            throw new ArgumentException($"The baseline '{baseline.Name}' is not a plan of this model: {ex.Message}", nameof(baseline), ex);
        }
    }
}
