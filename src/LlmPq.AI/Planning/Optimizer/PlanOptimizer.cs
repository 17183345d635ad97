using System.Diagnostics;
using System.Globalization;

namespace LlmPq.Planning.Optimizer;

/// <summary>
/// LLM-PQ's optimizer, exact and in managed code: the device order, a contiguous layer range per device, a type per
/// layer and the micro-batch configuration that minimize latency + θ·Σω (see <see cref="PlanningProblem"/>).
/// </summary>
/// <remarks>
/// <para>
/// LLM-PQ solves an ILP per device order and prefill micro-batch with Gurobi (1–126 s, layers grouped to keep it
/// small). The chain structure needs no ILP. Per configuration:
/// </para>
/// <list type="number">
/// <item><description>
/// Stage options: for each first layer and class of interchangeable devices, a dynamic program over the stage's layers
/// keeps the Pareto front of (memory, prefill, decode, cost) over type assignments. All layers have one shape, so
/// memory and times are sums of per-type constants and cost a sum of per-layer terms: an assignment no better in any of
/// them than another of the same layers is never needed. Where every layer also has the same ω (the fallback
/// indicator's layers of one shape), the stages of one length have the same options wherever they start: one program
/// per class serves all starts, and the search works out each length once.
/// </description></item>
/// <item><description>
/// Chains: a dynamic program over (first layer, multiset of devices left, class of the stage) joins stages. Devices are
/// interchangeable when swapping them maps the problem onto itself (same kind and memory, same sends to and from every
/// other device); they are counted, not ordered, so device orders that differ only by such swaps share all their work.
/// </description></item>
/// <item><description>
/// Bottlenecks: branch and bound over the values of max Tpre and max Tdec. Capping every stage's times turns the
/// maxima into per-stage constraints and the rest of the objective into a sum the chain program minimizes; the plan
/// found at a box's upper corner settles every plan of the box with larger bottlenecks, and lower bounds (the caps'
/// floors spread over the stages) discard the rest of most boxes.
/// </description></item>
/// </list>
/// <para>
/// Configurations are searched in the order of their lower bounds and share the incumbent; one whose bound (the least
/// bottlenecks, then the first box's bound with each stage bounded by its layers' least costs) does not beat it is
/// passed over before its stage options are built.
/// </para>
/// <para>
/// A hard bound on Σω (<see cref="PlanningProblem.MaxOmega"/>) is first ignored: if a configuration's optimum meets it,
/// it is that configuration's answer. Otherwise its search runs again with Σω as a resource: Lagrangian bounds (θ
/// raised by a multiplier) prune, and narrow boxes are solved over the Pareto fronts of (Σω, cost). When no plan with
/// one type per stage meets the bound, the least Σω that fits in memory is found first, so that a bound no plan meets
/// does not take a whole search to prove.
/// </para>
/// <para>
/// Nothing is discretized, so the plan returned is optimal. Bytes are compared exactly, so the plan always fits;
/// seconds and Σω are compared with a relative tolerance of 1e-12 (and where a class's seconds are an affine function
/// of a layer's bytes to 1e-9, they are taken as such), so the objective found is the optimum to about that relative
/// precision, and Σω may exceed <see cref="PlanningProblem.MaxOmega"/> by at most 1e-12 of it. Pruning uses
/// incumbents (first from plans with one type per stage) and bounds that hold for every plan, so it never removes a
/// better plan. The running time depends on the size of the Pareto fronts: small where a time rises with bytes (the
/// roofline's memory-bound decode), larger for arbitrary measured tables; <see cref="OptimizerBenchmark"/> times both.
/// </para>
/// </remarks>
public static class PlanOptimizer
{
    // Boxes the incumbent's search over uniform stages may take: it needs a good plan, not a proof.
    private const int IncumbentBoxes = 16;

    /// <summary>Finds the plan with the least latency + θ·Σω.</summary>
    /// <param name="problem">The problem.</param>
    /// <param name="cancellationToken">Cancels the search.</param>
    /// <returns>The optimal plan.</returns>
    /// <exception cref="ArgumentException">The problem is malformed.</exception>
    /// <exception cref="PlanningException">
    /// No plan is feasible: the model does not fit at its smallest types (the message and
    /// <see cref="PlanningException.ShortfallBytes"/> give the memory missing), there are more devices than layers, or
    /// no plan meets <see cref="PlanningProblem.MaxOmega"/>.
    /// </exception>
    public static PlanningSolution Solve(PlanningProblem problem, CancellationToken cancellationToken = default)
    {
        var stopwatch = Stopwatch.StartNew();
        var model = SolverModel.Create(problem);
        if (model.UseAllDevices && problem.Devices.Count > model.LayerCount)
        {
            throw new PlanningException(
                $"Every device must hold a layer, but there are {problem.Devices.Count} devices and {model.LayerCount} layers; allow unused devices (UseAllDevices = false) or use fewer devices.");
        }

        var plan = Search(model, out double leastOmega, cancellationToken);
        return plan is null
            ? throw Infeasible(model, leastOmega, cancellationToken)
            : ToSolution(model, plan, stopwatch.Elapsed);
    }

    // Configurations in order of their lower bounds, sharing one incumbent that always meets the quality bound. Under a
    // bound, each is first solved without it (a relaxation: a plan no better than the incumbent settles it, and an
    // optimum that meets the bound anyway is the configuration's answer), then with it only if need be. When no plan is
    // found, leastOmega is the least Σω of any plan that fits in memory.
    private static ConfigurationPlan? Search(SolverModel model, out double leastOmega, CancellationToken cancellationToken)
    {
        leastOmega = double.PositiveInfinity;
        bool hasBound = double.IsFinite(model.MaxOmega);
        double incumbent = double.PositiveInfinity;
        ConfigurationPlan? best = null;
        var bounds = new (double Prefill, double Decode)[model.Configurations.Length];
        foreach (var config in model.Configurations)
        {
            bounds[config.Index] = (MinMax(model, config, decode: false, cancellationToken), MinMax(model, config, decode: true, cancellationToken));
            if (double.IsPositiveInfinity(bounds[config.Index].Prefill) || hasBound)
            {
                continue;
            }

            // An incumbent from plans with one type per stage: cheap, and usually close enough to prune hard.
            best = Improve(model, config, Uniform(model, config, bounded: false), bounded: false, bounds[config.Index], ref incumbent, IncumbentBoxes, cancellationToken) ?? best;
        }

        foreach (var config in model.Configurations.OrderBy(c => LowerBound(model, c, bounds[c.Index])))
        {
            if (!(LowerBound(model, config, bounds[config.Index]) < incumbent))
            {
                continue;
            }

            if (!(Floor(model, config, bounds[config.Index], cancellationToken) < incumbent))
            {
                continue;
            }

            double cutoff = incumbent;
            var plan = hasBound
                ? Improve(model, config, Uniform(model, config, bounded: false), bounded: false, bounds[config.Index], ref cutoff, IncumbentBoxes, cancellationToken)
                : null;

            plan = Exact(model, config, bounded: false, bounds[config.Index], ref cutoff, cancellationToken) ?? plan;
            if (plan is null)
            {
                continue;
            }

            if (plan.Omega > model.MaxOmega * (1 + 1e-12))
            {
                // Plans that meet the bound: first some with one type per stage, then the exact search.
                cutoff = incumbent;
                plan = Improve(model, config, Uniform(model, config, bounded: true), bounded: true, bounds[config.Index], ref cutoff, IncumbentBoxes, cancellationToken);

                // None found: perhaps there is none, which the exact search would take long to prove.
                if (plan is null)
                {
                    double least = LeastOmega(model.Problem with { Configurations = [config.Configuration] }, cancellationToken);
                    leastOmega = Math.Min(leastOmega, least);
                    if (least > model.MaxOmega * (1 + 1e-12))
                    {
                        continue;
                    }
                }

                plan = Exact(model, config, bounded: true, bounds[config.Index], ref cutoff, cancellationToken) ?? plan;
            }

            if (plan is not null)
            {
                (incumbent, best) = (cutoff, plan);
            }
        }

        return best;
    }

    // Σ_j T_j ≥ max_j T_j, so no plan of the configuration has less than θ·min Σω + (A+1)·min max Tpre + (B+1)·min max Tdec.
    private static double LowerBound(SolverModel model, ConfigModel config, (double Prefill, double Decode) bound) =>
        (model.Theta * model.MinOmega) + ((config.PrefillWeight + 1) * bound.Prefill) + ((config.DecodeWeight + 1) * bound.Decode);

    private static StageOptions[] Uniform(SolverModel model, ConfigModel config, bool bounded)
    {
        var builder = new StageOptionBuilder(model, config);
        return Options(model, (a, k) => builder.BuildUniform(a, k, bounded));
    }

    // The best plan of the configuration if it beats the incumbent (lowered to its objective), else null.
    private static ConfigurationPlan? Exact(SolverModel model, ConfigModel config, bool bounded, (double Prefill, double Decode) bounds, ref double incumbent, CancellationToken cancellationToken)
    {
        var (minMaxPrefill, minMaxDecode) = bounds;
        if (!(LowerBound(model, config, bounds) < incumbent))
        {
            return null;
        }

        // A plan better than the incumbent has (A+1)·max Tpre + (B+1)·max Tdec + θ·Σω below it.
        double slack = incumbent - (model.Theta * model.MinOmega);
        var limits = new BuildLimits(
            incumbent,
            Relaxed((slack - ((config.DecodeWeight + 1) * minMaxDecode)) / (config.PrefillWeight + 1)),
            Relaxed((slack - ((config.PrefillWeight + 1) * minMaxPrefill)) / (config.DecodeWeight + 1)),
            minMaxPrefill,
            minMaxDecode,
            bounded);
        return Improve(model, config, Build(model, config, limits, cancellationToken), bounded, bounds, ref incumbent, int.MaxValue, cancellationToken);

        // Rounding must not cut off a plan that ties the bound.
        static double Relaxed(double limit) => limit * (1 + 1e-9);
    }

    private static StageOptions[] Build(SolverModel model, ConfigModel config, BuildLimits limits, CancellationToken cancellationToken)
    {
        var options = new StageOptions[model.LayerCount * model.ClassCount];
        if (model.UniformLayers)
        {
            Parallel.For(
                0,
                model.ClassCount,
                new ParallelOptions { CancellationToken = cancellationToken },
                k => new StageOptionBuilder(model, config).BuildShared(k, limits, options));
        }
        else
        {
            Parallel.For(
                0,
                model.LayerCount,
                new ParallelOptions { CancellationToken = cancellationToken },
                () => new StageOptionBuilder(model, config),
                (a, _, builder) =>
                {
                    for (int k = 0; k < model.ClassCount; k++)
                    {
                        options[(a * model.ClassCount) + k] = builder.Build(a, k, limits);
                    }

                    return builder;
                },
                _ => { });
        }

        return options;
    }

    private static StageOptions[] Options(SolverModel model, Func<int, int, StageOptions> build)
    {
        var options = new StageOptions[model.LayerCount * model.ClassCount];
        for (int a = 0; a < model.LayerCount; a++)
        {
            for (int k = 0; k < model.ClassCount; k++)
            {
                options[(a * model.ClassCount) + k] = build(a, k);
            }
        }

        return options;
    }

    private static ConfigurationPlan? Improve(
        SolverModel model,
        ConfigModel config,
        StageOptions[] options,
        bool bounded,
        (double Prefill, double Decode) bounds,
        ref double incumbent,
        int boxes,
        CancellationToken cancellationToken)
    {
        var candidate = new CapSearch(model, config, options, bounded).Run(bounds.Prefill, bounds.Decode, ref incumbent, boxes, cancellationToken);
        if (candidate is null)
        {
            return null;
        }

        // Interchangeable devices: any member of the class serves; take them in order.
        var used = new int[model.ClassCount];
        var stages = candidate.Segments.Select(s =>
        {
            var stageOptions = options[(s.Start * model.ClassCount) + s.Class];
            return new PlannedStage(model.Members[s.Class][used[s.Class]++], s.Start, s.End, stageOptions.Types(s.Option, s.End), 0, s.Prefill, s.Decode);
        }).ToArray();
        return new ConfigurationPlan(config.Index, stages, stages.Sum(s => Enumerable.Range(s.LayerStart, s.Types.Count).Sum(l => model.Omega[(l * model.TypeCount) + s.Types[l - s.LayerStart]])));
    }

    // The least bottleneck of any plan: each stage at its least time layer by layer, memory at the least bytes.
    private static double MinMax(SolverModel model, ConfigModel config, bool decode, CancellationToken cancellationToken)
    {
        var chain = Relaxed(model, config, (k, bytes, prefill, dec, next) =>
        {
            double time = decode ? dec : prefill;
            double send = next < 0 ? 0 : (decode ? config.SendDecode : config.SendPrefill)[(k * model.ClassCount) + next];
            return bytes <= config.Memory[k] ? Math.Max(time, send) : double.PositiveInfinity;
        });
        return chain.Run(max: true, cancellationToken);
    }

    // A lower bound on every plan of the configuration, found without its stage options: CapSearch's bound at its first
    // box (F ≥ Σ_j [V_j + (A/S)·(Tpre_j − xl)⁺ + (B/S)·(Tdec_j − yl)⁺] + A·xl + B·yl), with each stage's term bounded
    // below by a sum over its layers: w·(T − x)⁺ ≥ λ·(T − x) for λ in [0, w], so with λ at 0 or w for each time the
    // stage's least value is a sum of per-layer least values (the best of the four is taken). Memory only rules out
    // stages too large at their least bytes; sends are left out.
    private static double Floor(SolverModel model, ConfigModel config, (double Prefill, double Decode) bounds, CancellationToken cancellationToken)
    {
        int layers = model.LayerCount;
        int classes = model.ClassCount;
        int types = model.TypeCount;
        int devices = model.Members.Sum(m => m.Length);
        double share = 1.0 / (model.UseAllDevices ? devices : Math.Min(devices, layers));
        (double Prefill, double Decode)[] weights = [(0, 0), (config.PrefillWeight * share, 0), (0, config.DecodeWeight * share), (config.PrefillWeight * share, config.DecodeWeight * share)];
        var chain = new ChainDp(model, [.. Enumerable.Repeat(layers, layers * classes)]);
        var sums = new double[weights.Length, layers + 1];
        var bytes = new long[layers + 1];
        for (int k = 0; k < classes; k++)
        {
            int i = k * types;
            for (int l = 0; l < layers; l++)
            {
                long least = long.MaxValue;
                foreach (int t in model.Allowed[l])
                {
                    least = Math.Min(least, config.Bytes[i + t]);
                }

                bytes[l + 1] = bytes[l] + least;
                for (int w = 0; w < weights.Length; w++)
                {
                    double best = double.PositiveInfinity;
                    foreach (int t in model.Allowed[l])
                    {
                        best = Math.Min(best, ((1 + weights[w].Prefill) * config.Prefill[i + t]) + ((1 + weights[w].Decode) * config.Decode[i + t]) + (model.Theta * model.Omega[(l * types) + t]));
                    }

                    sums[w, l + 1] = sums[w, l] + best;
                }
            }

            for (int a = 0; a < layers; a++)
            {
                var first = a == 0 ? config.First[k] : default;
                for (int e = a + 1; e <= layers; e++)
                {
                    var last = e == layers ? config.Last[k] : default;
                    double value = double.PositiveInfinity;
                    if (bytes[e] - bytes[a] + first.Bytes + last.Bytes <= config.Memory[k])
                    {
                        value = double.NegativeInfinity;
                        for (int w = 0; w < weights.Length; w++)
                        {
                            var (wp, wd) = weights[w];
                            value = Math.Max(
                                value,
                                sums[w, e] - sums[w, a] + ((1 + wp) * (first.PrefillSeconds + last.PrefillSeconds)) + ((1 + wd) * (first.DecodeSeconds + last.DecodeSeconds))
                                    - (wp * bounds.Prefill) - (wd * bounds.Decode));
                        }
                    }

                    for (int next = e == layers ? -1 : 0; next < (e == layers ? 0 : classes); next++)
                    {
                        chain.Stage[chain.Index(a, k, e, next)] = value;
                    }
                }
            }
        }

        return chain.Run(max: false, cancellationToken) + (config.PrefillWeight * bounds.Prefill) + (config.DecodeWeight * bounds.Decode);
    }

    // Fills a chain program over every stage with a value computed from the stage's least bytes and times.
    private static ChainDp Relaxed(SolverModel model, ConfigModel config, Func<int, long, double, double, int, double> value)
    {
        int layers = model.LayerCount;
        int classes = model.ClassCount;
        var chain = new ChainDp(model, [.. Enumerable.Repeat(layers, layers * classes)]);
        for (int k = 0; k < classes; k++)
        {
            var bytes = new long[layers + 1];
            var prefill = new double[layers + 1];
            var decode = new double[layers + 1];
            for (int l = 0; l < layers; l++)
            {
                int i = k * model.TypeCount;
                bytes[l + 1] = bytes[l] + model.Allowed[l].Min(t => config.Bytes[i + t]);
                prefill[l + 1] = prefill[l] + model.Allowed[l].Min(t => config.Prefill[i + t]);
                decode[l + 1] = decode[l] + model.Allowed[l].Min(t => config.Decode[i + t]);
            }

            for (int a = 0; a < layers; a++)
            {
                var first = a == 0 ? config.First[k] : default;
                for (int e = a + 1; e <= layers; e++)
                {
                    var last = e == layers ? config.Last[k] : default;
                    long b = bytes[e] - bytes[a] + first.Bytes + last.Bytes;
                    double p = prefill[e] - prefill[a] + first.PrefillSeconds + last.PrefillSeconds;
                    double d = decode[e] - decode[a] + first.DecodeSeconds + last.DecodeSeconds;
                    for (int next = e == layers ? -1 : 0; next < (e == layers ? 0 : classes); next++)
                    {
                        chain.Stage[chain.Index(a, k, e, next)] = value(k, b, p, d, next);
                    }
                }
            }
        }

        return chain;
    }

    // leastOmega: the least Σω of any plan that fits (the search finds it out where it matters).
    private static PlanningException Infeasible(SolverModel model, double leastOmega, CancellationToken cancellationToken)
    {
        // The plan closest to fitting at the smallest types: least total bytes over the devices' memory.
        double shortfall = double.PositiveInfinity;
        string? detail = null;
        foreach (var config in model.Configurations)
        {
            var chain = Relaxed(model, config, (k, bytes, _, _, _) => Math.Max(0, bytes - config.Memory[k]));
            double missing = chain.Run(max: false, cancellationToken);
            if (missing < shortfall)
            {
                shortfall = missing;
                var used = new int[model.ClassCount];
                detail = string.Join(", ", chain.Path()
                    .Select(s => (Device: model.Problem.Devices[model.Members[s.Class][used[s.Class]++]], Missing: chain.Stage[s.Index]))
                    .Where(s => s.Missing > 0)
                    .Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Device.Name} short by {ByteSize.Format(s.Missing)}")));
            }
        }

        if (shortfall > 0)
        {
            return new PlanningException(
                string.Create(CultureInfo.InvariantCulture, $"The model does not fit: with every layer at its smallest type the devices still need at least {ByteSize.Format(shortfall)} more memory ({detail})."),
                (long)Math.Ceiling(shortfall));
        }

        // Memory allows a plan, so the quality bound is what no plan meets; say how low Σω can go.
        return new PlanningException(string.Create(
            CultureInfo.InvariantCulture,
            $"No plan keeps Σω within the bound {model.MaxOmega:G6}: the least Σω of any plan that fits in memory is {leastOmega:G6}."));
    }

    // The least Σω of any plan that fits in memory (+∞ when none does): the problem with Σω as its only cost.
    private static double LeastOmega(PlanningProblem problem, CancellationToken cancellationToken)
    {
        var qualityOnly = problem with
        {
            Theta = 1,
            MaxOmega = null,
            Configurations = [.. problem.Configurations.Select(c => c with
            {
                Costs = c.Costs.ToDictionary(p => p.Key, p => new KindCosts
                {
                    Layer = [.. p.Value.Layer.Select(l => l with { PrefillSeconds = 0, DecodeSeconds = 0 })],
                    FirstStage = p.Value.FirstStage with { PrefillSeconds = 0, DecodeSeconds = 0 },
                    LastStage = p.Value.LastStage with { PrefillSeconds = 0, DecodeSeconds = 0 },
                }),
                PrefillSendSeconds = null,
                DecodeSendSeconds = null,
            })],
        };
        try
        {
            return Solve(qualityOnly, cancellationToken).Omega;
        }
        catch (PlanningException)
        {
            return double.PositiveInfinity;
        }
    }

    private static PlanningSolution ToSolution(SolverModel model, ConfigurationPlan plan, TimeSpan elapsed)
    {
        var problem = model.Problem;
        var config = model.Configurations[plan.Configuration];
        var stages = plan.Stages.Select((s, j) =>
        {
            int cls = Array.FindIndex(model.Members, m => m.Contains(s.Device));
            long bytes = s.Types.Sum(t => config.Bytes[(cls * model.TypeCount) + t])
                + (j == 0 ? config.First[cls].Bytes : 0)
                + (j == plan.Stages.Count - 1 ? config.Last[cls].Bytes : 0);
            return s with { MemoryBytes = bytes };
        }).ToArray();
        double latency = stages.Sum(s => s.PrefillSeconds) + (config.PrefillWeight * stages.Max(s => s.PrefillSeconds))
            + stages.Sum(s => s.DecodeSeconds) + (config.DecodeWeight * stages.Max(s => s.DecodeSeconds));
        return new PlanningSolution
        {
            Stages = stages,
            Configuration = plan.Configuration,
            PrefillMicroBatch = config.Configuration.PrefillMicroBatch,
            DecodeMicroBatch = config.Configuration.DecodeMicroBatch,
            LatencySeconds = latency,
            Omega = plan.Omega,
            Objective = latency + (model.Theta * plan.Omega),
            TokensPerSecond = problem.BatchSize * problem.GeneratedTokens / latency,
            SolveTime = elapsed,
        };
    }

    // The stages the search chose under one configuration and their Σω, before ToSolution adds their memory and times.
    private sealed record ConfigurationPlan(int Configuration, IReadOnlyList<PlannedStage> Stages, double Omega);
}
