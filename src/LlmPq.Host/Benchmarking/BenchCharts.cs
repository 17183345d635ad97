using System.Globalization;
using System.Xml.Linq;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// The pictures of a benchmark, as self-contained SVG (no scripts, no fonts or libraries fetched): the TBT
/// distribution of every run, the capacity of every target and policy, and an HTML page holding both with the tables.
/// </summary>
internal static class BenchCharts
{
    private const double Width = 760;
    private const double Left = 64;
    private const double Top = 40;
    private const double PlotWidth = 660;
    private const double PlotHeight = 300;

    private static readonly XNamespace s_svg = "http://www.w3.org/2000/svg";
    private static readonly XNamespace s_html = "http://www.w3.org/1999/xhtml";
    private static readonly string[] s_colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

    /// <summary>The cumulative TBT distribution of every run on a logarithmic time axis, one series per run, with the SLO marked.</summary>
    public static XElement TbtDistribution(IReadOnlyList<LoadResult> runs, double sloMs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        double[] values = [.. runs.SelectMany(r => r.TbtQuantilesMs).Where(v => v > 0), sloMs];
        double lo = Math.Pow(10, Math.Floor(Math.Log10(values.Min())));
        double hi = Math.Pow(10, Math.Ceiling(Math.Log10(values.Max())));
        hi = hi <= lo ? lo * 10 : hi;
        double X(double ms) => Left + (PlotWidth * (Math.Log10(Math.Max(ms, lo)) - Math.Log10(lo)) / (Math.Log10(hi) - Math.Log10(lo)));
        double Y(double p) => Top + (PlotHeight * (1 - p));

        double legendTop = Top + PlotHeight + 66;
        XElement svg = Svg(legendTop + (runs.Count * 20), "Time between tokens: cumulative distribution per run");
        for (double tick = lo; tick <= hi * 1.0001; tick *= 10)
        {
            svg.Add(Line(X(tick), Top, X(tick), Top + PlotHeight, "grid"), Text(X(tick), Top + PlotHeight + 18, Milliseconds(tick), "middle"));
            if (tick < hi)
            {
                svg.Add(Line(X(tick * 2), Top, X(tick * 2), Top + PlotHeight, "minor"), Line(X(tick * 5), Top, X(tick * 5), Top + PlotHeight, "minor"));
            }
        }

        foreach (double p in new[] { 0, 0.25, 0.5, 0.75, 1 })
        {
            svg.Add(Line(Left, Y(p), Left + PlotWidth, Y(p), "grid"), Text(Left - 8, Y(p) + 4, p.ToString("0.##", CultureInfo.InvariantCulture), "end"));
        }

        svg.Add(
            Text(Left + (PlotWidth / 2), Top + PlotHeight + 40, "time between tokens (log scale)", "middle"),
            Text(16, Top + (PlotHeight / 2), "fraction of gaps", "middle", new XAttribute("transform", Invariant($"rotate(-90 16 {Top + (PlotHeight / 2)})"))),
            Line(X(sloMs), Top, X(sloMs), Top + PlotHeight, "slo"),
            Text(X(sloMs) + 4, Top + 12, Invariant($"SLO {Milliseconds(sloMs)}"), "start"));

        for (int i = 0; i < runs.Count; i++)
        {
            LoadResult run = runs[i];
            string color = s_colors[i % s_colors.Length];
            var series = new XElement(s_svg + "g", new XAttribute("class", "series"), new XAttribute("data-run", run.Label));
            IReadOnlyList<double> q = run.TbtQuantilesMs;
            if (q.Count > 1)
            {
                string points = string.Join(' ', q.Select((v, k) => Invariant($"{X(v):F1},{Y((double)k / (q.Count - 1)):F1}")));
                series.Add(new XElement(s_svg + "polyline", new XAttribute("points", points), new XAttribute("fill", "none"), new XAttribute("stroke", color), new XAttribute("stroke-width", "2")));
                if (run.TbtP99Ms is { } p99)
                {
                    series.Add(new XElement(s_svg + "circle", new XAttribute("cx", Invariant($"{X(p99):F1}")), new XAttribute("cy", Invariant($"{Y(0.99):F1}")), new XAttribute("r", "3.5"), new XAttribute("fill", color), Title(Invariant($"{run.Label}: P99 TBT {p99:F2} ms"))));
                }
            }

            double legendY = legendTop + (i * 20);
            string note = q.Count > 1 ? Invariant($"P50 {LoadResult.Format(run.TbtP50Ms, 2)} ms, P99 {LoadResult.Format(run.TbtP99Ms, 2)} ms") : "no TBT samples";
            series.Add(
                Line(Left, legendY, Left + 24, legendY, null, color),
                Text(Left + 30, legendY + 4, $"{run.Label}{(run.Qps is { } qps ? Invariant($" at {qps:G3} req/s") : string.Empty)}: {note}", "start"));
            svg.Add(series);
        }

        return svg;
    }

    /// <summary>A bar per target and policy: the capacity its search found, marked where the search did not finish.</summary>
    public static XElement Capacity(IReadOnlyList<LoadResult> runs, double tbtSloMs, double schedulingDelaySloMs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        int count = runs.Count(r => r.Capacity is not null);
        const double rowHeight = 30, labelWidth = 240, barWidth = 380;
        double max = Math.Max(runs.Max(r => r.Capacity?.Qps ?? 0), 1e-9);
        XElement svg = Svg(
            Top + (count * rowHeight) + 40,
            $"Capacity (P99 TBT ≤ {Milliseconds(tbtSloMs)}, median scheduling delay ≤ {Milliseconds(schedulingDelaySloMs)})");
        double y = Top;
        for (int i = 0; i < runs.Count; i++)
        {
            // Colors follow the run's place in the list, as in the TBT chart.
            if (runs[i].Capacity is not { } capacity)
            {
                continue;
            }

            double width = barWidth * (capacity.Qps ?? 0) / max;
            svg.Add(new XElement(
                s_svg + "g",
                new XAttribute("class", "bar"),
                new XAttribute("data-run", runs[i].Label),
                Text(labelWidth - 8, y + 19, runs[i].Label, "end"),
                new XElement(s_svg + "rect", new XAttribute("x", labelWidth), new XAttribute("y", Invariant($"{y + 4:F1}")), new XAttribute("width", Invariant($"{width:F1}")), new XAttribute("height", rowHeight - 8), new XAttribute("fill", s_colors[i % s_colors.Length])),
                Text(labelWidth + width + 6, y + 19, CapacityText(capacity) + " req/s", "start")));
            y += rowHeight;
        }

        svg.Add(Text(labelWidth, y + 24, "≥: the search stopped before it narrowed the rate; <: no rate tried passed", "start", new XAttribute("class", "note")));
        return svg;
    }

    /// <summary>The capacity as text: the rate, '≥ rate' when the search stopped early, '&lt; rate' when no rate passed.</summary>
    public static string CapacityText(CapacityResult capacity)
    {
        ArgumentNullException.ThrowIfNull(capacity);
        return capacity.Qps is { } q
            ? Invariant($"{(capacity.Complete ? string.Empty : "≥ ")}{q:G3}")
            : capacity.Probes.Count > 0 ? Invariant($"< {capacity.Probes.Min(p => p.Qps):G3}") : "-";
    }

    /// <summary>A self-contained page: the settings, the results table, both charts and the capacity probes.</summary>
    public static string Html(BenchReport report, XElement tbt, XElement? capacity)
    {
        ArgumentNullException.ThrowIfNull(report);
        BenchSettings s = report.Settings;
        XElement Cell(string name, object? content) => new(s_html + name, content);
        XElement Row(string cell, IEnumerable<object?> cells) => new(s_html + "tr", cells.Select(c => Cell(cell, c)));
        XElement Table(string[] header, IEnumerable<IEnumerable<object?>> rows) =>
            new(s_html + "table", Row("th", header), rows.Select(r => Row("td", r)));

        var body = new XElement(
            s_html + "body",
            Cell("h1", "llmpq bench"),
            Cell("p", Invariant($"{report.StartedAt:yyyy-MM-dd HH:mm:ss zzz}{(report.Interrupted ? " — interrupted, partial results" : string.Empty)}")),
            new XElement(s_html + "pre", report.Command),
            Cell("p", Invariant($"Model {Path.GetFileName(s.Model)}; {s.Workload}; {s.Parallel} sequences, token budget {s.TokenBudget}, context {s.ContextLength}, threads {(s.Threads > 0 ? s.Threads.ToString(CultureInfo.InvariantCulture) : "all")}; warm-up {s.Warmup}; time limit {(s.TimeLimitSeconds is { } t ? Invariant($"{t:G4} s") : "none")}.")),
            Table(
                ["target", "qps", "completed", "failed", "cut off", "not sent", "tokens/s", "TTFT p50", "TTFT p99", "TBT p50", "TBT p99", "TBT max", "E2E p50", "E2E p99", "delay p50", "delay p99"],
                report.Runs.Select(r => new object?[]
                {
                    r.Label, r.Qps is { } q ? q.ToString("G3", CultureInfo.InvariantCulture) : "-", r.Completed, r.Failed, r.Cancelled, r.NotSent,
                    LoadResult.Format(r.ThroughputTokensPerSecond), LoadResult.Format(r.TtftP50Ms), LoadResult.Format(r.TtftP99Ms),
                    LoadResult.Format(r.TbtP50Ms, 2), LoadResult.Format(r.TbtP99Ms, 2), LoadResult.Format(r.TbtMaxMs, 2),
                    LoadResult.Format(r.E2eP50Ms, 0), LoadResult.Format(r.E2eP99Ms, 0), LoadResult.Format(r.SchedulingDelayP50Ms), LoadResult.Format(r.SchedulingDelayP99Ms),
                })),
            Cell("p", "Times in ms, from each request's due arrival. TTFT: to the first token. TBT: gaps between streamed tokens. E2E: to the last token. Scheduling delay: TTFT less the TTFT of the same prompt length on the idle target (measured alone before the run), an upper bound of the time the request waited to be scheduled. A request cut off before its first token counts with the time it had waited."),
            Cell("h2", "Time between tokens"),
            tbt);
        if (capacity is not null)
        {
            body.Add(Cell("h2", "Capacity"), capacity);
            foreach (LoadResult r in report.Runs.Where(r => r.Capacity is not null))
            {
                body.Add(
                    Cell("h3", Invariant($"{r.Label}: {CapacityText(r.Capacity!)} req/s")),
                    Table(
                        ["qps", "passed", "TBT p99", "delay p50", "completed", "failed", "cut off", "first error"],
                        r.Capacity!.Probes.Select(p => new object?[]
                        {
                            p.Qps.ToString("G4", CultureInfo.InvariantCulture), p.Passed ? "yes" : "no", LoadResult.Format(p.TbtP99Ms, 2), LoadResult.Format(p.SchedulingDelayP50Ms), p.Completed, p.Failed, p.Cancelled, p.Error,
                        })));
            }
        }

        foreach (LoadResult r in report.Runs.Where(r => r.Errors.Count > 0))
        {
            body.Add(Cell("h3", $"Errors of {r.Label}"), new XElement(s_html + "ul", r.Errors.Select(e => Cell("li", e))));
        }

        var html = new XElement(
            s_html + "html",
            new XAttribute("lang", "en"),
            new XElement(
                s_html + "head",
                new XElement(s_html + "meta", new XAttribute("charset", "utf-8")),
                Cell("title", "llmpq bench"),
                Cell("style", "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}pre{background:#f4f4f4;padding:.5em;white-space:pre-wrap}")),
            body);
        return "<!DOCTYPE html>\n" + html.ToString();
    }

    /// <summary>An empty chart of the common width, white, with its title.</summary>
    internal static XElement Svg(double height, string title) => new(
        s_svg + "svg",
        new XAttribute("width", Width),
        new XAttribute("height", Invariant($"{height:F0}")),
        new XAttribute("viewBox", Invariant($"0 0 {Width} {height:F0}")),
        new XAttribute("font-family", "system-ui, sans-serif"),
        new XAttribute("font-size", "12"),
        new XElement(s_svg + "style", ".grid{stroke:#ddd}.minor{stroke:#f2f2f2}.slo{stroke:#888;stroke-dasharray:5 4}.note{fill:#666;font-size:11px}"),
        new XElement(s_svg + "rect", new XAttribute("width", "100%"), new XAttribute("height", "100%"), new XAttribute("fill", "white")),
        Text(Left, 22, title, "start", new XAttribute("font-size", "14"), new XAttribute("font-weight", "bold")));

    /// <summary>A line; a series' color as <paramref name="stroke"/>, or a CSS class (grid, minor, slo).</summary>
    internal static XElement Line(double x1, double y1, double x2, double y2, string? cssClass, string? stroke = null) => new(
        s_svg + "line",
        new XAttribute("x1", Invariant($"{x1:F1}")),
        new XAttribute("y1", Invariant($"{y1:F1}")),
        new XAttribute("x2", Invariant($"{x2:F1}")),
        new XAttribute("y2", Invariant($"{y2:F1}")),
        cssClass is null ? null : new XAttribute("class", cssClass),
        stroke is null ? null : new XAttribute("stroke", stroke),
        stroke is null ? null : new XAttribute("stroke-width", "2"));

    /// <summary>A label anchored at (x, y).</summary>
    internal static XElement Text(double x, double y, string text, string anchor, params object[] extra) => new(
        s_svg + "text",
        new XAttribute("x", Invariant($"{x:F1}")),
        new XAttribute("y", Invariant($"{y:F1}")),
        new XAttribute("text-anchor", anchor),
        extra,
        text);

    /// <summary>A tooltip.</summary>
    internal static XElement Title(string text) => new(s_svg + "title", text);

    /// <summary>An SVG element of another kind than these.</summary>
    internal static XElement Element(string name, params object?[] content) => new(s_svg + name, content);

    /// <summary>The color of the <paramref name="index"/>th series, as every chart uses them.</summary>
    internal static string Color(int index) => s_colors[index % s_colors.Length];

    private static string Milliseconds(double ms) => ms >= 1000 ? Invariant($"{ms / 1000:G3} s") : Invariant($"{ms:G3} ms");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
