using System.Globalization;
using System.Xml.Linq;
using LlmPq.Planning;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// <c>llmpq plan --validate</c>'s picture (drawn with <see cref="BenchCharts"/>' parts): for throughput, prefill time and
/// decode time, a group of bars per plan, one per cost model's prediction and one for the measurement.
/// </summary>
internal static class PlanValidationChart
{
    private const double LabelWidth = 170;
    private const double BarWidth = 440;
    private const double BarHeight = 14;
    private const double PanelTitle = 28;

    public static XElement Create(PlanValidationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        (string Title, string Unit, Func<PredictedPerformance, double> Predicted, Func<MeasuredPerformance, double> Measured)[] panels =
        [
            ("Throughput", "tok/s", p => p.ThroughputTokensPerSecond, m => m.ThroughputTokensPerSecond),
            ("Prefill phase", "s", p => p.PrefillSeconds, m => m.PrefillSeconds),
            ("Decode phase", "s", p => p.DecodeSeconds, m => m.DecodeSeconds),
        ];
        int series = report.CostModels.Count + 1;
        double group = (series * BarHeight) + 10;
        double panelHeight = PanelTitle + (report.Rows.Count * group) + 12;
        string[] names = [.. report.CostModels.Select(m => $"predicted ({m})"), "measured"];
        double legendTop = 40 + (panels.Length * panelHeight) + 10;
        XElement svg = BenchCharts.Svg(legendTop + (names.Length * 20) + 10, "Plan and baselines: predicted against measured");

        double y = 40;
        foreach (var (title, unit, predicted, measured) in panels)
        {
            double[] all = [.. report.Rows.SelectMany(r => r.Predicted.Select(predicted).Concat(r.Measured is { } m ? [measured(m)] : [])).Where(v => v > 0)];
            double max = all.DefaultIfEmpty(1).Max();

            // Predictions and measurements can be orders of magnitude apart: then a logarithmic axis shows both.
            double? low = all.Length > 0 && max / all.Min() > 20 ? Math.Pow(10, Math.Floor(Math.Log10(all.Min()))) : null;
            double Width(double v) => low is double lo ? Math.Max(1, BarWidth * Math.Log10(Math.Max(v, lo) / lo) / Math.Log10(max / lo)) : BarWidth * v / max;
            svg.Add(BenchCharts.Text(16, y + 16, $"{title} ({unit}{(low is null ? string.Empty : ", log scale")})", "start", new XAttribute("font-weight", "bold")));
            y += PanelTitle;
            foreach (PlanValidationRow row in report.Rows)
            {
                svg.Add(BenchCharts.Text(LabelWidth - 8, y + (group / 2), row.Name, "end"));
                double?[] values = [.. row.Predicted.Select(p => (double?)predicted(p)), row.Measured is { } m ? measured(m) : null];
                for (int i = 0; i < values.Length; i++)
                {
                    double top = y + (i * BarHeight);
                    if (values[i] is not double v)
                    {
                        svg.Add(BenchCharts.Text(LabelWidth + 4, top + BarHeight - 3, "did not run", "start", new XAttribute("class", "note")));
                        continue;
                    }

                    double width = Width(v);
                    string text = v.ToString(unit == "s" ? "F3" : "F1", CultureInfo.InvariantCulture);
                    svg.Add(
                        BenchCharts.Element(
                            "rect",
                            new XAttribute("x", LabelWidth),
                            new XAttribute("y", string.Create(CultureInfo.InvariantCulture, $"{top + 1:F1}")),
                            new XAttribute("width", string.Create(CultureInfo.InvariantCulture, $"{width:F1}")),
                            new XAttribute("height", BarHeight - 2),
                            new XAttribute("fill", BenchCharts.Color(i)),
                            BenchCharts.Title($"{row.Name}, {names[i]}: {text} {unit}")),
                        BenchCharts.Text(LabelWidth + width + 4, top + BarHeight - 3, text, "start", new XAttribute("font-size", "10")));
                }

                y += group;
            }

            y += 12;
        }

        for (int i = 0; i < names.Length; i++)
        {
            double ly = legendTop + (i * 20);
            svg.Add(BenchCharts.Line(LabelWidth, ly, LabelWidth + 24, ly, null, BenchCharts.Color(i)), BenchCharts.Text(LabelWidth + 30, ly + 4, names[i], "start"));
        }

        return svg;
    }
}
