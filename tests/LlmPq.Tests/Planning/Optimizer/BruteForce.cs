using LlmPq.Planning.Optimizer;

namespace LlmPq.Tests.Planning.Optimizer;

/// <summary>
/// The optimizer's answer the slow way: every configuration, every device order, every contiguous split and every type
/// of every layer, each plan priced by a direct reading of the objective. Only for a handful of layers and devices.
/// </summary>
internal static class BruteForce
{
    /// <summary>Gets the least objective over all feasible plans, or null when none is feasible.</summary>
    public static double? Best(PlanningProblem problem)
    {
        double? best = null;
        int layers = problem.LayerCount;
        for (int c = 0; c < problem.Configurations.Count; c++)
        {
            foreach (var order in Orders(problem.Devices.Count, problem.UseAllDevices))
            {
                if (order.Length > layers)
                {
                    continue;
                }

                foreach (var ends in Splits(layers, order.Length))
                {
                    foreach (var types in Assignments(problem))
                    {
                        var plan = new List<PlannedStage>();
                        for (int j = 0, start = 0; j < order.Length; start = ends[j], j++)
                        {
                            plan.Add(new PlannedStage(order[j], start, ends[j], types[start..ends[j]], 0, 0, 0));
                        }

                        if (Evaluate(problem, c, plan) is double objective && (best is null || objective < best))
                        {
                            best = objective;
                        }
                    }
                }
            }
        }

        return best;
    }

    /// <summary>
    /// Gets the objective of a plan, or null when it breaks a rule: a device short of memory (less the configuration's
    /// reserve), a device used twice, a
    /// device left out when all must be used, layers not covered in order, a type a layer cannot take, Σω over the bound.
    /// </summary>
    public static double? Evaluate(PlanningProblem problem, int configuration, IReadOnlyList<PlannedStage> stages)
    {
        var config = problem.Configurations[configuration];
        int count = stages.Count;
        if (count == 0
            || stages.Select(s => s.Device).Distinct().Count() != count
            || (problem.UseAllDevices && count != problem.Devices.Count)
            || stages[0].LayerStart != 0
            || stages[^1].LayerEnd != problem.LayerCount)
        {
            return null;
        }

        var prefill = new double[count];
        var decode = new double[count];
        double omega = 0;
        for (int j = 0; j < count; j++)
        {
            var stage = stages[j];
            var device = problem.Devices[stage.Device];
            var costs = config.Costs[device.Kind];
            if (stage.LayerEnd <= stage.LayerStart
                || stage.Types.Count != stage.LayerEnd - stage.LayerStart
                || (j > 0 && stages[j - 1].LayerEnd != stage.LayerStart))
            {
                return null;
            }

            long bytes = 0;
            double compute = 0;
            double step = 0;
            for (int l = stage.LayerStart; l < stage.LayerEnd; l++)
            {
                int t = stage.Types[l - stage.LayerStart];
                if (problem.Omega[l][t] is not double w)
                {
                    return null;
                }

                omega += w;
                bytes += costs.Layer[t].Bytes;
                compute += costs.Layer[t].PrefillSeconds;
                step += costs.Layer[t].DecodeSeconds;
            }

            if (j == 0)
            {
                bytes += costs.FirstStage.Bytes;
                compute += costs.FirstStage.PrefillSeconds;
                step += costs.FirstStage.DecodeSeconds;
            }

            if (j == count - 1)
            {
                bytes += costs.LastStage.Bytes;
                compute += costs.LastStage.PrefillSeconds;
                step += costs.LastStage.DecodeSeconds;
            }

            if (bytes > device.MemoryBytes - config.ReservedBytes)
            {
                return null;
            }

            double sendPrefill = j < count - 1 ? config.PrefillSendSeconds?[stage.Device][stages[j + 1].Device] ?? 0 : 0;
            double sendDecode = j < count - 1 ? config.DecodeSendSeconds?[stage.Device][stages[j + 1].Device] ?? 0 : 0;
            prefill[j] = Math.Max(compute, sendPrefill);
            decode[j] = Math.Max(step, sendDecode);
        }

        if (problem.MaxOmega is double bound && omega > bound)
        {
            return null;
        }

        int prefillBatches = (int)Math.Ceiling(problem.BatchSize / (double)config.PrefillMicroBatch);
        int decodeBatches = (int)Math.Ceiling(problem.BatchSize / (double)config.DecodeMicroBatch);
        double latency = prefill.Sum() + ((prefillBatches - 1) * prefill.Max())
            + decode.Sum() + (((Math.Max(decodeBatches, problem.Devices.Count) * problem.GeneratedTokens) - 1) * decode.Max());
        return latency + (problem.Theta * omega);
    }

    private static IEnumerable<int[]> Orders(int devices, bool all)
    {
        for (int size = all ? devices : 1; size <= devices; size++)
        {
            foreach (var order in Arrangements([], size, devices))
            {
                yield return order;
            }
        }

        static IEnumerable<int[]> Arrangements(int[] prefix, int size, int devices)
        {
            if (prefix.Length == size)
            {
                yield return prefix;
                yield break;
            }

            for (int d = 0; d < devices; d++)
            {
                if (!prefix.Contains(d))
                {
                    foreach (var order in Arrangements([.. prefix, d], size, devices))
                    {
                        yield return order;
                    }
                }
            }
        }
    }

    // The end layer of every stage, for every split of the layers into that many non-empty contiguous ranges.
    private static IEnumerable<int[]> Splits(int layers, int stages)
    {
        if (stages == 1)
        {
            yield return [layers];
            yield break;
        }

        for (int first = 1; first <= layers - stages + 1; first++)
        {
            foreach (var rest in Splits(layers - first, stages - 1))
            {
                yield return [first, .. rest.Select(e => e + first)];
            }
        }
    }

    private static IEnumerable<int[]> Assignments(PlanningProblem problem)
    {
        int layers = problem.LayerCount;
        var types = new int[layers];
        while (true)
        {
            yield return (int[])types.Clone();
            int l = 0;
            while (l < layers && ++types[l] == problem.TypeNames.Count)
            {
                types[l++] = 0;
            }

            if (l == layers)
            {
                yield break;
            }
        }
    }
}
