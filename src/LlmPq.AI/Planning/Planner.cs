using System.Security.Cryptography;
using System.Text;
using LlmPq.Gguf;
using LlmPq.Planning.Indicator;
using LlmPq.Planning.Optimizer;

namespace LlmPq.Planning;

/// <summary>
/// Turns a model, a cluster, a workload and a quality target into a <see cref="Plan"/>: fills LLM-PQ's numeric
/// problem from the cost and memory models, solves it exactly, and plans the baselines in the same simulator.
/// </summary>
/// <remarks>
/// Micro-batches follow LLM-PQ: the decode micro-batch is ξd = ⌈B/N⌉ sequences (N devices) and the prefill
/// micro-batch ξp ranges over the divisors of ξd, one configuration of a single problem each. Layer costs are
/// evaluated on layer 0 (the optimizer needs layers of one shape); prefill at context s, decode at the mid-generation
/// context s + μn/2, as LLM-PQ queries its tables. Every stage loses its runtime reserve, and under each configuration
/// the compute buffer of its micro-batches, before layers are placed.
/// </remarks>
public static class Planner
{
    /// <summary>Plans the model on the cluster.</summary>
    /// <param name="model">The model's shape.</param>
    /// <param name="cluster">The devices and links.</param>
    /// <param name="workload">The offline batch to plan for.</param>
    /// <param name="quality">θ and the hard bound.</param>
    /// <param name="indicator">ω[layer, type], from the weights or the fallback.</param>
    /// <param name="costModel">The cost model (default: measured profiles where the cluster has them, else the roofline).</param>
    /// <param name="cancellationToken">Cancels the search.</param>
    /// <returns>The plan, with its baselines.</returns>
    /// <exception cref="PlanningException">Nothing fits; the message gives the shortfall in GiB.</exception>
    public static Plan Create(ModelSpec model, ClusterSpec cluster, Workload workload, QualityTarget quality, QualityIndicatorTable indicator, ICostModel? costModel = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(quality);
        ArgumentNullException.ThrowIfNull(indicator);
        if (indicator.LayerCount != model.LayerCount)
        {
            throw new ArgumentException($"The quality indicator has {indicator.LayerCount} layers; the model has {model.LayerCount}.", nameof(indicator));
        }

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();

        // One configuration per prefill micro-batch, solved together: they share the search's incumbent and bounds.
        var builder = new ProblemBuilder(model, cluster, workload, quality, indicator, costModel ?? new ProfiledCostModel());
        PlanningProblem problem = builder.Build();
        PlanningSolution solution = PlanOptimizer.Solve(problem, cancellationToken);
        double solveMilliseconds = stopwatch.Elapsed.TotalMilliseconds;
        IReadOnlyList<BaselinePlan> baselines = Baselines.All(builder, problem, cancellationToken);
        return builder.ToPlan(solution, baselines) with { SolveMilliseconds = solveMilliseconds };
    }

    /// <summary>
    /// Prices a given plan (the planner's, or one of its baselines as <see cref="Plan.ForBaseline"/> gives it) under a
    /// cost model: the same latency model the optimizer minimizes, so that one plan can be compared under several cost
    /// models (the roofline against measured profiles) and against what it measures.
    /// </summary>
    /// <param name="plan">The plan: its stages, types, micro-batches and workload.</param>
    /// <param name="model">The model's shape (the plan's).</param>
    /// <param name="cluster">The cluster the plan was made for (its devices are found by name).</param>
    /// <param name="indicator">ω[layer, type], for the candidate types.</param>
    /// <param name="costModel">The cost model.</param>
    /// <returns>What <paramref name="costModel"/> predicts for the plan.</returns>
    /// <exception cref="ArgumentException">The plan is not one of this model and cluster: another shape, a device or a type the planner does not know, a prefill micro-batch it does not consider.</exception>
    /// <exception cref="PlanningException">A stage does not fit its device.</exception>
    public static PredictedPerformance Evaluate(Plan plan, ModelSpec model, ClusterSpec cluster, QualityIndicatorTable indicator, ICostModel costModel)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(indicator);
        ArgumentNullException.ThrowIfNull(costModel);
        if (ShapeFingerprint(model) != plan.ModelShape)
        {
            throw new ArgumentException($"The plan was made for a model of shape {plan.ModelShape}; {model.Name} has shape {ShapeFingerprint(model)}.", nameof(plan));
        }

        var builder = new ProblemBuilder(model, cluster, plan.Workload, new QualityTarget(plan.Theta, plan.QualityBound), indicator, costModel);
        PlanningProblem problem = builder.Build();
        int config = problem.Configurations.ToList().FindIndex(c => c.PrefillMicroBatch == plan.PrefillMicroBatch);
        if (config < 0)
        {
            throw new ArgumentException($"The plan's prefill micro-batch is {plan.PrefillMicroBatch}; on this cluster the planner considers {string.Join(", ", problem.Configurations.Select(c => c.PrefillMicroBatch))}.", nameof(plan));
        }

        List<string> devices = [.. cluster.Devices.Select(d => d.Name)];
        List<GgmlType> types = [.. builder.Types];
        var stages = new List<(int Device, int Start, IReadOnlyList<int> Types)>(plan.Stages.Count);
        foreach (StagePlan stage in plan.Stages)
        {
            int device = devices.IndexOf(stage.Device.Name);
            if (device < 0)
            {
                throw new ArgumentException($"The plan's device '{stage.Device.Name}' is not in the cluster ({string.Join(", ", devices)}).", nameof(plan));
            }

            if (stage.LayerTypes.Where(t => !types.Contains(t)).Select(t => (GgmlType?)t).FirstOrDefault() is GgmlType unknown)
            {
                throw new ArgumentException($"The plan's type {GgmlTypes.Name(unknown)} is not a candidate type of {model.Name} ({string.Join(", ", types.Select(GgmlTypes.Name))}).", nameof(plan));
            }

            stages.Add((device, stage.LayerStart, [.. stage.LayerTypes.Select(t => types.IndexOf(t))]));
        }

        PlanningSolution solution = Baselines.Evaluate(problem, config, stages)
            ?? throw new PlanningException($"A stage of the plan does not fit its device in {cluster.Devices.Count} devices' memory, or a layer cannot take its type.");
        return builder.Predicted(solution);
    }

    /// <summary>Gets the serving token budget of a plan: enough tokens for every stage to hold one prefill micro-batch in flight, so the pipeline fills.</summary>
    internal static int TokenBudget(Workload workload, int prefillMicroBatch, int decodeMicroBatch, int stages) =>
        Math.Max(decodeMicroBatch, prefillMicroBatch * workload.PromptTokens * stages);

    /// <summary>
    /// A fingerprint of a model's shape: layer count and every matrix's name and shape, never the tensors' types or their
    /// order in the file, so that a model and its quantized copy (which llama.cpp writes in another order) share it.
    /// </summary>
    public static string ShapeFingerprint(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var text = new StringBuilder();
        text.Append(model.Architecture).Append('|').Append(model.LayerCount).Append('|').Append(model.TokenEmbedding.RowLength).Append('x').Append(model.TokenEmbedding.Rows);
        foreach (LayerSpec layer in model.Layers.Append(model.Output))
        {
            foreach (MatrixSpec m in layer.Matrices.OrderBy(m => m.Name, StringComparer.Ordinal))
            {
                text.Append('|').Append(layer.Index).Append(':').Append(m.Name).Append(':').Append(m.RowLength).Append('x').Append(m.Rows);
            }
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    /// <summary>Everything needed to fill the problem and to read a solution back into a plan.</summary>
    internal sealed class ProblemBuilder(ModelSpec model, ClusterSpec cluster, Workload workload, QualityTarget quality, QualityIndicatorTable indicator, ICostModel cost)
    {
        private readonly MemoryModel _memory = new(model, workload);

        public ModelSpec Model => model;

        public ClusterSpec Cluster => cluster;

        public Workload Workload => workload;

        public IReadOnlyList<GgmlType> Types { get; } = [.. PlanTypes.Default.Where(t => indicator.Types.Contains(t) && model.Layers.All(l => l.CanTake(t)))];

        public GgmlType OutputType { get; } = PlanTypes.OutputType(model);

        /// <summary>Gets LLM-PQ's candidate prefill micro-batches: the divisors of the decode micro-batch ξd = ⌈B/N⌉.</summary>
        public static IEnumerable<int> PrefillMicroBatches(ClusterSpec cluster, Workload workload)
        {
            int xiD = DecodeMicroBatch(cluster, workload);
            return Enumerable.Range(1, xiD).Where(d => xiD % d == 0);
        }

        /// <summary>Gets the bytes every device loses before layers are placed: its reserve and the compute buffer of the micro-batches.</summary>
        public long Overhead(DeviceSpec device, bool holdsOutput, int prefillMicroBatch) =>
            MemoryModel.ReserveBytes(device) + ComputeBuffer(holdsOutput, prefillMicroBatch);

        private long ComputeBuffer(bool holdsOutput, int prefillMicroBatch) =>
            _memory.ComputeBufferBytes(Math.Max(PrefillTokens(prefillMicroBatch), DecodeMicroBatch(cluster, workload)), holdsOutput);

        public int PrefillTokens(int sequences) => sequences * workload.PromptTokens;

        public PlanningProblem Build()
        {
            if (Types.Count == 0)
            {
                throw new PlanningException($"No candidate type fits every layer of {model.Name} (K-quants need rows that are multiples of 256) and the indicator.");
            }

            int xiD = DecodeMicroBatch(cluster, workload);
            LayerSpec layer = model.Layers[0];
            long decodeContext = workload.PromptTokens + (workload.ExpectedGeneratedTokens / 2);
            IReadOnlyList<DeviceSpec> kinds = [.. cluster.Devices.DistinctBy(CostKey)];
            bool serial = cluster.SharesCompute;

            // On shared cores the engine decodes all B sequences in one step that visits every stage in turn, μn steps:
            // price one step at B and charge the phase whole. Otherwise LLM-PQ's: one step of one micro-batch of ξd.
            int decodeBatch = serial ? workload.BatchSize : xiD;
            double decodeSteps = DecodePasses;

            // Bytes and decode times do not depend on the prefill micro-batch: work them out once.
            var decode = kinds.ToDictionary(CostKey, d => (
                Layer: Types.Select(t => (Bytes: _memory.LayerBytes(layer, t), Seconds: decodeSteps * cost.DecodeSeconds(d, layer, t, decodeBatch, decodeContext))).ToArray(),
                Output: decodeSteps * cost.DecodeSeconds(d, model.Output, OutputType, decodeBatch, 0)));
            long outputBytes = model.Output.WeightBytes(OutputType);

            // What a step costs outside the layers, carried by the last stage (every plan has one): the coordinator's
            // iteration (sampling each sequence) and, on shared cores, every stage's RPC step, which then adds up
            // rather than overlapping (every device holds a stage: UseAllDevices); measured whole through such a
            // pipeline where the profile has it.
            long decodeIn = model.ActivationBytes(decodeBatch) + ModelSpec.AttentionMaskBytes(decodeBatch, decodeContext + 1);
            double decodeExtra = decodeSteps * (cluster.PipelineStep is { } step ? step.Seconds(decodeBatch)
                : CoordinatorSeconds(decodeBatch) + (serial ? StageSteps(decodeIn, model.ActivationBytes(decodeBatch)) + Logits(decodeBatch) : 0));
            var decodeSends = serial ? null : Sends(model.ActivationBytes(xiD), ModelSpec.AttentionMaskBytes(xiD, decodeContext + 1));
            var configurations = new List<PlanningConfiguration>();
            foreach (int prefillMicroBatch in PrefillMicroBatches(cluster, workload))
            {
                int tokens = PrefillTokens(prefillMicroBatch);
                double passes = PrefillPasses(prefillMicroBatch);
                double prefillExtra = serial
                    ? ((PrefillIterations(prefillMicroBatch) - 1) * CoordinatorSeconds(0)) + CoordinatorSeconds(workload.BatchSize) + Logits(workload.BatchSize)
                        + (passes * StageSteps(model.ActivationBytes(tokens) + ModelSpec.AttentionMaskBytes(tokens, workload.PromptTokens), model.ActivationBytes(tokens)))
                    : CoordinatorSeconds(prefillMicroBatch);
                var costs = new Dictionary<string, KindCosts>();
                foreach (DeviceSpec device in kinds)
                {
                    var (layerDecode, outputDecode) = decode[CostKey(device)];
                    costs[CostKey(device)] = new KindCosts
                    {
                        Layer = [.. Types.Select((t, i) => new StageCost(layerDecode[i].Bytes, passes * cost.PrefillSeconds(device, layer, t, tokens, workload.PromptTokens), layerDecode[i].Seconds))],

                        // Only the last token of each sequence produces logits; the output buffer exceeds other stages' by this.
                        LastStage = new StageCost(
                            outputBytes - ComputeBuffer(holdsOutput: false, prefillMicroBatch) + ComputeBuffer(holdsOutput: true, prefillMicroBatch),
                            (passes * cost.PrefillSeconds(device, model.Output, OutputType, prefillMicroBatch, 0)) + prefillExtra,
                            outputDecode + decodeExtra),
                    };
                }

                configurations.Add(new PlanningConfiguration
                {
                    PrefillMicroBatch = prefillMicroBatch,
                    DecodeMicroBatch = xiD,
                    ReservedBytes = ComputeBuffer(holdsOutput: false, prefillMicroBatch),
                    Costs = costs,
                    PrefillSendSeconds = serial ? null : Sends(model.ActivationBytes(tokens), ModelSpec.AttentionMaskBytes(tokens, workload.PromptTokens)),
                    DecodeSendSeconds = decodeSends,
                });
            }

            return new PlanningProblem
            {
                TypeNames = [.. Types.Select(GgmlTypes.Name)],
                Omega = [.. Enumerable.Range(0, model.LayerCount).Select(l => (IReadOnlyList<double?>)[.. Types.Select(t => indicator.Get(l, t))])],
                Devices = [.. cluster.Devices.Select(d => new PlanningDevice(d.Name, CostKey(d), d.Host, Math.Max(0, d.MemoryBytes - MemoryModel.ReserveBytes(d))))], // a budget below the reserve holds no layer
                SharedCompute = serial,
                Configurations = configurations,
                BatchSize = workload.BatchSize,
                GeneratedTokens = workload.ExpectedGeneratedTokens,
                Theta = quality.Theta,
                MaxOmega = quality.NoWorseThan is GgmlType bound ? UniformOmega(bound) : null,
            };
        }

        /// <summary>Σω of the whole model at one type; a type some layer cannot take counts that layer at its nearest richer type.</summary>
        public double UniformOmega(GgmlType type)
        {
            double total = 0;
            for (int l = 0; l < model.LayerCount; l++)
            {
                total += indicator.Get(l, type)
                    ?? PlanTypes.All.Where(t => GgmlTypes.BitsPerWeight(t) >= GgmlTypes.BitsPerWeight(type)).OrderBy(GgmlTypes.BitsPerWeight)
                        .Select(t => indicator.Get(l, t)).FirstOrDefault(v => v is not null)
                    ?? 0;
            }

            return total;
        }

        public Plan ToPlan(PlanningSolution solution, IReadOnlyList<BaselinePlan> baselines) => new()
        {
            Model = model.Name,
            ModelShape = ShapeFingerprint(model),
            LayerCount = model.LayerCount,
            Workload = workload,
            Theta = quality.Theta,
            QualityBound = quality.NoWorseThan,
            Stages = Stages(solution),
            EmbeddingType = PlanTypes.EmbeddingType(model),
            OutputType = OutputType,
            PrefillMicroBatch = solution.PrefillMicroBatch,
            DecodeMicroBatch = solution.DecodeMicroBatch,

            TokenBudget = TokenBudget(workload, solution.PrefillMicroBatch, solution.DecodeMicroBatch, solution.Stages.Count),
            Indicator = solution.Omega,
            IndicatorMethod = indicator.Method,
            Predicted = Predicted(solution),
            Baselines = baselines,
            SolveMilliseconds = solution.SolveTime.TotalMilliseconds,
        };

        public IReadOnlyList<StagePlan> Stages(PlanningSolution solution) =>
        [
            .. solution.Stages.Select((s, j) =>
            {
                DeviceSpec device = cluster.Devices[s.Device];
                return new StagePlan(
                    new PlanDevice(device.Kind, device.Name, device.MemoryBytes, device.Host, device.Endpoint, device.Threads ?? 0),
                    s.LayerStart,
                    s.LayerEnd,
                    [.. s.Types.Select(t => Types[t])],
                    s.MemoryBytes + Overhead(device, holdsOutput: false, solution.PrefillMicroBatch), // the last stage's extra output buffer is in its bytes
                    s.PrefillSeconds / PrefillPasses(solution.PrefillMicroBatch),
                    s.DecodeSeconds / DecodePasses);
            }),
        ];

        public PredictedPerformance Predicted(PlanningSolution solution)
        {
            // The prefill pipeline's share of the latency; the rest is decode. On shared cores the costs are the phase's whole.
            double prefill = solution.Stages.Sum(s => s.PrefillSeconds) + (cluster.SharesCompute ? 0 : (PrefillMicroBatchCount(solution.PrefillMicroBatch) - 1) * solution.Stages.Max(s => s.PrefillSeconds));
            return new PredictedPerformance(solution.TokensPerSecond, prefill, solution.LatencySeconds - prefill);
        }

        // On shared cores a stage's costs are its phase's whole: this many micro-batch passes (prefill) and steps (decode).
        private double PrefillPasses(int prefillMicroBatch) => cluster.SharesCompute ? PrefillMicroBatchCount(prefillMicroBatch) : 1;

        // m_p = ⌈B/ξp⌉.
        private int PrefillMicroBatchCount(int prefillMicroBatch) => (workload.BatchSize + prefillMicroBatch - 1) / prefillMicroBatch;

        private double DecodePasses => cluster.SharesCompute ? workload.ExpectedGeneratedTokens : 1;

        // The engine's prefill iterations: each takes the plan's token budget of prompt tokens.
        private int PrefillIterations(int prefillMicroBatch)
        {
            long budget = TokenBudget(workload, prefillMicroBatch, DecodeMicroBatch(cluster, workload), cluster.Devices.Count);
            return (int)(((long)workload.BatchSize * workload.PromptTokens + budget - 1) / budget);
        }

        // The logits of the sampled rows, read back from the last stage within the coordinator's host.
        private double Logits(int sequences) => sizeof(float) * model.VocabularySize * sequences * 8.0 / (cluster.Link(cluster.Coordinator, cluster.Coordinator).Gbps * 1e9);

        private double CoordinatorSeconds(int sequences) => cluster.CoordinatorProfile?.Seconds(sequences) ?? 0;

        // One step of every stage through ggml RPC (every device holds one).
        private double StageSteps(long bytesIn, long bytesOut) => cluster.Devices.Sum(d => cluster.StageStepSeconds(d, bytesIn, bytesOut));

        private static int DecodeMicroBatch(ClusterSpec cluster, Workload workload) => (workload.BatchSize + cluster.Devices.Count - 1) / cluster.Devices.Count;

        // Devices with their own profile or memory are their own kind for costs; the rest share their catalog kind.
        private static string CostKey(DeviceSpec d) => d.Profile is null && d.Threads is null ? d.Kind : $"{d.Kind}/{d.Name}";

        // The activations leave one stage and reach the next through the coordinator, which also sends the next its mask.
        private IReadOnlyList<IReadOnlyList<double>> Sends(long bytes, long maskBytes) =>
            [.. cluster.Devices.Select(from => (IReadOnlyList<double>)[.. cluster.Devices.Select(to => from == to ? 0 : cluster.TransferSeconds(from, to, bytes) + (maskBytes * 8.0 / (cluster.Leg(to).Gbps * 1e9)))])];
    }
}
