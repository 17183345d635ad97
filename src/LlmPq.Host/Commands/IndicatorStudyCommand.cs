using System.CommandLine;
using System.Globalization;
using System.Text;
using LlmPq.Evaluation;
using LlmPq.Gguf;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Quantization;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq indicator-study</c>: does the planner's quality indicator Σω rank plans the way their measured quality
/// does? Quantizes one generated model by plans of clearly different Σω (uniform types, the planner's own plans over a
/// sweep of θ, and seeded random mixes), measures each one's KL divergence from the base, and reports the Spearman rank
/// correlation.
/// </summary>
internal static class IndicatorStudyCommand
{
    public static Command Create()
    {
        var layers = new Option<int>("--layers") { Description = "Layers of the generated model.", DefaultValueFactory = _ => 16 };
        var width = new Option<int>("--width") { Description = "Embedding width of the generated model (a multiple of 256).", DefaultValueFactory = _ => 256 };
        var random = new Option<int>("--random-plans") { Description = "Seeded random mixes of types, besides the uniform and planned ones.", DefaultValueFactory = _ => 6 };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Evaluation window in tokens.", DefaultValueFactory = _ => 128 };
        var chunks = new Option<int>("--chunks") { Description = "Evaluation windows per plan.", DefaultValueFactory = _ => 6 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "Also write the report (Markdown) here." };
        var command = new Command("indicator-study", "Quantize a generated model by plans of different Σω, measure their KL divergence, and report the rank correlation.")
        {
            layers, width, random, ctx, chunks, threads, output,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var c = CultureInfo.InvariantCulture;
            string dir = Path.Combine(Path.GetTempPath(), "llmpq", $"indicator-study-{Environment.ProcessId}");
            Directory.CreateDirectory(dir);
            try
            {
                var shape = new TinyLlamaModelOptions { Layers = parse.GetValue(layers), EmbeddingLength = parse.GetValue(width), FeedForwardLength = 2 * parse.GetValue(width) };
                string source = Path.Combine(dir, "base.gguf");
                TinyLlamaModel.Write(source, shape);
                ModelSpec model = ModelSpec.FromGguf(GgufReader.Read(source));
                QualityIndicatorTable indicator = QualityIndicator.Compute(source, cancellationToken: ct);
                List<(string Name, Plan Plan)> plans = Plans(model, indicator, parse.GetValue(random));
                var evaluation = new QualityEvaluationOptions { ContextLength = parse.GetValue(ctx), MaxChunks = parse.GetValue(chunks), Threads = parse.GetValue(threads) };
                using var loggers = Cli.CreateLoggerFactory(parse);

                var rows = new List<Row>();
                foreach (var (name, plan) in plans)
                {
                    Console.Error.WriteLine(string.Create(c, $"plan {rows.Count + 1}/{plans.Count}: {name}"));
                    string quantized = Path.Combine(dir, $"plan-{rows.Count}.gguf");
                    QuantizationResult q = await PlanQuantizer.QuantizeAsync(source, plan, quantized, parse.GetValue(threads), loggerFactory: loggers, cancellationToken: ct).ConfigureAwait(false);
                    QualityEvaluation e = await QualityEvaluator.EvaluateAsync(source, quantized, EvaluationText.Default, evaluation, loggerFactory: loggers, cancellationToken: ct).ConfigureAwait(false);
                    rows.Add(new Row(name, PlanTable.TypeCounts(plan.LayerTypes().Order()), plan.Indicator, e, q));
                    File.Delete(quantized);
                }

                string report = Report(shape, rows, evaluation, parse.Tokens.Select(t => t.Value));
                Console.WriteLine(report);
                if (parse.GetValue(output) is { } file)
                {
                    await File.WriteAllTextAsync(file.FullName, report, ct).ConfigureAwait(false);
                }

                return 0;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }));
        return command;
    }

    /// <summary>Spearman's rank correlation: Pearson's correlation of the ranks, ties sharing their mean rank.</summary>
    internal static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(x.Count, y.Count);
        double[] rx = Ranks(x);
        double[] ry = Ranks(y);
        double mx = rx.Average();
        double my = ry.Average();
        double cov = 0, vx = 0, vy = 0;
        for (int i = 0; i < rx.Length; i++)
        {
            cov += (rx[i] - mx) * (ry[i] - my);
            vx += (rx[i] - mx) * (rx[i] - mx);
            vy += (ry[i] - my) * (ry[i] - my);
        }

        return cov / Math.Sqrt(vx * vy);
    }

    private static double[] Ranks(IReadOnlyList<double> values)
    {
        int[] order = [.. Enumerable.Range(0, values.Count).OrderBy(i => values[i])];
        var ranks = new double[values.Count];
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]])
            {
                end++;
            }

            for (int k = start; k <= end; k++)
            {
                ranks[order[k]] = ((start + end) / 2.0) + 1;
            }

            start = end + 1;
        }

        return ranks;
    }

    private static List<(string Name, Plan Plan)> Plans(ModelSpec model, QualityIndicatorTable indicator, int randomPlans)
    {
        ClusterSpec cpu = ClusterSpec.Parse("""{"devices":[{"kind":"CPU","host":"local"}]}""");
        var workload = new Workload(8, 128, 64);
        var plans = new List<(string Name, Plan Plan)>();
        void Add(string name, Plan plan)
        {
            if (!plans.Any(p => p.Plan.LayerTypes().SequenceEqual(plan.LayerTypes())))
            {
                plans.Add((name, plan));
            }
        }

        foreach (double theta in new[] { 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3 })
        {
            Plan plan = Planner.Create(model, cpu, workload, new QualityTarget(theta, null), indicator);
            Add(string.Create(CultureInfo.InvariantCulture, $"planner θ={theta:G}"), plan);
        }

        // The planner's one-stage plan with other layer types: only the types (and so Σω) differ between the rows.
        Plan template = plans[0].Plan;
        Plan WithTypes(GgmlType[] types) => template with
        {
            Stages = [template.Stages[0] with { LayerStart = 0, LayerEnd = types.Length, LayerTypes = types }],
            Indicator = types.Select((t, layer) => indicator.Get(layer, t)!.Value).Sum(),
        };

        foreach (GgmlType type in PlanTypes.All.Where(t => model.Layers.All(l => l.CanTake(t))))
        {
            Add("uniform " + GgmlTypes.Name(type), WithTypes([.. Enumerable.Repeat(type, model.LayerCount)]));
        }

        var rng = new Random(20261122);
        GgmlType[] candidates = [.. PlanTypes.All.Where(t => model.Layers.All(l => l.CanTake(t)))];
        for (int i = 0; i < randomPlans; i++)
        {
            Add(string.Create(CultureInfo.InvariantCulture, $"random mix {i + 1}"), WithTypes([.. Enumerable.Range(0, model.LayerCount).Select(_ => candidates[rng.Next(candidates.Length)])]));
        }

        return plans;
    }

    private static string Report(TinyLlamaModelOptions shape, List<Row> rows, QualityEvaluationOptions evaluation, IEnumerable<string> arguments)
    {
        var c = CultureInfo.InvariantCulture;
        const double MiB = 1 << 20;
        double[] omega = [.. rows.Select(r => r.Indicator)];
        double rhoMean = Spearman(omega, [.. rows.Select(r => r.Evaluation.KldMean)]);
        double rhoP99 = Spearman(omega, [.. rows.Select(r => r.Evaluation.KldP99)]);
        double rhoPpl = Spearman(omega, [.. rows.Select(r => Math.Abs(Math.Log(r.Evaluation.ModelPerplexity / r.Evaluation.BasePerplexity)))]);
        double worstSize = rows.Max(r => Math.Abs(((double)r.Quantization.TensorBytes / r.Quantization.PredictedWeightBytes) - 1));
        var w = new StringBuilder();
        w.AppendLine("# Quality indicator against measured KL divergence").AppendLine();
        w.AppendLine(string.Create(c, $"Generated llama model: {shape.Layers} layers, {shape.EmbeddingLength} wide, FFN {shape.FeedForwardLength}, random weights (seed {shape.Seed}), F16. Each plan is applied with `llmpq quantize`'s code path and evaluated with `llmpq eval`'s: {rows[0].Evaluation.Chunks} windows of {evaluation.ContextLength} tokens of the shipped evaluation text, {rows[0].Evaluation.Tokens} scored tokens."));
        w.AppendLine();
        w.AppendLine(string.Create(c, $"Regenerate: `dotnet run --project src/LlmPq.Host -- {string.Join(' ', arguments)}`"));
        w.AppendLine();
        w.AppendLine("| plan | layer types | Σω | KLD mean | KLD median | KLD p99 | same top | PPL ratio | tensors MiB | predicted MiB |");
        w.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (Row r in rows.OrderBy(r => r.Indicator))
        {
            QualityEvaluation e = r.Evaluation;
            w.AppendLine(string.Create(c, $"| {r.Name} | {r.Types} | {r.Indicator:G4} | {e.KldMean:F6} | {e.KldMedian:F6} | {e.KldP99:F6} | {e.SameTopToken:P1} | {e.ModelPerplexity / e.BasePerplexity:F4} | {r.Quantization.TensorBytes / MiB:F2} | {r.Quantization.PredictedWeightBytes / MiB:F2} |"));
        }

        w.AppendLine();
        w.AppendLine(string.Create(c, $"Spearman ρ(Σω, mean KLD) = **{rhoMean:F3}**; ρ(Σω, p99 KLD) = {rhoP99:F3}; ρ(Σω, |ln PPL ratio|) = {rhoPpl:F3} over {rows.Count} plans."));
        w.AppendLine(string.Create(c, $"File tensor bytes against the planner's predicted weight bytes: largest difference {worstSize:P3}."));
        return w.ToString();
    }

    private sealed record Row(string Name, string Types, double Indicator, QualityEvaluation Evaluation, QuantizationResult Quantization);
}
