using System.Text.Json;
using System.Xml;
using System.Xml.Linq;
using LlmPq.Host.Benchmarking;

namespace LlmPq.Tests.Benchmarking;

/// <summary>The files a benchmark writes: JSON, SVG charts and the HTML page, all well-formed, one series per run.</summary>
public sealed class ReportTests
{
    private static readonly XNamespace s_svg = "http://www.w3.org/2000/svg";
    private static readonly XNamespace s_html = "http://www.w3.org/1999/xhtml";

    private static LoadResult Run(string target, string? policy, double gapMs, CapacityResult? capacity)
    {
        // Three requests of five tokens, gaps of gapMs and twice that.
        RequestTiming[] timings = [.. Enumerable.Range(0, 3).Select(i =>
        {
            TimeSpan[] pieces = [.. Enumerable.Range(0, 5).Select(k => TimeSpan.FromMilliseconds(10 + (k * gapMs * (1 + (i % 2)))))];
            return new RequestTiming(TimeSpan.Zero, pieces, pieces[0], pieces[^1], 16, 5, RequestOutcome.Completed, null);
        })];
        return LoadResult.From(new LoadRun(timings, 0, TimeSpan.FromSeconds(1))) with { Target = target, Policy = policy, Qps = 2, Capacity = capacity };
    }

    private static BenchReport Report(params LoadResult[] runs) => new(
        "llmpq bench --capacity",
        DateTimeOffset.UnixEpoch,
        Interrupted: false,
        new BenchSettings("/models/m.gguf", "3 requests", 1, 1, null, 8, 256, 1024, 0, 50, 2000),
        runs);

    [Fact]
    public void The_files_are_well_formed_with_one_series_per_run()
    {
        CapacityResult Capacity(double? qps, bool complete) => new(qps, 50, 2000, complete, [new CapacityProbe(2, qps is not null, 12, 3, 3, 0, 0)]);
        LoadResult empty = LoadResult.From(new LoadRun([], 0, TimeSpan.FromSeconds(1))) with { Target = "llama-server" };
        BenchReport report = Report(
            Run("in-process", "sarathi", 4, Capacity(9.5, true)),
            Run("http://h:1/x?a=1&b=<2>", null, 9, Capacity(null, true)),
            Run("in-process", "prefill-first", 20, null),
            empty);
        string folder = TestModels.TempPath("bench");
        IReadOnlyList<string> files = report.Write(folder);
        Assert.Equal(["results.json", "tbt.svg", "capacity.svg", "report.html"], files.Select(Path.GetFileName));

        XDocument tbt = XDocument.Load(Path.Combine(folder, "tbt.svg"));
        Assert.Equal(s_svg + "svg", tbt.Root!.Name);
        XElement[] series = [.. tbt.Descendants(s_svg + "g").Where(g => (string?)g.Attribute("class") == "series")];
        Assert.Equal(report.Runs.Select(r => r.Label), series.Select(g => (string?)g.Attribute("data-run")));
        Assert.Equal([1, 1, 1, 0], series.Select(g => g.Elements(s_svg + "polyline").Count()));

        XDocument capacity = XDocument.Load(Path.Combine(folder, "capacity.svg"));
        Assert.Equal(
            report.Runs.Where(r => r.Capacity is not null).Select(r => r.Label),
            capacity.Descendants(s_svg + "g").Where(g => (string?)g.Attribute("class") == "bar").Select(g => (string?)g.Attribute("data-run")));

        using XmlReader reader = XmlReader.Create(Path.Combine(folder, "report.html"), new XmlReaderSettings { DtdProcessing = DtdProcessing.Parse });
        XDocument html = XDocument.Load(reader);
        Assert.Equal(s_html + "html", html.Root!.Name);
        Assert.Equal(2, html.Descendants(s_svg + "svg").Count());
        Assert.Equal(report.Runs.Count + 1, html.Descendants(s_html + "table").First().Elements(s_html + "tr").Count());

        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "results.json")));
        JsonElement runs = json.RootElement.GetProperty("runs");
        Assert.Equal(report.Runs.Count, runs.GetArrayLength());
        foreach (string field in new[] { "throughputTokensPerSecond", "ttftP50Ms", "ttftP99Ms", "tbtP50Ms", "tbtP99Ms", "schedulingDelayP50Ms", "completed", "failed" })
        {
            Assert.True(runs[0].TryGetProperty(field, out _), field);
        }

        Assert.Equal(9.5, runs[0].GetProperty("capacity").GetProperty("qps").GetDouble());
        Assert.Equal(JsonValueKind.Null, runs[2].GetProperty("capacity").ValueKind);
    }

    [Fact]
    public void Without_a_capacity_search_there_is_no_capacity_chart()
    {
        string folder = TestModels.TempPath("bench");
        IReadOnlyList<string> files = Report(Run("in-process", "sarathi", 4, null)).Write(folder);
        Assert.Equal(["results.json", "tbt.svg", "report.html"], files.Select(Path.GetFileName));
        XDocument.Load(Path.Combine(folder, "tbt.svg"));
    }

    [Fact]
    public void The_table_names_every_run_and_capacity()
    {
        BenchReport report = Report(
            Run("in-process", "sarathi", 4, new CapacityResult(3.25, 50, 2000, false, [])),
            Run("llama-server", null, 9, null));
        using var text = new StringWriter();
        report.Print(text);
        string printed = text.ToString();
        Assert.Contains("in-process (sarathi)", printed, StringComparison.Ordinal);
        Assert.Contains("llama-server", printed, StringComparison.Ordinal);
        Assert.Contains("≥ 3.25", printed, StringComparison.Ordinal);
        Assert.Contains("incomplete", printed, StringComparison.Ordinal);
        Assert.DoesNotContain("prompt reuse", printed, StringComparison.Ordinal);   // the workload repeats nothing and no target said what it cached
    }

    [Fact]
    public void A_reuse_workload_adds_a_table_of_prompt_tokens_and_ttft_by_turn()
    {
        LoadResult cached = Run("llama-server", null, 4, null) with { PromptTokensSent = 1000, PromptTokensNew = 400, PromptTokensComputed = 500, TtftP50MsByTurn = [20, 50] };
        LoadResult uncached = Run("in-process", "sarathi", 4, null) with { PromptTokensSent = 1000, PromptTokensNew = 400, TtftP50MsByTurn = [20, 80] };
        BenchReport report = Report(cached, uncached) with { Settings = new BenchSettings("/models/m.gguf", "3 conversations", 1, 1, null, 8, 256, 1024, 0, 50, 2000, Turns: 2) };
        using var text = new StringWriter();
        report.Print(text);
        string[] lines = [.. text.ToString().Split('\n').SkipWhile(l => !l.StartsWith("prompt reuse", StringComparison.Ordinal)).Skip(2).Take(2)];
        Assert.Equal(["llama-server", "1000", "400", "500", "1.25", "20.0", "50.0", "2.50"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["in-process", "(sarathi)", "1000", "400", "-", "-", "20.0", "80.0", "4.00"], lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }
}
