using System.Globalization;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Benchmarking;

/// <summary>How each target is measured: warm-up, time limit, and the capacity search.</summary>
/// <param name="Warmup">Short requests sent before the target is measured.</param>
/// <param name="TimeLimit">The longest a run or a capacity probe may take; null: no limit.</param>
/// <param name="Capacity">Whether to search the capacity instead of running once.</param>
/// <param name="TbtSloMs">The P99 time-between-tokens limit of the search.</param>
/// <param name="DelaySloMs">The median scheduling delay limit of the search.</param>
/// <param name="Precision">The search stops when its bracket is narrower than this fraction of the rate.</param>
/// <param name="Probes">The most rates the search tries.</param>
/// <param name="Seed">The seed of the arrivals.</param>
/// <param name="StartQps">The first rate the search tries; null: the completion rate of one all-at-once run.</param>
internal sealed record MeasureSettings(int Warmup, TimeSpan? TimeLimit, bool Capacity, double TbtSloMs, double DelaySloMs, double Precision, int Probes, int Seed, double? StartQps);

/// <summary>
/// Measures one target: warm-up, its idle TTFT, then one run of the workload or a search of its capacity. Every
/// request of each of these gets texts of its own (<see cref="PromptSource"/>), so a target with a prompt cache computes
/// every prompt of a probe, as a target without one does, except what the workload repeats on purpose.
/// </summary>
internal static class TargetMeasurement
{
    /// <summary>Warms a target up, measures its idle TTFT, then runs the workload once or searches its capacity.</summary>
    public static async Task<LoadResult> MeasureAsync(IChatClient client, string target, string? policy, PromptSource prompts, double? offered, MeasureSettings run, CancellationToken ct)
    {
        string label = policy is null ? target : $"{target} ({policy})";
        for (int i = 0; i < run.Warmup; i++)
        {
            BenchPrompt warmup = prompts.Alone(prompts.Workload[i % prompts.Workload.Count]);
            await client.GetResponseAsync(warmup.Text, new ChatOptions { Temperature = 0, MaxOutputTokens = 4 }, ct).ConfigureAwait(false);
        }

        IReadOnlyList<IdlePoint> idle = await MeasureIdleAsync(client, prompts, ct).ConfigureAwait(false);
        using var engineDelays = new EngineSchedulingDelays();
        engineDelays.Drain();
        LoadResult Summarize(LoadRun r, double? qps) => LoadResult.From(r, idle, engineDelays.Drain()) with { Target = target, Policy = policy, Qps = qps };

        if (!run.Capacity)
        {
            return Summarize(await RunOnceAsync(client, label, prompts.Next(), run.TimeLimit, ct).ConfigureAwait(false), offered);
        }

        // Without a start rate, start near the top: the rate the target completes requests at when all arrive at once.
        double start = run.StartQps
            ?? (LoadResult.From(await RunOnceAsync(client, $"{label} all at once, for the start rate", Paced(prompts.Next(), 0, run.Seed), run.TimeLimit, ct).ConfigureAwait(false)).RequestsPerSecond is > 0 and var burst ? burst : 1);
        var tried = new List<CapacityProbe>();
        LoadResult? best = null, last = null;
        CapacityBounds bounds = await CapacitySearch.FindAsync(start, run.Precision, run.Probes, async (rate, token) =>
        {
            LoadRun probe = await RunOnceAsync(client, string.Create(CultureInfo.InvariantCulture, $"{label} probe {tried.Count + 1} at {rate:G3} req/s"), Paced(prompts.Next(), rate, run.Seed), run.TimeLimit, token).ConfigureAwait(false);
            if (token.IsCancellationRequested)
            {
                return null;
            }

            LoadResult result = Summarize(probe, rate);
            bool passed = CapacitySearch.Meets(result, run.TbtSloMs, run.DelaySloMs);
            tried.Add(new CapacityProbe(rate, passed, result.TbtP99Ms, result.SchedulingDelayP50Ms, result.Completed, result.Failed, result.Cancelled + result.NotSent, result.Errors.Count > 0 ? result.Errors[0] : null));
            last = result;
            best = passed && (best?.Qps ?? 0) < rate ? result : best;
            return passed;
        }, ct).ConfigureAwait(false);

        LoadResult shown = best ?? last ?? new LoadResult { Target = target, Policy = policy, IdleTtft = idle };
        return shown with { Capacity = new CapacityResult(bounds.HighestPassing, run.TbtSloMs, run.DelaySloMs, bounds.Complete, tried) };
    }

    /// <summary>The prompts with Poisson arrivals at <paramref name="rate"/> (0: all at once).</summary>
    private static BenchPrompt[] Paced(BenchPrompt[] prompts, double rate, int seed) =>
        [.. prompts.Zip(BenchWorkload.WithArrivals([.. prompts.Select(p => p.Request)], rate, seed), (p, r) => p with { Request = r })];

    private static async Task<LoadRun> RunOnceAsync(IChatClient client, string label, BenchPrompt[] prompts, TimeSpan? timeLimit, CancellationToken ct)
    {
        var counters = new LoadCounters();
        using var progress = new ProgressLine(label, counters, prompts.Sum(p => p.Turns));
        return await LoadGenerator.RunAsync(client, prompts, new ChatOptions { Temperature = 0, Seed = 1 }, counters, timeLimit, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The TTFT of the workload's first-turn prompt lengths (all of them when three or fewer, else the shortest, median
    /// and longest) sent alone; the lower of two tries, each its own text, at the length the target counted.
    /// </summary>
    private static async Task<IReadOnlyList<IdlePoint>> MeasureIdleAsync(IChatClient client, PromptSource prompts, CancellationToken ct)
    {
        int[] lengths = [.. prompts.Workload.Select(r => r.PromptTokens).Distinct().Order()];
        int[] chosen = lengths.Length <= 3 ? lengths : [lengths[0], lengths[lengths.Length / 2], lengths[^1]];
        var points = new List<IdlePoint>();
        foreach (int length in chosen)
        {
            BenchRequest request = prompts.Workload.First(r => r.PromptTokens == length) with { Arrival = TimeSpan.Zero, OutputTokens = 2 };
            var tries = new List<RequestTiming>();
            for (int i = 0; i < 2; i++)
            {
                LoadRun r = await LoadGenerator.RunAsync(client, [prompts.Alone(request)], new ChatOptions { Temperature = 0, Seed = 1 }, null, null, ct).ConfigureAwait(false);
                tries.AddRange(r.Timings.Where(t => t.Outcome == RequestOutcome.Completed && t.TimeToFirstToken is not null));
            }

            ct.ThrowIfCancellationRequested();
            if (tries.Count > 0)
            {
                RequestTiming fastest = tries.MinBy(t => t.TimeToFirstToken!.Value)!;
                points.Add(new IdlePoint(fastest.PromptTokens, fastest.TimeToFirstToken!.Value.TotalMilliseconds));
            }
        }

        return points;
    }
}
