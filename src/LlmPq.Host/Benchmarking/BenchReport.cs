using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Xml.Linq;

namespace LlmPq.Host.Benchmarking;

/// <summary>How a benchmark was run: the workload (its turns per conversation and shared prefix too) and the engine settings both targets got.</summary>
internal sealed record BenchSettings(
    string Model,
    string Workload,
    int Seed,
    int Warmup,
    double? TimeLimitSeconds,
    int Parallel,
    int TokenBudget,
    int ContextLength,
    int Threads,
    double TbtSloMs,
    double SchedulingDelaySloMs,
    int Turns = 1,
    int SharedPrefixTokens = 0);

/// <summary>A benchmark's results: what ran, when, and one result per target and policy.</summary>
internal sealed record BenchReport(string Command, DateTimeOffset StartedAt, bool Interrupted, BenchSettings Settings, IReadOnlyList<LoadResult> Runs)
{
    /// <summary>The JSON form of reports and results: camelCase, indented.</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new RoundedDoubleConverter() },
    };

    /// <summary>Writes results.json, tbt.svg, capacity.svg (when a capacity search ran) and report.html into <paramref name="folder"/>; returns the files.</summary>
    public IReadOnlyList<string> Write(string folder)
    {
        Directory.CreateDirectory(folder);
        var files = new List<string>();
        void Save(string name, string content)
        {
            string path = Path.Combine(folder, name);
            File.WriteAllText(path, content);
            files.Add(path);
        }

        Save("results.json", JsonSerializer.Serialize(this, Json));
        XElement tbt = BenchCharts.TbtDistribution(Runs, Settings.TbtSloMs);
        Save("tbt.svg", tbt.ToString());
        XElement? capacity = Runs.Any(r => r.Capacity is not null) ? BenchCharts.Capacity(Runs, Settings.TbtSloMs, Settings.SchedulingDelaySloMs) : null;
        if (capacity is not null)
        {
            Save("capacity.svg", capacity.ToString());
        }

        Save("report.html", BenchCharts.Html(this, tbt, capacity));
        return files;
    }

    /// <summary>Prints the results as tables a person reads: one line per target and policy, and the capacities.</summary>
    public void Print(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var c = CultureInfo.InvariantCulture;
        BenchSettings s = Settings;
        output.WriteLine($"model {Path.GetFileName(s.Model)}; {s.Workload}; {s.Parallel} sequences, token budget {s.TokenBudget}, context {s.ContextLength}{(Interrupted ? "; INTERRUPTED, partial results" : string.Empty)}");
        output.WriteLine();
        string[] header = ["target", "qps", "ok", "fail", "cut", "tok/s", "TTFT p50", "p99", "TBT p50", "p99", "max", "E2E p50", "p99", "delay p50", "p99"];
        var rows = Runs.Select(r => new[]
        {
            r.Label, r.Qps is { } q ? q.ToString("G3", c) : "-", r.Completed.ToString(c), r.Failed.ToString(c), (r.Cancelled + r.NotSent).ToString(c),
            r.ThroughputTokensPerSecond.ToString("F1", c), LoadResult.Format(r.TtftP50Ms), LoadResult.Format(r.TtftP99Ms),
            LoadResult.Format(r.TbtP50Ms, 2), LoadResult.Format(r.TbtP99Ms, 2), LoadResult.Format(r.TbtMaxMs, 2),
            LoadResult.Format(r.E2eP50Ms, 0), LoadResult.Format(r.E2eP99Ms, 0), LoadResult.Format(r.SchedulingDelayP50Ms), LoadResult.Format(r.SchedulingDelayP99Ms),
        }).ToList();
        WriteTable(output, header, rows);
        output.WriteLine("(times in ms; cut: cut off by the time limit or Ctrl+C, or not sent)");

        bool repeats = s.Turns > 1 || s.SharedPrefixTokens > 0;
        var reused = Runs.Where(r => repeats || r.PromptTokensComputed is not null).ToList();
        if (reused.Count > 0)
        {
            output.WriteLine();
            output.WriteLine("prompt reuse: tokens of completed requests sent, new (not repeated on purpose by the workload) and computed (sent less cached, when the target says)");
            WriteTable(output, ["target", "sent", "new", "computed", "computed/new", "TTFT p50 turn 1", "last turn", "last/1"], [.. reused.Select(r =>
            {
                double? first = r.TtftP50MsByTurn?[0] ?? r.TtftP50Ms, last = r.TtftP50MsByTurn?[^1];
                return new[]
                {
                    r.Label, r.PromptTokensSent.ToString(c), r.PromptTokensNew.ToString(c), r.PromptTokensComputed?.ToString(c) ?? "-",
                    LoadResult.Format(Ratio(r.PromptTokensComputed, r.PromptTokensNew), 2),
                    LoadResult.Format(first), LoadResult.Format(last), LoadResult.Format(Ratio(last, first), 2),
                };
            })]);
        }

        var searched = Runs.Where(r => r.Capacity is not null).ToList();
        if (searched.Count > 0)
        {
            output.WriteLine();
            output.WriteLine(string.Create(c, $"capacity: highest Poisson rate with P99 TBT <= {s.TbtSloMs:G4} ms and median scheduling delay <= {s.SchedulingDelaySloMs:G4} ms"));
            WriteTable(output, ["target", "capacity qps", "probes", "search"], [.. searched.Select(r => new[]
            {
                r.Label, BenchCharts.CapacityText(r.Capacity!), r.Capacity!.Probes.Count.ToString(c), r.Capacity.Complete ? "done" : "incomplete",
            })]);
        }
    }

    private static double? Ratio(double? a, double? b) => a / b is { } ratio && double.IsFinite(ratio) ? ratio : null;

    private static void WriteTable(TextWriter output, string[] header, List<string[]> rows)
    {
        int[] widths = [.. header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length)))];
        string Line(string[] cells) => string.Join("  ", cells.Select((cell, i) => i == 0 ? cell.PadRight(widths[i]) : cell.PadLeft(widths[i]))).TrimEnd();
        output.WriteLine(Line(header));
        foreach (string[] row in rows)
        {
            output.WriteLine(Line(row));
        }
    }

    /// <summary>Writes numbers with at most four decimals: figures to read, not floating-point noise.</summary>
    private sealed class RoundedDoubleConverter : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDouble();

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options) => writer.WriteNumberValue(Math.Round(value, 4));
    }
}
