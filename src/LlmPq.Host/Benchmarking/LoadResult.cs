using System.Globalization;
using System.Text.Json.Serialization;

namespace LlmPq.Host.Benchmarking;

/// <summary>The time to the first token of a prompt of some length on the idle target (measured alone, before the run).</summary>
internal sealed record IdlePoint(long PromptTokens, double TtftMs);

/// <summary>
/// The summary of one run against one target (and, in process, one scheduling policy). Latencies count from each
/// request's due arrival time. Definitions:
/// <list type="bullet">
/// <item>TTFT: arrival to the first answer (text, or the end of an answer without text). A request cut off before it
/// counts with the time it had waited (a lower bound), so a stopped overload does not look fast.</item>
/// <item>TBT: the gaps between consecutive pieces of streamed text, of every request that streamed any.</item>
/// <item>E2E: arrival to the end of a completed answer.</item>
/// <item>Scheduling delay: TTFT less the TTFT of the same prompt length on the idle target (interpolated between the
/// measured <see cref="IdleTtft"/> points; 0 without them), floored at 0. Sarathi-Serve's own definition (arrival to
/// the first time a scheduler picks the request) cannot be seen from outside an engine; this one is what the load added
/// before the first token, so up to noise it bounds that from above (it also holds the slowdown of a prompt sharing iterations).</item>
/// <item>Throughput: output tokens received (completed answers by the target's usage count, cut-off ones by pieces) per second of the run.</item>
/// <item>Prompt tokens, of completed requests: sent (what the target counted), new (sent less what the workload repeats on
/// purpose: the shared prefix, a conversation's earlier turns), and computed (sent less what the target said it took from its cache).</item>
/// </list>
/// A conversation's every turn is a request.
/// </summary>
internal sealed record LoadResult
{
    /// <summary>The probabilities of <see cref="TbtQuantilesMs"/>: 0, 0.005, …, 1.</summary>
    public const int QuantileSteps = 200;

    public string Target { get; init; } = string.Empty;

    /// <summary>Gets the in-process scheduling policy; null for other targets.</summary>
    public string? Policy { get; init; }

    /// <summary>Gets the offered Poisson rate; null when requests arrived all at once or at a trace's times.</summary>
    public double? Qps { get; init; }

    public int Requests { get; init; }

    public int Completed { get; init; }

    public int Failed { get; init; }

    /// <summary>Gets the requests cut off by the time limit or Ctrl+C while in flight.</summary>
    public int Cancelled { get; init; }

    /// <summary>Gets the requests not sent because the run stopped before they were due.</summary>
    public int NotSent { get; init; }

    public double WallSeconds { get; init; }

    public double ThroughputTokensPerSecond { get; init; }

    public double RequestsPerSecond { get; init; }

    /// <summary>Gets the mean prompt length of completed requests as the target counted it.</summary>
    public double? PromptTokensMean { get; init; }

    public double? OutputTokensMean { get; init; }

    /// <summary>Gets the prompt tokens of completed requests as the target counted them.</summary>
    public long PromptTokensSent { get; init; }

    /// <summary>Gets the prompt tokens of completed requests that the workload did not repeat on purpose (a prefix all share counts once: it is new to the first request that sends it).</summary>
    public long PromptTokensNew { get; init; }

    /// <summary>Gets the prompt tokens of completed requests the target computed (sent less cached); null unless it reported its cached tokens for every one.</summary>
    public long? PromptTokensComputed { get; init; }

    public double? TtftP50Ms { get; init; }

    /// <summary>Gets the TTFT p50 of each turn, from turn 1; null when the requests were single messages.</summary>
    public IReadOnlyList<double?>? TtftP50MsByTurn { get; init; }

    public double? TtftP99Ms { get; init; }

    public double? TbtP50Ms { get; init; }

    public double? TbtP99Ms { get; init; }

    public double? TbtMaxMs { get; init; }

    public double? E2eP50Ms { get; init; }

    public double? E2eP99Ms { get; init; }

    public double? SchedulingDelayP50Ms { get; init; }

    public double? SchedulingDelayP99Ms { get; init; }

    /// <summary>Gets where the scheduling delay comes from: <c>engine</c> (measured by an in-process engine) or <c>ttft-minus-idle</c> (estimated from outside).</summary>
    public string? SchedulingDelaySource { get; init; }

    /// <summary>Gets the TBT distribution: element k is the k/<see cref="QuantileSteps"/> quantile (empty without samples).</summary>
    public IReadOnlyList<double> TbtQuantilesMs { get; init; } = [];

    /// <summary>Gets the idle TTFT measured before the run, the base of the scheduling delay.</summary>
    public IReadOnlyList<IdlePoint> IdleTtft { get; init; } = [];

    /// <summary>Gets the distinct errors of failed requests (at most five).</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>Gets the capacity search of this target and policy, when one ran; the other figures are then those of its highest passing rate.</summary>
    public CapacityResult? Capacity { get; init; }

    /// <summary>Gets a short name of the target and policy.</summary>
    [JsonIgnore]
    public string Label => Policy is null ? Target : $"{Target} ({Policy})";

    /// <summary>Summarizes a run; <paramref name="idle"/> is the base of the scheduling delay.</summary>
    public static LoadResult From(LoadRun run, IReadOnlyList<IdlePoint>? idle = null, IReadOnlyList<double>? engineDelaysMs = null)
    {
        ArgumentNullException.ThrowIfNull(run);
        idle ??= [];
        var answered = run.Timings.Where(t => t.Outcome != RequestOutcome.Failed).ToList();
        var completed = answered.Where(t => t.Outcome == RequestOutcome.Completed).ToList();

        // A request cut off unanswered had waited at least until the cut.
        var ttft = answered
            .Select(t => (t.PromptTokens, t.Turn, Ms: (t.TimeToFirstToken ?? (t.End - t.Arrival)).TotalMilliseconds))
            .ToList();
        double[] ttftSorted = Sorted(ttft.Select(t => t.Ms));
        // The engine's own measurement when the target is in this process and scheduled every answered request (a
        // request cut off before its first iteration has no measurement); otherwise TTFT less the idle TTFT.
        bool measured = engineDelaysMs is { Count: > 0 } && engineDelaysMs.Count >= ttft.Count;
        double[] delay = measured ? Sorted(engineDelaysMs!) : Sorted(ttft.Select(t => Math.Max(0, t.Ms - IdleTtftMs(idle, t.PromptTokens))));
        double[] tbt = Sorted(answered.SelectMany(t => t.Gaps).Select(g => g.TotalMilliseconds));
        double[] e2e = Sorted(completed.Select(t => (t.End - t.Arrival).TotalMilliseconds));
        double wall = run.Wall.TotalSeconds;
        int turns = run.Timings.Count == 0 ? 1 : run.Timings.Max(t => t.Turn);
        return new LoadResult
        {
            Requests = run.Timings.Count + run.NotSent,
            Completed = completed.Count,
            Failed = run.Timings.Count - answered.Count,
            Cancelled = answered.Count - completed.Count,
            NotSent = run.NotSent,
            WallSeconds = wall,
            ThroughputTokensPerSecond = wall > 0 ? answered.Sum(t => t.OutputTokens) / wall : 0,
            RequestsPerSecond = wall > 0 ? completed.Count / wall : 0,
            PromptTokensMean = completed.Count > 0 ? completed.Average(t => t.PromptTokens) : null,
            OutputTokensMean = completed.Count > 0 ? completed.Average(t => t.OutputTokens) : null,
            PromptTokensSent = completed.Sum(t => t.PromptTokens),
            PromptTokensNew = completed.Sum(t => t.NewPromptTokens) + completed.Select(t => t.SharedPrefixTokens).DefaultIfEmpty().Max(),
            PromptTokensComputed = completed.Count > 0 && completed.All(t => t.CachedPromptTokens is not null) ? completed.Sum(t => t.PromptTokens - t.CachedPromptTokens!.Value) : null,
            TtftP50Ms = Quantile(ttftSorted, 50),
            TtftP50MsByTurn = turns == 1 ? null : [.. Enumerable.Range(1, turns).Select(turn => Quantile(Sorted(ttft.Where(t => t.Turn == turn).Select(t => t.Ms)), 50))],
            TtftP99Ms = Quantile(ttftSorted, 99),
            TbtP50Ms = Quantile(tbt, 50),
            TbtP99Ms = Quantile(tbt, 99),
            TbtMaxMs = Quantile(tbt, 100),
            E2eP50Ms = Quantile(e2e, 50),
            E2eP99Ms = Quantile(e2e, 99),
            SchedulingDelayP50Ms = Quantile(delay, 50),
            SchedulingDelayP99Ms = Quantile(delay, 99),
            SchedulingDelaySource = measured ? "engine" : "ttft-minus-idle",
            TbtQuantilesMs = tbt.Length == 0 ? [] : [.. Enumerable.Range(0, QuantileSteps + 1).Select(k => Quantile(tbt, 100.0 * k / QuantileSteps)!.Value)],
            IdleTtft = idle,
            Errors = [.. run.Timings.Where(t => t.Error is not null).Select(t => t.Error!).Distinct().Take(5)],
        };
    }

    /// <summary>The nearest-rank percentile <paramref name="p"/> (0 to 100); null for no samples.</summary>
    public static double? Percentile(IEnumerable<double> values, double p) => Quantile(Sorted(values), p);

    /// <summary>The idle TTFT of a prompt length: linear between the measured points, the nearest point's beyond them, 0 without points.</summary>
    public static double IdleTtftMs(IReadOnlyList<IdlePoint> points, long promptTokens)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count == 0)
        {
            return 0;
        }

        IdlePoint[] sorted = [.. points.OrderBy(p => p.PromptTokens)];
        if (promptTokens <= sorted[0].PromptTokens)
        {
            return sorted[0].TtftMs;
        }

        for (int i = 1; i < sorted.Length; i++)
        {
            IdlePoint a = sorted[i - 1], b = sorted[i];
            if (promptTokens <= b.PromptTokens)
            {
                return a.TtftMs + ((b.TtftMs - a.TtftMs) * (promptTokens - a.PromptTokens) / (b.PromptTokens - a.PromptTokens));
            }
        }

        return sorted[^1].TtftMs;
    }

    /// <summary>Formats a figure for a table: fixed decimals, or '-' for none.</summary>
    public static string Format(double? value, int decimals = 1) =>
        value is { } v ? v.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) : "-";

    private static double[] Sorted(IEnumerable<double> values) => [.. values.Order()];

    private static double? Quantile(double[] sorted, double p)
    {
        if (sorted.Length == 0)
        {
            return null;
        }

        int rank = (int)Math.Ceiling(p * sorted.Length / 100);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
