using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq plan-table</c>: LLM-PQ's evaluation reproduced in simulation: its 11 clusters (research/llm-pq.md §6,
/// B=32, s=512, n=100), our plan against every baseline, as a Markdown table.
/// </summary>
internal static class PlanTableCommand
{
    // (case, preset, cluster file) as LLM-PQ's scripts pair them.
    private static readonly (int Case, string Preset)[] s_cases =
    [
        (1, "opt-13b"), (2, "opt-13b"), (3, "opt-30b"), (4, "opt-30b"), (5, "opt-66b"), (6, "opt-66b"),
        (7, "bloom-176b"), (8, "bloom-176b"), (9, "opt-30b"), (10, "opt-66b"), (11, "bloom-176b"),
    ];

    public static Command Create()
    {
        var clusters = new Option<DirectoryInfo>("--clusters") { Description = "Folder with case1.json … case11.json.", DefaultValueFactory = _ => new DirectoryInfo("docs/clusters") };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "Write the Markdown here as well." };
        var command = new Command("plan-table", "Reproduce LLM-PQ's 11-cluster evaluation in simulation: our plan against llama.cpp's default, Uniform, PipeEdge and AdaBits.") { clusters, output };
        command.SetAction((parse, ct) => Cli.RunAsync(() =>
        {
            var c = CultureInfo.InvariantCulture;
            var workload = new Workload(32, 512, 100);
            var md = new StringBuilder();
            md.AppendLine("| case | model | cluster | LlmPq tok/s | llama.cpp default | Uniform | PipeEdge | AdaBits | gain over best baseline | Σω (ours / bound) | solve ms | plan ms |");
            md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
            var gains = new List<double>();
            var planMilliseconds = new List<double>();
            var perBaseline = new Dictionary<string, List<double>>();
            foreach ((int n, string preset) in s_cases)
            {
                string path = Path.Combine(parse.GetValue(clusters)!.FullName, $"case{n}.json");
                ClusterSpec cluster = ClusterSpec.Load(path);
                ModelSpec model = ModelSpec.Preset(preset);
                QualityIndicatorTable indicator = QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]);
                string devices = string.Join(" + ", cluster.Devices.GroupBy(d => d.Kind).Select(g => $"{g.Count()}×{g.Key}"));
                Plan plan;
                double planned;
                try
                {
                    // Planned twice, timed the second time: the first includes compiling the planner.
                    Planner.Create(model, cluster, workload, QualityTarget.Default, indicator, cancellationToken: ct);
                    var stopwatch = Stopwatch.StartNew();
                    plan = Planner.Create(model, cluster, workload, QualityTarget.Default, indicator, cancellationToken: ct);
                    planned = stopwatch.Elapsed.TotalMilliseconds;
                }
                catch (LlmPq.Planning.Optimizer.PlanningException ex)
                {
                    md.AppendLine(string.Create(c, $"| {n} | {preset} | {devices} | does not fit: {ex.Message} | | | | | | | | |"));
                    continue;
                }

                planMilliseconds.Add(planned);

                double ours = plan.Predicted.ThroughputTokensPerSecond;
                string Cell(string name)
                {
                    BaselinePlan? b = plan.Baselines.FirstOrDefault(x => x.Name == name);
                    if (b?.Predicted is not { } p)
                    {
                        return "does not fit";
                    }

                    double ratio = ours / p.ThroughputTokensPerSecond;
                    if (!perBaseline.TryGetValue(name, out List<double>? list))
                    {
                        perBaseline[name] = list = [];
                    }

                    list.Add(ratio);
                    return string.Create(c, $"{p.ThroughputTokensPerSecond:F1} ({ratio:F2}×)");
                }

                string row = string.Create(c, $"| {n} | {preset} | {devices} | {ours:F1} | {Cell("llama.cpp default")} | {Cell("Uniform")} | {Cell("PipeEdge")} | {Cell("AdaBits")} |");
                double best = plan.Baselines.Where(b => b.Predicted is not null).Select(b => b.Predicted!.ThroughputTokensPerSecond).DefaultIfEmpty(double.NaN).Max();
                gains.Add(ours / best);
                md.AppendLine(row + string.Create(c, $" {ours / best:F2}× | {plan.Indicator:G3} / {(plan.QualityBound is null ? "—" : "q4_K")} | {plan.SolveMilliseconds:F0} | {planned:F0} |"));
                Console.Error.WriteLine($"case {n} done");
            }

            md.AppendLine();
            md.AppendLine(string.Create(c, $"Solve ms is the search for our plan; plan ms is all of `Planner.Create` (our plan and the four baselines), {planMilliseconds.DefaultIfEmpty(double.NaN).Max():F0} ms at most; both timed on a second run, on the machine that wrote this page."));
            md.AppendLine(string.Create(c, $"Gain over the best baseline of each case: average {gains.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average():F2}×, maximum {gains.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max():F2}×."));
            foreach ((string name, List<double> ratios) in perBaseline)
            {
                md.AppendLine(string.Create(c, $"Over {name}: average {ratios.Average():F2}×, maximum {ratios.Max():F2}× ({ratios.Count} cases where it fits)."));
            }

            Console.Write(md.ToString());
            if (parse.GetValue(output) is { } file)
            {
                File.WriteAllText(file.FullName, md.ToString());
            }

            return Task.FromResult(0);
        }));
        return command;
    }
}
