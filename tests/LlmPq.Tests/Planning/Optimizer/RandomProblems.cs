using LlmPq.Planning.Optimizer;

namespace LlmPq.Tests.Planning.Optimizer;

/// <summary>Small random planning problems, small enough for <see cref="BruteForce"/>, covering every feature.</summary>
internal static class RandomProblems
{
    /// <summary>
    /// Makes a problem: 2–6 layers, 1–3 devices of 1–2 kinds, 2–3 types; larger, 6–8 layers, 3–4 devices of 1–3 kinds,
    /// 2 types; or deeper, 6–7 layers, 1–2 devices, 3 types.
    /// </summary>
    public static PlanningProblem Create(int seed, bool larger = false, bool deeper = false) =>
        Create(new Random(seed), larger, deeper, medium: false);

    /// <summary>
    /// Makes a problem as <see cref="Create(int, bool, bool)"/> does, then gives every layer the first layer's ω (as
    /// the fallback indicator does for layers of one shape, so that the search shares stages across starts) and each
    /// configuration a reserve of up to 1000 bytes (a layer takes 1000 to 10 000).
    /// </summary>
    public static PlanningProblem CreateAlike(int seed, bool larger = false, bool deeper = false)
    {
        var problem = Create(seed, larger, deeper);
        var random = new Random(seed + 1);
        return problem with
        {
            Omega = [.. problem.Omega.Select(_ => problem.Omega[0])],
            Configurations = [.. problem.Configurations.Select(c => c with { ReservedBytes = random.Next(3) == 0 ? 0 : random.Next(0, 1000) })],
        };
    }

    /// <summary>Makes a problem too large for <see cref="BruteForce"/>: 16–30 layers, 3–5 devices of 2–3 kinds, 4 types.</summary>
    public static PlanningProblem CreateMedium(int seed) => Create(new Random(seed), larger: false, deeper: false, medium: true);

    private static PlanningProblem Create(Random random, bool larger, bool deeper, bool medium)
    {
        int types = medium ? 4 : larger ? 2 : deeper ? 3 : random.Next(2, 4);
        int layers = medium ? random.Next(16, 31) : larger ? random.Next(6, 9) : deeper ? random.Next(6, 8) : random.Next(2, types == 3 ? 6 : 7);
        int deviceCount = medium ? random.Next(3, 6) : larger ? random.Next(3, 5) : deeper ? random.Next(1, 3) : random.Next(1, 4);
        int kindCount = medium ? random.Next(2, 4) : random.Next(1, Math.Min(larger ? 3 : 2, deviceCount) + 1);
        string[] kinds = [.. Enumerable.Range(0, kindCount).Select(k => $"kind{k}")];

        // Times are random, or rise with bytes as the roofline's do (so the builder leaves them out of comparisons),
        // or small integers (so that ties happen).
        int style = random.Next(3);
        var configurations = new List<PlanningConfiguration>();
        var memoryScale = new Dictionary<string, long>();
        for (int c = random.Next(1, 3); c > 0; c--)
        {
            var costs = new Dictionary<string, KindCosts>();
            foreach (string kind in kinds)
            {
                double slope = random.NextDouble();
                double prefillBase = random.NextDouble();
                var layer = Enumerable.Range(0, types).Select(_ =>
                {
                    long bytes = random.Next(1, 11) * 1000L;
                    return style switch
                    {
                        0 => new StageCost(bytes, random.NextDouble(), random.NextDouble()),
                        1 => new StageCost(bytes, random.Next(2) == 0 ? prefillBase : prefillBase + (slope * bytes / 1e4), 0.1 + (slope * bytes / 1e4)),
                        _ => new StageCost(bytes, random.Next(1, 4), random.Next(1, 4)),
                    };
                }).ToArray();
                costs[kind] = new KindCosts { Layer = layer, FirstStage = Extra(random), LastStage = Extra(random) };
                memoryScale[kind] = layer.Max(l => l.Bytes);
            }

            configurations.Add(new PlanningConfiguration
            {
                PrefillMicroBatch = 1 << random.Next(3),
                DecodeMicroBatch = 1 << random.Next(3),
                Costs = costs,
            });
        }

        var devices = Enumerable.Range(0, deviceCount).Select(i =>
        {
            string kind = kinds[random.Next(kindCount)];

            // Memory from a layer or two to everything at the largest types: tight, loose, sometimes too little.
            long memory = (long)(memoryScale[kind] * random.NextDouble() * (layers + 1) * (random.Next(4) == 0 ? 0.5 : 1.2));
            return new PlanningDevice($"d{i}", kind, $"h{random.Next(2)}", random.Next(3) == 0 ? memoryScale[kind] * layers : memory);
        }).ToArray();

        // Sends: free, by host (free within a host), or per pair.
        int sends = random.Next(3);
        double[] hostCost = [random.NextDouble(), random.NextDouble()];
        configurations = [.. configurations.Select(c => sends switch
        {
            0 => c,
            1 => c with { PrefillSendSeconds = Matrix(devices, (a, b) => a.Host == b.Host ? 0 : hostCost[0]), DecodeSendSeconds = Matrix(devices, (a, b) => a.Host == b.Host ? 0 : hostCost[1]) },
            _ => c with { PrefillSendSeconds = Matrix(devices, (_, _) => random.NextDouble()), DecodeSendSeconds = Matrix(devices, (_, _) => random.NextDouble() / 2) },
        })];

        var omega = Enumerable.Range(0, layers).Select(_ =>
        {
            var row = Enumerable.Range(0, types).Select(t => t == 0 ? 0.0 : (double?)random.NextDouble()).ToArray();
            for (int t = 1; t < types; t++)
            {
                if (random.Next(8) == 0)
                {
                    row[t] = null;
                }
            }

            return (IReadOnlyList<double?>)row;
        }).ToArray();

        double? maxOmega = null;
        if (random.Next(3) == 0)
        {
            double least = omega.Sum(r => r.Where(w => w is not null).Min()!.Value);
            double most = omega.Sum(r => r.Where(w => w is not null).Max()!.Value);
            maxOmega = least + ((most - least) * random.NextDouble() * 0.8);
        }

        return new PlanningProblem
        {
            TypeNames = [.. Enumerable.Range(0, types).Select(t => $"t{t}")],
            Omega = omega,
            Devices = devices,
            Configurations = configurations,
            BatchSize = 1 << random.Next(1, 4),
            GeneratedTokens = new[] { 1.0, 2, 5, 20 }[random.Next(4)],
            Theta = random.Next(5) == 0 ? 0 : random.NextDouble() * 2,
            MaxOmega = maxOmega,
            UseAllDevices = random.Next(10) < 7,
        };
    }

    public static double[][] Matrix(IReadOnlyList<PlanningDevice> devices, Func<PlanningDevice, PlanningDevice, double> cost) =>
        [.. devices.Select(a => devices.Select(b => ReferenceEquals(a, b) ? 0 : cost(a, b)).ToArray())];

    private static StageCost Extra(Random random) =>
        random.Next(2) == 0 ? default : new StageCost(random.Next(0, 3000), random.NextDouble() / 2, random.NextDouble() / 2);
}
