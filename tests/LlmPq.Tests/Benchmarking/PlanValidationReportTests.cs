using System.Globalization;
using System.Text.Json;
using System.Xml.Linq;
using LlmPq.Host.Benchmarking;
using LlmPq.Planning;

namespace LlmPq.Tests.Benchmarking;

/// <summary>The arithmetic and the files of <c>llmpq plan --validate</c>'s table.</summary>
public sealed class PlanValidationReportTests
{
    [Fact]
    public void A_run_is_read_as_prefill_until_every_first_token_and_decode_until_the_last_token()
    {
        LoadRun run = new(
            [
                Timing(first: 0.5, end: 2.0, tokens: 4),
                Timing(first: 0.8, end: 2.5, tokens: 4),
                Timing(first: 0.6, end: 2.2, tokens: 3),
            ],
            0,
            TimeSpan.FromSeconds(2.6));

        MeasuredPerformance m = MeasuredPerformance.From(run, generatedTokens: 4);

        Assert.Equal(0.8, m.PrefillSeconds, 9);
        Assert.Equal(2.5 - 0.8, m.DecodeSeconds, 9);
        Assert.Equal(11, m.OutputTokens);
        Assert.Equal(11 / 2.5, m.ThroughputTokensPerSecond, 9);
        Assert.Equal(1, m.ShortRequests);
    }

    [Fact]
    public void A_run_with_a_failed_request_is_no_measurement()
    {
        LoadRun run = new([Timing(0.5, 2.0, 4), Timing(0.5, 1.0, 0) with { Outcome = RequestOutcome.Failed, Error = "stage died" }], 0, TimeSpan.FromSeconds(2));

        Assert.Contains("stage died", Assert.Throws<InvalidOperationException>(() => MeasuredPerformance.From(run, 4)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_median_of_repeats_takes_each_figure_on_its_own_and_keeps_every_repeat()
    {
        MeasuredPerformance median = MeasuredPerformance.Median(
        [
            new(10, 1.0, 3.0, 40, 0, [10]),
            new(30, 0.2, 2.0, 40, 1, [30]),
            new(20, 0.5, 9.0, 40, 0, [20]),
        ]);

        Assert.Equal(20, median.ThroughputTokensPerSecond);
        Assert.Equal(0.5, median.PrefillSeconds);
        Assert.Equal(3.0, median.DecodeSeconds);
        Assert.Equal(1, median.ShortRequests);
        Assert.Equal([10, 30, 20], median.RepeatThroughputs);
        Assert.Equal(15, MeasuredPerformance.Median([new(10, 1, 1, 1, 0, [10]), new(20, 1, 1, 1, 0, [20])]).ThroughputTokensPerSecond);
    }

    [Fact]
    public void Ratios_gains_and_the_phase_time_error_come_from_the_measured_and_predicted_figures()
    {
        PlanValidationReport report = Report();

        PlanValidationRow ours = report.Rows[0];
        Assert.Equal([100.0 / 200, 100.0 / 150], ours.ThroughputRatios);
        PlanValidationGain overDefault = report.Gains[0];
        Assert.Equal("llama.cpp default", overDefault.Baseline);
        Assert.Equal([200.0 / 100, 150.0 / 100], overDefault.Predicted);
        Assert.Equal(100.0 / 75, overDefault.Measured);
        Assert.Equal(100.0 / 75 / (200.0 / 100), overDefault.MeasuredOverPredicted);

        // The baseline that did not run has no measured gain and no part in the error.
        Assert.Null(report.Gains[1].Measured);
        Assert.Null(report.Rows[2].ThroughputRatios[0]);
        double first = new[] { Math.Abs(1.0 - 2.0) / 2.0, Math.Abs(3.0 - 4.0) / 4.0, Math.Abs(1.5 - 1.0) / 1.0, Math.Abs(4.0 - 5.0) / 5.0 }.Average();
        double second = new[] { Math.Abs(2.0 - 2.0) / 2.0, Math.Abs(4.0 - 4.0) / 4.0, Math.Abs(1.0 - 1.0) / 1.0, Math.Abs(6.0 - 5.0) / 5.0 }.Average();
        Assert.Equal(first, report.PhaseTimeMape[0]!.Value, 12);
        Assert.Equal(second, report.PhaseTimeMape[1]!.Value, 12);
    }

    [Fact]
    public void The_table_has_a_row_per_plan_a_gain_per_baseline_and_each_cost_models_error()
    {
        string md = Report().ToMarkdown();

        Assert.Contains("| LlmPq | s0 0-1 q8_0×2 | 200.0 | 150.0 | 100.0 | 90.5–110.0 | 0.50 | 0.67 |", md, StringComparison.Ordinal);
        Assert.Contains("| Uniform |", md, StringComparison.Ordinal);
        Assert.Contains("did not run: out of memory", md, StringComparison.Ordinal);
        Assert.Contains("| llama.cpp default | 2.00× | 1.50× | 1.33× | 0.67 |", md, StringComparison.Ordinal);
        PlanValidationReport report = Report();
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"plans): profiled {report.PhaseTimeMape[0]:P1}, roofline"), md, StringComparison.Ordinal);
        Assert.Contains("roofline 5.0 %.", md, StringComparison.Ordinal);
    }

    [Fact]
    public void Save_writes_the_table_the_json_and_a_chart_with_a_bar_per_figure()
    {
        string folder = TestModels.TempPath("validation");
        PlanValidationReport report = Report();

        IReadOnlyList<string> files = report.Save(folder);

        Assert.Equal(["validation.md", "validation.json", "validation.svg"], files.Select(Path.GetFileName));
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(files[1]));
        Assert.Equal(3, json.RootElement.GetProperty("rows").GetArrayLength());
        Assert.Equal(2, json.RootElement.GetProperty("gains").GetArrayLength());
        Assert.Equal(2, json.RootElement.GetProperty("phaseTimeMape").GetArrayLength());
        XDocument svg = XDocument.Load(files[2]);
        XNamespace ns = "http://www.w3.org/2000/svg";

        // Three panels × (three plans × two predictions + two measurements).
        Assert.Equal(3 * ((3 * 2) + 2), svg.Descendants(ns + "rect").Count(r => r.Attribute("x")?.Value != null && r.Element(ns + "title") is not null));
    }

    private static PlanValidationReport Report() => new(
        "/m/model.gguf",
        "/c/cluster.json",
        new Workload(4, 16, 8),
        3,
        ["profiled", "roofline"],
        [
            new("LlmPq", "s0 0-1 q8_0×2", [new(200, 1.0, 3.0), new(150, 2.0, 4.0)], new(100, 2.0, 4.0, 32, 0, [110, 90.5, 100])),
            new("llama.cpp default", "s0 0-1 f16×2", [new(100, 1.5, 4.0), new(100, 1.0, 6.0)], new(75, 1.0, 5.0, 32, 0, [75])),
            new("Uniform", "s0 0-1 f16×2", [new(90, 1.5, 4.0), new(90, 1.0, 6.0)], null, "did not run: out of memory"),
        ]);

    private static RequestTiming Timing(double first, double end, int tokens) =>
        new(TimeSpan.Zero, [], TimeSpan.FromSeconds(first), TimeSpan.FromSeconds(end), 16, tokens, RequestOutcome.Completed, null);
}
