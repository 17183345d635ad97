using LlmPq.Planning.Optimizer;

namespace LlmPq.Tests.Planning.Optimizer;

public class StageOptionBuilderTests
{
    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (int seed = 0; seed < 60; seed++)
        {
            data.Add(seed);
        }

        return data;
    }

    // The options of one stage must cover every type assignment: for each, an option no worse in prefill, decode and
    // V (and Σω under a quality bound); and each option must be a real assignment that fits, priced as stated.
    [Theory]
    [MemberData(nameof(Seeds))]
    public void Options_cover_every_assignment_and_are_real(int seed)
    {
        var (problem, costs, bounded) = Create(seed, alike: false);
        var model = SolverModel.Create(problem);
        int start = new Random(seed).Next(0, 2);
        var options = new StageOptionBuilder(model, model.Configurations[0]).Build(start, 0, Limits(bounded));
        Check(problem, costs, options, bounded);
    }

    // Where every layer has the same ω, one program serves all starts: each start's options must still cover every
    // assignment of its stages and be real, including the last stage's and, with first-stage costs, the first's.
    [Theory]
    [MemberData(nameof(Seeds))]
    public void Shared_options_cover_every_assignment_from_every_start(int seed)
    {
        var (problem, costs, bounded) = Create(seed, alike: true);
        var model = SolverModel.Create(problem);
        Assert.True(model.UniformLayers);
        var options = new StageOptions[problem.LayerCount];
        new StageOptionBuilder(model, model.Configurations[0]).BuildShared(0, Limits(bounded), options);
        for (int start = 0; start < problem.LayerCount; start++)
        {
            Assert.Equal(start, options[start].Start);
            Check(problem, costs, options[start], bounded);
        }
    }

    private static BuildLimits Limits(bool bounded) =>
        new(double.PositiveInfinity, double.PositiveInfinity, double.PositiveInfinity, 0, 0, bounded);

    private static (PlanningProblem Problem, KindCosts Costs, bool Bounded) Create(int seed, bool alike)
    {
        var random = new Random(seed);
        int types = random.Next(2, 5);
        int layers = random.Next(3, types == 4 ? 7 : 9);
        int style = seed % 4;
        var layer = Enumerable.Range(0, types).Select(_ =>
        {
            long bytes = random.Next(1, 20) * 100L;
            return style switch
            {
                // Arbitrary times: both explicit.
                0 => new StageCost(bytes, random.NextDouble(), random.NextDouble()),

                // Decode rising with bytes (implied), prefill arbitrary: a staircase.
                1 => new StageCost(bytes, random.NextDouble(), 0.2 + (bytes / 1000.0)),

                // Both implied (prefill flat): memory alone.
                2 => new StageCost(bytes, 0.5, 0.2 + (bytes / 1000.0)),

                // Small integers: ties everywhere.
                _ => new StageCost(bytes, random.Next(1, 3), random.Next(1, 3)),
            };
        }).ToArray();
        var costs = new KindCosts
        {
            Layer = layer,
            FirstStage = new StageCost(random.Next(0, 300), random.NextDouble(), random.NextDouble()),
            LastStage = new StageCost(random.Next(0, 300), random.NextDouble(), random.NextDouble()),
        };
        IReadOnlyList<double?> Row() => [.. Enumerable.Range(0, types).Select(t => t == 0 || random.Next(6) > 0 ? (double?)random.NextDouble() : null)];
        var row = Row();
        var problem = new PlanningProblem
        {
            TypeNames = [.. Enumerable.Range(0, types).Select(t => $"t{t}")],
            Omega = [.. Enumerable.Range(0, layers).Select(_ => alike ? row : Row())],
            Devices = [new PlanningDevice("d", "k", "h", random.Next(5, 15) * 100L * layers / 2)],
            Configurations = [new PlanningConfiguration
            {
                PrefillMicroBatch = 1,
                DecodeMicroBatch = 1,
                ReservedBytes = random.Next(2) == 0 ? 0 : random.Next(0, 300),
                Costs = new Dictionary<string, KindCosts> { ["k"] = alike && random.Next(2) == 0 ? costs with { FirstStage = default } : costs },
            }],
            BatchSize = 1,
            GeneratedTokens = 1,
            Theta = random.NextDouble(),
        };
        return (problem, problem.Configurations[0].Costs["k"], seed % 3 == 0);
    }

    private static void Check(PlanningProblem problem, KindCosts costs, StageOptions options, bool bounded)
    {
        int start = options.Start;
        for (int end = start + 1; end <= problem.LayerCount; end++)
        {
            var points = Assignments(problem, costs, start, end).ToList();
            Assert.True(points.Count == 0 || end <= options.End, $"start {start}: end {end} is reachable but options stop at {options.End}");
            if (end > options.End)
            {
                continue;
            }

            for (int o = options.First(end); o < options.Stop(end); o++)
            {
                var real = Price(problem, costs, start, end, options.Types(o, end));
                Assert.NotNull(real);
                Assert.Equal(real.Value.Prefill, options.Prefill[o], 1e-9);
                Assert.Equal(real.Value.Decode, options.Decode[o], 1e-9);
                Assert.Equal(real.Value.Omega, options.Omega[o], 1e-9);
                Assert.Equal(real.Value.Value, options.Value[o], 1e-9);
                Assert.True(o == options.First(end) || options.Value[o - 1] <= options.Value[o], "options are sorted by V");
            }

            foreach (var point in points)
            {
                bool covered = false;
                for (int o = options.First(end); o < options.Stop(end) && !covered; o++)
                {
                    covered = options.Prefill[o] <= point.Prefill + 1e-9
                        && options.Decode[o] <= point.Decode + 1e-9
                        && options.Value[o] <= point.Value + 1e-9
                        && (!bounded || options.Omega[o] <= point.Omega + 1e-9);
                }

                Assert.True(covered, $"start {start}, end {end}: no option covers P {point.Prefill}, D {point.Decode}, W {point.Omega}, V {point.Value}");
            }
        }
    }

    private static IEnumerable<(double Prefill, double Decode, double Omega, double Value)> Assignments(PlanningProblem problem, KindCosts costs, int start, int end)
    {
        int types = problem.TypeNames.Count;
        var assignment = new int[end - start];
        while (true)
        {
            if (Price(problem, costs, start, end, assignment) is { } point)
            {
                yield return point;
            }

            int i = 0;
            while (i < assignment.Length && ++assignment[i] == types)
            {
                assignment[i++] = 0;
            }

            if (i == assignment.Length)
            {
                yield break;
            }
        }
    }

    private static (double Prefill, double Decode, double Omega, double Value)? Price(PlanningProblem problem, KindCosts costs, int start, int end, int[] types)
    {
        var extras = new List<StageCost>();
        if (start == 0)
        {
            extras.Add(costs.FirstStage);
        }

        if (end == problem.LayerCount)
        {
            extras.Add(costs.LastStage);
        }

        long bytes = extras.Sum(e => e.Bytes);
        double prefill = extras.Sum(e => e.PrefillSeconds);
        double decode = extras.Sum(e => e.DecodeSeconds);
        double omega = 0;
        for (int l = start; l < end; l++)
        {
            int t = types[l - start];
            if (problem.Omega[l][t] is not double w)
            {
                return null;
            }

            bytes += costs.Layer[t].Bytes;
            prefill += costs.Layer[t].PrefillSeconds;
            decode += costs.Layer[t].DecodeSeconds;
            omega += w;
        }

        return bytes > problem.Devices[0].MemoryBytes - problem.Configurations[0].ReservedBytes ? null : (prefill, decode, omega, prefill + decode + (problem.Theta * omega));
    }
}
