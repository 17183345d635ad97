using System.Globalization;
using System.Text;
using System.Text.Json;
using LlmPq.Planning;

namespace LlmPq.Host.Benchmarking;

/// <summary>What one plan did on the cluster: the median of its repeats, and each repeat's throughput.</summary>
/// <param name="ThroughputTokensPerSecond">Generated tokens over the time to the last token, as the planner defines throughput (B·n over the batch's latency).</param>
/// <param name="PrefillSeconds">The prefill phase: from the start until every request has its first token.</param>
/// <param name="DecodeSeconds">The decode phase: the rest, until the last request's last token.</param>
/// <param name="OutputTokens">The tokens generated (B·n unless a request ended early at the end of generation).</param>
/// <param name="ShortRequests">Requests that ended before n tokens (a random model can sample its end-of-generation token).</param>
/// <param name="RepeatThroughputs">Each repeat's throughput, in order.</param>
internal sealed record MeasuredPerformance(double ThroughputTokensPerSecond, double PrefillSeconds, double DecodeSeconds, long OutputTokens, int ShortRequests, IReadOnlyList<double> RepeatThroughputs)
{
    /// <summary>Reads one run of the whole batch sent at once: the phases from its requests' first and last tokens.</summary>
    /// <exception cref="InvalidOperationException">A request failed or was cut off: the run measured something else than the workload.</exception>
    public static MeasuredPerformance From(LoadRun run, int generatedTokens)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Timings.FirstOrDefault(t => t.Outcome != RequestOutcome.Completed) is { } bad)
        {
            throw new InvalidOperationException($"a request {(bad.Outcome == RequestOutcome.Failed ? "failed" : "was cut off")}{(bad.Error is null ? string.Empty : ": " + bad.Error)}");
        }

        if (run.Timings.Count == 0 || run.NotSent > 0)
        {
            throw new InvalidOperationException($"{run.NotSent} requests were not sent.");
        }

        double prefill = run.Timings.Max(t => (t.FirstResponse ?? t.End).TotalSeconds);
        double wall = run.Timings.Max(t => t.End.TotalSeconds);
        long tokens = run.Timings.Sum(t => t.OutputTokens);
        return new MeasuredPerformance(tokens / wall, prefill, wall - prefill, tokens, run.Timings.Count(t => t.OutputTokens < generatedTokens), [tokens / wall]);
    }

    /// <summary>The median of each figure over the repeats (each figure on its own), with every repeat's throughput.</summary>
    public static MeasuredPerformance Median(IReadOnlyList<MeasuredPerformance> repeats)
    {
        ArgumentNullException.ThrowIfNull(repeats);
        ArgumentOutOfRangeException.ThrowIfZero(repeats.Count);
        return new MeasuredPerformance(
            MedianOf(repeats.Select(r => r.ThroughputTokensPerSecond)),
            MedianOf(repeats.Select(r => r.PrefillSeconds)),
            MedianOf(repeats.Select(r => r.DecodeSeconds)),
            (long)MedianOf(repeats.Select(r => (double)r.OutputTokens)),
            repeats.Max(r => r.ShortRequests),
            [.. repeats.SelectMany(r => r.RepeatThroughputs)]);
    }

    /// <summary>Gets the median of some values (the mean of the middle two of an even count).</summary>
    public static double MedianOf(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

/// <summary>One plan (the planner's or a baseline's) as predicted and as measured.</summary>
/// <param name="Name">The plan's name (<c>LlmPq</c>, or the baseline's).</param>
/// <param name="Layout">Its stages: device, layers and types of each.</param>
/// <param name="Predicted">What each of the report's cost models predicts for it, in the report's order.</param>
/// <param name="Measured">What it measured, or null when it could not run.</param>
/// <param name="Note">Why it did not run, or a remark on the run.</param>
internal sealed record PlanValidationRow(string Name, string Layout, IReadOnlyList<PredictedPerformance> Predicted, MeasuredPerformance? Measured, string? Note = null)
{
    /// <summary>Gets measured over predicted throughput under each cost model, or nulls when it did not run.</summary>
    public IReadOnlyList<double?> ThroughputRatios => [.. Predicted.Select(p => Measured is { } m ? m.ThroughputTokensPerSecond / p.ThroughputTokensPerSecond : (double?)null)];
}

/// <summary>The plan's gain over one baseline, predicted (under each cost model) and measured.</summary>
/// <param name="Baseline">The baseline.</param>
/// <param name="Predicted">Our predicted throughput over the baseline's, under each cost model.</param>
/// <param name="Measured">Our measured throughput over the baseline's, or null when either did not run.</param>
internal sealed record PlanValidationGain(string Baseline, IReadOnlyList<double> Predicted, double? Measured)
{
    /// <summary>Gets the measured gain over the gain the planner's cost model (the first) predicts: 1 when the prediction held.</summary>
    public double? MeasuredOverPredicted => Measured / Predicted[0];
}

/// <summary>
/// <c>llmpq plan --validate</c>'s result: the plan and every fitting baseline run on the cluster, against what the
/// cost models predict; the first row is the planner's plan.
/// </summary>
/// <param name="Model">The source model.</param>
/// <param name="Cluster">The cluster file.</param>
/// <param name="Workload">The planner's workload, which every plan ran.</param>
/// <param name="Repeats">Runs of the workload per plan; the figures are their medians.</param>
/// <param name="CostModels">The cost models compared; the first is the one the planner planned with.</param>
/// <param name="Rows">The plan, then the baselines.</param>
internal sealed record PlanValidationReport(string Model, string Cluster, Workload Workload, int Repeats, IReadOnlyList<string> CostModels, IReadOnlyList<PlanValidationRow> Rows)
{
    /// <summary>Gets our gain over each baseline, predicted and measured.</summary>
    public IReadOnlyList<PlanValidationGain> Gains =>
    [
        .. Rows.Skip(1).Select(b => new PlanValidationGain(
            b.Name,
            [.. Rows[0].Predicted.Zip(b.Predicted, (ours, theirs) => ours.ThroughputTokensPerSecond / theirs.ThroughputTokensPerSecond)],
            Rows[0].Measured is { } ours && b.Measured is { } theirs ? ours.ThroughputTokensPerSecond / theirs.ThroughputTokensPerSecond : null)),
    ];

    /// <summary>
    /// Gets each cost model's error: the mean absolute percentage error of its predicted phase times (prefill and
    /// decode, each plan that ran) against the measured ones; null when nothing ran.
    /// </summary>
    public IReadOnlyList<double?> PhaseTimeMape =>
    [
        .. CostModels.Select((_, c) =>
        {
            double[] errors =
            [
                .. Rows.Where(r => r.Measured is not null).SelectMany(r => (double[])
                [
                    PercentageError(r.Predicted[c].PrefillSeconds, r.Measured!.PrefillSeconds),
                    PercentageError(r.Predicted[c].DecodeSeconds, r.Measured!.DecodeSeconds),
                ]),
            ];
            return errors.Length > 0 ? errors.Average() : (double?)null;
        }),
    ];

    /// <summary>The report as Markdown: a row per plan, the gains, and the cost models' errors.</summary>
    public string ToMarkdown()
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        string[] models = [.. CostModels];
        md.AppendLine(c, $"Model {Path.GetFileName(Model)}, cluster {Path.GetFileName(Cluster)}; B={Workload.BatchSize}, s={Workload.PromptTokens}, n={Workload.GeneratedTokens}; median of {Repeats} run{(Repeats == 1 ? string.Empty : "s")} per plan. Predictions: {string.Join(", ", models)}.");
        md.AppendLine();
        md.Append("| plan | stages |");
        md.Append(string.Concat(models.Select(m => $" predicted tok/s ({m}) |")));
        md.Append(" measured tok/s | runs, slowest–fastest |");
        md.Append(string.Concat(models.Select(m => $" measured / predicted ({m}) |")));
        md.Append(string.Concat(models.Select(m => $" prefill s predicted ({m}) |")));
        md.Append(" prefill s measured |");
        md.Append(string.Concat(models.Select(m => $" decode s predicted ({m}) |")));
        md.AppendLine(" decode s measured | note |");
        md.AppendLine("|" + string.Concat(Enumerable.Repeat("---|", 7 + (models.Length * 4))));
        foreach (PlanValidationRow r in Rows)
        {
            md.Append(c, $"| {r.Name} | {r.Layout} |");
            md.Append(string.Concat(r.Predicted.Select(p => string.Create(c, $" {p.ThroughputTokensPerSecond:F1} |"))));
            md.Append(c, $" {Format(r.Measured?.ThroughputTokensPerSecond, "F1")} | {Spread(r.Measured)} |");
            md.Append(string.Concat(r.ThroughputRatios.Select(x => $" {Format(x, "F2")} |")));
            md.Append(string.Concat(r.Predicted.Select(p => string.Create(c, $" {p.PrefillSeconds:F3} |"))));
            md.Append(c, $" {Format(r.Measured?.PrefillSeconds, "F3")} |");
            md.Append(string.Concat(r.Predicted.Select(p => string.Create(c, $" {p.DecodeSeconds:F3} |"))));
            md.AppendLine(c, $" {Format(r.Measured?.DecodeSeconds, "F3")} | {Note(r)} |");
        }

        md.AppendLine();
        md.Append("| LlmPq over |");
        md.Append(string.Concat(models.Select(m => $" predicted gain ({m}) |")));
        md.AppendLine($" measured gain | measured / predicted gain ({models[0]}) |");
        md.AppendLine("|" + string.Concat(Enumerable.Repeat("---|", 3 + models.Length)));
        foreach (PlanValidationGain g in Gains)
        {
            md.Append(c, $"| {g.Baseline} |");
            md.Append(string.Concat(g.Predicted.Select(p => string.Create(c, $" {p:F2}× |"))));
            md.AppendLine(c, $" {Format(g.Measured, "F2")}{(g.Measured is null ? string.Empty : "×")} | {Format(g.MeasuredOverPredicted, "F2")} |");
        }

        md.AppendLine();
        md.AppendLine(c, $"Cost-model error (MAPE of predicted against measured prefill and decode phase times, {Rows.Count(r => r.Measured is not null)} plans): {string.Join(", ", PhaseTimeMape.Select((e, i) => $"{models[i]} {(e is double v ? string.Create(c, $"{v:P1}") : "-")}"))}.");
        return md.ToString();
    }

    /// <summary>Writes <c>validation.md</c>, <c>validation.json</c> and <c>validation.svg</c> into <paramref name="folder"/>.</summary>
    /// <returns>The files written.</returns>
    public IReadOnlyList<string> Save(string folder)
    {
        Directory.CreateDirectory(folder);
        string md = Path.Combine(folder, "validation.md"), json = Path.Combine(folder, "validation.json"), svg = Path.Combine(folder, "validation.svg");
        File.WriteAllText(md, ToMarkdown());
        File.WriteAllText(json, JsonSerializer.Serialize(this, BenchReport.Json));
        PlanValidationChart.Create(this).Save(svg);
        return [md, json, svg];
    }

    private static double PercentageError(double predicted, double measured) => Math.Abs(predicted - measured) / measured;

    private static string Format(double? value, string format) => value is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    // How far the runs behind a median spread: on shared cores a plan's runs differ more than some plans do.
    private static string Spread(MeasuredPerformance? measured) => measured is { RepeatThroughputs.Count: > 0 } m
        ? string.Create(CultureInfo.InvariantCulture, $"{m.RepeatThroughputs.Min():F1}–{m.RepeatThroughputs.Max():F1}")
        : "-";

    private static string Note(PlanValidationRow r)
    {
        string? ended = r.Measured is { ShortRequests: > 0 } m ? string.Create(CultureInfo.InvariantCulture, $"{m.ShortRequests} request(s) ended before n tokens") : null;
        return string.Join("; ", new[] { r.Note, ended }.Where(s => !string.IsNullOrEmpty(s)));
    }
}
