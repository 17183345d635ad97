using LlmPq.Planning.Optimizer;

namespace LlmPq.Planning;

/// <summary>
/// LLM-PQ's baselines in the same simulator (research/llm-pq.md §4.4): llama.cpp's default, Uniform, PipeEdge and
/// AdaBits, each evaluated with the latency model the optimizer minimizes.
/// </summary>
internal static class Baselines
{
    /// <summary>
    /// Plans every baseline; one that does not fit is reported with a note instead. <paramref name="problem"/> holds one
    /// configuration per prefill micro-batch, smallest first: llama.cpp's default, PipeEdge and AdaBits take the largest
    /// (ξp = ξd, as LLM-PQ runs them); Uniform takes its best.
    /// </summary>
    public static IReadOnlyList<BaselinePlan> All(Planner.ProblemBuilder builder, PlanningProblem problem, CancellationToken cancellationToken)
    {
        int last = problem.Configurations.Count - 1;
        BaselinePlan uniform = Enumerable.Range(0, problem.Configurations.Count).Select(c => Uniform(builder, problem, c))
            .OrderByDescending(b => b.Predicted?.ThroughputTokensPerSecond ?? -1)
            .First();
        return
        [
            LlamaCppDefault(builder, problem, last),
            uniform,
            PipeEdge(builder, problem, last),
            AdaBits(builder, problem, last, cancellationToken),
        ];
    }

    /// <summary>llama.cpp's default: the richest uniform type that fits, layers split in proportion to device memory, devices as listed.</summary>
    private static BaselinePlan LlamaCppDefault(Planner.ProblemBuilder builder, PlanningProblem problem, int config)
    {
        long[] memory = [.. problem.Devices.Select(d => Math.Max(Memory(problem, config, d), 1))];
        double total = memory.Sum(m => (double)m);
        int[] counts = Apportion(problem.LayerCount, [.. memory.Select(m => m / total)]);

        return FirstThatFits(builder, problem, "llama.cpp default", type => Evaluate(problem, config, Split(counts, type)), "memory-proportional split, richest uniform type that fits");
    }

    /// <summary>Uniform: the richest uniform type that fits, an even split, devices as listed.</summary>
    private static BaselinePlan Uniform(Planner.ProblemBuilder builder, PlanningProblem problem, int config)
    {
        int[] counts = Apportion(problem.LayerCount, [.. Enumerable.Repeat(1.0 / problem.Devices.Count, problem.Devices.Count)]);
        return FirstThatFits(builder, problem, "Uniform", type => Evaluate(problem, config, Split(counts, type)), "even split, richest uniform type that fits");
    }

    /// <summary>PipeEdge: the richest uniform type that fits, the split minimizing the decode bottleneck, devices as listed, ξp = ξd.</summary>
    private static BaselinePlan PipeEdge(Planner.ProblemBuilder builder, PlanningProblem problem, int config)
    {
        return FirstThatFits(builder, problem, "PipeEdge", type => DecodeBalancedSplit(problem, config, type) is { } counts ? Evaluate(problem, config, Split(counts, type)) : null, "decode-balanced split, richest uniform type that fits");
    }

    /// <summary>AdaBits: the least Σω under memory alone (latency only breaks ties), solved by the same exact optimizer.</summary>
    private static BaselinePlan AdaBits(Planner.ProblemBuilder builder, PlanningProblem problem, int config, CancellationToken cancellationToken)
    {
        double omegaScale = problem.Omega.SelectMany(r => r).Where(v => v is > 0).Select(v => v!.Value).DefaultIfEmpty(1).Min();
        try
        {
            // θ large enough that a step of the smallest ω outweighs any latency: quality first, latency as a tie-break.
            PlanningSolution s = PlanOptimizer.Solve(problem with { Configurations = [problem.Configurations[config]], Theta = 1e9 / omegaScale, MaxOmega = null }, cancellationToken);
            return new BaselinePlan("AdaBits", builder.Predicted(s), s.Omega, builder.Stages(s), "least Σω under memory") { PrefillMicroBatch = s.PrefillMicroBatch };
        }
        catch (PlanningException ex)
        {
            return new BaselinePlan("AdaBits", null, null, [], ex.Message);
        }
    }

    private static BaselinePlan FirstThatFits(Planner.ProblemBuilder builder, PlanningProblem problem, string name, Func<int, PlanningSolution?> plan, string note)
    {
        // Richest first: the candidate types are ordered from F16 down.
        for (int type = 0; type < problem.TypeNames.Count; type++)
        {
            if (plan(type) is { } solution)
            {
                return new BaselinePlan(name, builder.Predicted(solution), solution.Omega, builder.Stages(solution), $"{note}: {problem.TypeNames[type]}") { PrefillMicroBatch = solution.PrefillMicroBatch };
            }
        }

        return new BaselinePlan(name, null, null, [], $"{note}: nothing fits");
    }

    // What a device holds for layers under a configuration.
    private static long Memory(PlanningProblem problem, int config, PlanningDevice device) => device.MemoryBytes - problem.Configurations[config].ReservedBytes;

    /// <summary>Splits <paramref name="layers"/> in proportion to <paramref name="shares"/>, every device at least one layer (largest remainders).</summary>
    private static int[] Apportion(int layers, IReadOnlyList<double> shares)
    {
        int n = shares.Count;
        int[] counts = [.. shares.Select(s => Math.Max(1, (int)Math.Floor(s * layers)))];
        while (counts.Sum() > layers)
        {
            int i = Array.IndexOf(counts, counts.Max());
            counts[i]--;
        }

        var byRemainder = Enumerable.Range(0, n).OrderByDescending(i => (shares[i] * layers) - counts[i]).ToArray();
        for (int k = 0; counts.Sum() < layers; k++)
        {
            counts[byRemainder[k % n]]++;
        }

        return counts;
    }

    private static (int Device, int Start, int End, int Type)[] Split(int[] counts, int type)
    {
        var stages = new (int, int, int, int)[counts.Length];
        int start = 0;
        for (int d = 0; d < counts.Length; d++)
        {
            stages[d] = (d, start, start + counts[d], type);
            start += counts[d];
        }

        return stages;
    }

    /// <summary>The split (devices as listed, one uniform type) with the least decode bottleneck under memory, by dynamic programming.</summary>
    private static int[]? DecodeBalancedSplit(PlanningProblem problem, int config, int type)
    {
        int n = problem.Devices.Count, layers = problem.LayerCount;
        PlanningConfiguration c = problem.Configurations[config];
        var best = new double[n + 1, layers + 1];
        var cut = new int[n + 1, layers + 1];
        for (int j = 0; j <= n; j++)
        {
            for (int i = 0; i <= layers; i++)
            {
                best[j, i] = double.PositiveInfinity;
            }
        }

        best[0, 0] = 0;
        for (int j = 1; j <= n; j++)
        {
            KindCosts k = c.Costs[problem.Devices[j - 1].Kind];
            bool last = j == n;
            for (int i = j; i <= layers - (n - j); i++)
            {
                for (int start = j - 1; start < i; start++)
                {
                    if (double.IsPositiveInfinity(best[j - 1, start]))
                    {
                        continue;
                    }

                    int count = i - start;
                    long bytes = (count * k.Layer[type].Bytes) + (j == 1 ? k.FirstStage.Bytes : 0) + (last ? k.LastStage.Bytes : 0);
                    if (bytes > Memory(problem, config, problem.Devices[j - 1]))
                    {
                        continue;
                    }

                    double decode = (count * k.Layer[type].DecodeSeconds) + (last ? k.LastStage.DecodeSeconds : 0);
                    double bottleneck = Math.Max(best[j - 1, start], decode);
                    if (bottleneck < best[j, i])
                    {
                        best[j, i] = bottleneck;
                        cut[j, i] = start;
                    }
                }
            }
        }

        if (double.IsPositiveInfinity(best[n, layers]))
        {
            return null;
        }

        int[] counts = new int[n];
        for (int j = n, end = layers; j >= 1; j--)
        {
            counts[j - 1] = end - cut[j, end];
            end = cut[j, end];
        }

        return counts;
    }

    /// <summary>Evaluates a fixed plan of one type per stage; see the overload with a type per layer.</summary>
    internal static PlanningSolution? Evaluate(PlanningProblem problem, int config, IReadOnlyList<(int Device, int Start, int End, int Type)> stages) =>
        Evaluate(problem, config, [.. stages.Select(s => (s.Device, s.Start, (IReadOnlyList<int>)[.. Enumerable.Repeat(s.Type, s.End - s.Start)]))]);

    /// <summary>
    /// Evaluates a fixed plan (a device, a first layer and a type index per layer of each stage) with the optimizer's
    /// latency model; null when a stage does not fit or a layer cannot take its type.
    /// </summary>
    internal static PlanningSolution? Evaluate(PlanningProblem problem, int config, IReadOnlyList<(int Device, int Start, IReadOnlyList<int> Types)> stages)
    {
        PlanningConfiguration c = problem.Configurations[config];
        var planned = new List<PlannedStage>(stages.Count);
        double omega = 0;
        for (int j = 0; j < stages.Count; j++)
        {
            (int device, int start, IReadOnlyList<int> types) = stages[j];
            KindCosts k = c.Costs[problem.Devices[device].Kind];
            bool first = j == 0, last = j == stages.Count - 1;
            for (int i = 0; i < types.Count; i++)
            {
                if (problem.Omega[start + i][types[i]] is not double w)
                {
                    return null;
                }

                omega += w;
            }

            long bytes = types.Sum(t => k.Layer[t].Bytes) + (first ? k.FirstStage.Bytes : 0) + (last ? k.LastStage.Bytes : 0);
            if (bytes > Memory(problem, config, problem.Devices[device]))
            {
                return null;
            }

            double prefill = types.Sum(t => k.Layer[t].PrefillSeconds) + (first ? k.FirstStage.PrefillSeconds : 0) + (last ? k.LastStage.PrefillSeconds : 0);
            double decode = types.Sum(t => k.Layer[t].DecodeSeconds) + (first ? k.FirstStage.DecodeSeconds : 0) + (last ? k.LastStage.DecodeSeconds : 0);
            if (!last)
            {
                int next = stages[j + 1].Device;
                prefill = Math.Max(prefill, c.PrefillSendSeconds?[device][next] ?? 0);
                decode = Math.Max(decode, c.DecodeSendSeconds?[device][next] ?? 0);
            }

            planned.Add(new PlannedStage(device, start, start + types.Count, types, bytes, prefill, decode));
        }

        double latency = planned.Sum(s => s.PrefillSeconds) + (problem.PrefillBottleneckWeight(c) * planned.Max(s => s.PrefillSeconds))
            + planned.Sum(s => s.DecodeSeconds) + (problem.DecodeBottleneckWeight(c) * planned.Max(s => s.DecodeSeconds));
        return new PlanningSolution
        {
            Stages = planned,
            Configuration = config,
            PrefillMicroBatch = c.PrefillMicroBatch,
            DecodeMicroBatch = c.DecodeMicroBatch,
            LatencySeconds = latency,
            Omega = omega,
            Objective = latency + (problem.Theta * omega),
            TokensPerSecond = problem.BatchSize * problem.GeneratedTokens / latency,
            SolveTime = TimeSpan.Zero,
        };
    }
}
