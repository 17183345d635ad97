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
/// micro-batch ξp ranges over the divisors of ξd. Layer costs are evaluated on layer 0 (the optimizer needs layers of
/// one shape); prefill at context s, decode at the mid-generation context s + μn/2, as LLM-PQ queries its tables.
/// Every stage loses its runtime reserve and the largest compute buffer of any configuration before layers are placed,
/// so a plan fits whatever configuration is chosen.
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
        PlanningException? lastFailure = null;
        (ProblemBuilder Builder, PlanningProblem Problem, PlanningSolution Solution)? best = null;
        var problems = new List<(ProblemBuilder Builder, PlanningProblem Problem)>();

        // One problem per prefill micro-batch: its compute buffers, and so the memory left for layers, depend on it.
        foreach (int prefillMicroBatch in ProblemBuilder.PrefillMicroBatches(cluster, workload))
        {
            var builder = new ProblemBuilder(model, cluster, workload, quality, indicator, costModel ?? new ProfiledCostModel(), prefillMicroBatch);
            PlanningProblem problem = builder.Build();
            problems.Add((builder, problem));
            try
            {
                PlanningSolution solution = PlanOptimizer.Solve(problem, cancellationToken);
                if (best is null || solution.Objective < best.Value.Solution.Objective)
                {
                    best = (builder, problem, solution);
                }
            }
            catch (PlanningException ex)
            {
                lastFailure = ex;
            }
        }

        if (best is not { } found)
        {
            throw lastFailure ?? new PlanningException("No micro-batch configuration could be planned.");
        }

        double solveMilliseconds = stopwatch.Elapsed.TotalMilliseconds;
        IReadOnlyList<BaselinePlan> baselines = Baselines.All(problems, cancellationToken);
        return found.Builder.ToPlan(found.Solution, baselines) with { SolveMilliseconds = solveMilliseconds };
    }

    /// <summary>A fingerprint of a model's shape: layer count and every matrix's name and shape.</summary>
    public static string ShapeFingerprint(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var text = new StringBuilder();
        text.Append(model.Architecture).Append('|').Append(model.LayerCount).Append('|').Append(model.TokenEmbedding.RowLength).Append('x').Append(model.TokenEmbedding.Rows);
        foreach (LayerSpec layer in model.Layers.Append(model.Output))
        {
            foreach (MatrixSpec m in layer.Matrices)
            {
                text.Append('|').Append(layer.Index).Append(':').Append(m.Name).Append(':').Append(m.RowLength).Append('x').Append(m.Rows);
            }
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    /// <summary>Everything needed to fill the problem and to read a solution back into a plan.</summary>
    internal sealed class ProblemBuilder(ModelSpec model, ClusterSpec cluster, Workload workload, QualityTarget quality, QualityIndicatorTable indicator, ICostModel cost, int prefillMicroBatch)
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

        /// <summary>Gets the bytes every device loses before layers are placed: its reserve and the compute buffer of the micro-batch.</summary>
        public long Overhead(DeviceSpec device, bool holdsOutput) =>
            MemoryModel.ReserveBytes(device) + _memory.ComputeBufferBytes(Math.Max(PrefillTokens(prefillMicroBatch), DecodeMicroBatch(cluster, workload)), holdsOutput);

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
            var costs = new Dictionary<string, KindCosts>();
            foreach (DeviceSpec device in cluster.Devices.DistinctBy(CostKey))
            {
                costs[CostKey(device)] = new KindCosts
                {
                    Layer = [.. Types.Select(t => new StageCost(
                        _memory.LayerBytes(layer, t),
                        cost.PrefillSeconds(device, layer, t, PrefillTokens(prefillMicroBatch), workload.PromptTokens),
                        cost.DecodeSeconds(device, layer, t, xiD, decodeContext)))],

                    // Only the last token of each sequence produces logits; the output buffer exceeds other stages' by this.
                    LastStage = new StageCost(
                        model.Output.WeightBytes(OutputType) - Overhead(device, holdsOutput: false) + Overhead(device, holdsOutput: true),
                        cost.PrefillSeconds(device, model.Output, OutputType, prefillMicroBatch, 0),
                        cost.DecodeSeconds(device, model.Output, OutputType, xiD, 0)),
                };
            }

            var configuration = new PlanningConfiguration
            {
                PrefillMicroBatch = prefillMicroBatch,
                DecodeMicroBatch = xiD,
                Costs = costs,
                PrefillSendSeconds = Sends(model.ActivationBytes(PrefillTokens(prefillMicroBatch))),
                DecodeSendSeconds = Sends(model.ActivationBytes(xiD)),
            };

            return new PlanningProblem
            {
                TypeNames = [.. Types.Select(GgmlTypes.Name)],
                Omega = [.. Enumerable.Range(0, model.LayerCount).Select(l => (IReadOnlyList<double?>)[.. Types.Select(t => indicator.Get(l, t))])],
                Devices = [.. cluster.Devices.Select(d => new PlanningDevice(d.Name, CostKey(d), d.Host, Math.Max(0, d.MemoryBytes - Overhead(d, holdsOutput: false))))], // a budget below the overhead holds no layer
                Configurations = [configuration],
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

            // Enough tokens for every stage to hold one prefill micro-batch in flight, so the pipeline fills.
            TokenBudget = Math.Max(solution.DecodeMicroBatch, PrefillTokens(solution.PrefillMicroBatch) * solution.Stages.Count),
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
                    s.MemoryBytes + Overhead(device, holdsOutput: false), // the last stage's extra output buffer is in its bytes
                    s.PrefillSeconds,
                    s.DecodeSeconds);
            }),
        ];

        public PredictedPerformance Predicted(PlanningSolution solution)
        {
            // The prefill pipeline's share of the latency; the rest is decode.
            int mp = (workload.BatchSize + solution.PrefillMicroBatch - 1) / solution.PrefillMicroBatch;
            double prefill = solution.Stages.Sum(s => s.PrefillSeconds) + ((mp - 1) * solution.Stages.Max(s => s.PrefillSeconds));
            return new PredictedPerformance(solution.TokensPerSecond, prefill, solution.LatencySeconds - prefill);
        }

        private static int DecodeMicroBatch(ClusterSpec cluster, Workload workload) => (workload.BatchSize + cluster.Devices.Count - 1) / cluster.Devices.Count;

        // Devices with their own profile or memory are their own kind for costs; the rest share their catalog kind.
        private static string CostKey(DeviceSpec d) => d.Profile is null && d.Threads is null ? d.Kind : $"{d.Kind}/{d.Name}";

        private IReadOnlyList<IReadOnlyList<double>> Sends(long bytes) =>
            [.. cluster.Devices.Select(from => (IReadOnlyList<double>)[.. cluster.Devices.Select(to => from == to ? 0 : cluster.TransferSeconds(from, to, bytes))])];
    }
}
