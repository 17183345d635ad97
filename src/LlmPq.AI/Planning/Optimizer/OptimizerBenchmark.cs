using System.Diagnostics;
using System.Globalization;

namespace LlmPq.Planning.Optimizer;

/// <summary>
/// Times <see cref="PlanOptimizer"/> on an LLM-PQ-sized problem: an 80-layer, Llama-2-70B-shaped model on 8 devices of
/// 4 kinds on 2 hosts, 6 candidate types and 3 micro-batch configurations.
/// </summary>
/// <remarks>
/// The costs follow the project's roofline (compute at half the dense FP16 peak with per-type factors 1, 0.9 and 0.8,
/// bandwidth at 0.7 of the datasheet) from public datasheet figures, so the benchmark needs nothing but this folder.
/// A second case perturbs every per-type time by up to ±10 %, as a measured profile would, which takes away the
/// structure (decode time rising with bytes) that keeps the Pareto fronts small.
/// </remarks>
public static class OptimizerBenchmark
{
    private static readonly string[] TypeNames = ["f16", "q8_0", "q6_K", "q5_K", "q4_K", "q3_K"];
    private static readonly double[] BitsPerWeight = [16, 8.5, 6.5625, 5.5, 4.5, 3.4375];
    private static readonly double[] TypeFactor = [1, 1, 0.9, 0.9, 0.9, 0.8];

    /// <summary>Solves both cases <paramref name="repetitions"/> times and writes the times and each case's plan.</summary>
    /// <param name="output">Where the report goes.</param>
    /// <param name="repetitions">Solves per case; the first one includes the JIT.</param>
    /// <param name="cancellationToken">Cancels the runs.</param>
    /// <returns>The best solve time of each case: roofline costs, then perturbed costs.</returns>
    public static IReadOnlyList<TimeSpan> Run(TextWriter output, int repetitions = 5, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);
        var best = new List<TimeSpan>();
        foreach (bool perturbed in new[] { false, true })
        {
            var problem = CreateProblem(perturbed);
            PlanningSolution? solution = null;
            var times = new List<TimeSpan>();
            for (int i = 0; i < repetitions; i++)
            {
                var stopwatch = Stopwatch.StartNew();
                solution = PlanOptimizer.Solve(problem, cancellationToken);
                times.Add(stopwatch.Elapsed);
            }

            best.Add(times.Min());

            // The median leaves out the first solve (JIT) when there are others.
            var warm = times.Skip(times.Count > 1 ? 1 : 0).Order().ToList();
            output.WriteLine(Invariant(
                $"{(perturbed ? "perturbed (measured-like) costs" : "roofline costs")}: {problem.LayerCount} layers, {problem.Devices.Count} devices, {problem.TypeNames.Count} types, {problem.Configurations.Count} configurations; solve {string.Join(" / ", times.Select(t => Invariant($"{t.TotalMilliseconds:F0}")))} ms (best {times.Min().TotalMilliseconds:F0} ms, median {warm[warm.Count / 2].TotalMilliseconds:F0} ms)"));
            Describe(output, problem, solution!);
        }

        return best;
    }

    private static void Describe(TextWriter output, PlanningProblem problem, PlanningSolution solution)
    {
        output.WriteLine(Invariant(
            $"  ξp={solution.PrefillMicroBatch} ξd={solution.DecodeMicroBatch}: latency {solution.LatencySeconds:F2} s, Σω {solution.Omega:F3}, objective {solution.Objective:F3}, {solution.TokensPerSecond:F1} tokens/s"));
        foreach (var stage in solution.Stages)
        {
            var types = stage.Types.GroupBy(t => t).OrderBy(g => g.Key).Select(g => Invariant($"{g.Count()}×{problem.TypeNames[g.Key]}"));
            output.WriteLine(Invariant(
                $"  {problem.Devices[stage.Device].Name,-12} layers {stage.LayerStart,2}–{stage.LayerEnd - 1,2}  {string.Join(" ", types),-32} {stage.MemoryBytes / 1e9,5:F1} GB  Tpre {stage.PrefillSeconds * 1e3,6:F1} ms  Tdec {stage.DecodeSeconds * 1e3,5:F2} ms"));
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static PlanningProblem CreateProblem(bool perturbed)
    {
        const int layers = 80;
        const double hidden = 8192;
        const double parameters = (2 * hidden * hidden) + (2 * hidden * 1024) + (3 * hidden * 28672);
        const double kvBytesPerToken = 2 * 8 * 128 * 2;
        const double outputParameters = 32000 * hidden;
        const int batch = 32;
        const int prompt = 512;
        const double generated = 128;

        // Name, dense FP16 TFLOP/s, GB/s, memory in GB; two of each, A100s and V100s on one host, the rest on another.
        (string Kind, double Tflops, double Bandwidth, double Memory)[] kinds =
        [
            ("A100-40GB", 312, 1555, 40),
            ("V100-32GB", 125, 900, 32),
            ("RTX3090", 71, 936, 24),
            ("T4", 65, 320, 16),
        ];
        var devices = kinds.SelectMany((k, i) => Enumerable.Range(0, 2).Select(j =>
            new PlanningDevice($"{k.Kind}#{j}", k.Kind, i < 2 ? "host0" : "host1", (long)((k.Memory - 2) * 1e9)))).ToArray();

        var random = new Random(7);
        var sensitivity = Enumerable.Range(0, layers)
            .Select(l => 0.03 * (1 + (2 * Math.Exp(-l / 4.0)) + Math.Exp(-(layers - 1 - l) / 4.0)) * (0.7 + (0.6 * random.NextDouble())))
            .ToArray();
        var omega = sensitivity.Select(v => (IReadOnlyList<double?>)[.. BitsPerWeight.Select(b => (double?)(b >= 16 ? 0 : v * Math.Pow(2, -2 * (b - 4.5))))]).ToArray();

        var configurations = new[] { (2, 4), (4, 4), (4, 8) }.Select(c =>
        {
            var (xiP, xiD) = c;
            double context = prompt + (generated / 2);
            var costs = kinds.ToDictionary(k => k.Kind, k =>
            {
                double flops = k.Tflops * 1e12 * 0.5;
                double bandwidth = k.Bandwidth * 1e9 * 0.7;
                var layer = Enumerable.Range(0, TypeNames.Length).Select(t =>
                {
                    double weights = parameters * BitsPerWeight[t] / 8;
                    double noise = perturbed ? 0.9 + (0.2 * random.NextDouble()) : 1;
                    double prefillTokens = xiP * prompt;
                    double prefill = Math.Max(
                        (prefillTokens * 2 * parameters / (flops * TypeFactor[t])) + (prefillTokens * 4 * hidden * prompt / 2 / flops),
                        (weights + (prefillTokens * kvBytesPerToken)) / bandwidth);
                    double decode = Math.Max(
                        xiD * ((2 * parameters / (flops * TypeFactor[t])) + (4 * hidden * context / flops)),
                        (weights + (xiD * context * kvBytesPerToken)) / bandwidth);
                    long bytes = (long)(weights + (batch * (prompt + generated) * kvBytesPerToken));
                    return new StageCost(bytes, prefill * noise, decode * (perturbed ? 0.9 + (0.2 * random.NextDouble()) : 1));
                }).ToArray();
                double outputBytes = outputParameters * 6.5625 / 8;
                var last = new StageCost(
                    (long)outputBytes,
                    Math.Max(xiP * 2 * outputParameters / flops, outputBytes / bandwidth),
                    Math.Max(xiD * 2 * outputParameters / flops, outputBytes / bandwidth));
                return new KindCosts { Layer = layer, LastStage = last };
            });

            // F32 activations between stages: PCIe within a host, 10 GbE between hosts.
            double[][] Send(double bytes) => [.. devices.Select(from => devices.Select(to =>
                from.Host == to.Host ? 20e-6 + (bytes / 20e9) : 100e-6 + (bytes / 1.1e9)).ToArray())];
            return new PlanningConfiguration
            {
                PrefillMicroBatch = xiP,
                DecodeMicroBatch = xiD,
                Costs = costs,
                PrefillSendSeconds = Send(xiP * prompt * hidden * 4),
                DecodeSendSeconds = Send(xiD * hidden * 4),
            };
        }).ToArray();

        return new PlanningProblem
        {
            TypeNames = TypeNames,
            Omega = omega,
            Devices = devices,
            Configurations = configurations,
            BatchSize = batch,
            GeneratedTokens = generated,
            Theta = 1,
        };
    }
}
