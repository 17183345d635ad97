using System.Diagnostics;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Benchmarking;

/// <summary>What one request saw: when it started, when each piece of text arrived, and how many tokens it got.</summary>
internal sealed record RequestTiming(TimeSpan Start, IReadOnlyList<TimeSpan> Pieces, long OutputTokens, string? Error)
{
    /// <summary>Gets the time to the first piece of text, when there was one.</summary>
    public TimeSpan? TimeToFirstToken => Pieces.Count > 0 ? Pieces[0] - Start : null;

    /// <summary>Gets the gaps between consecutive pieces (time between tokens).</summary>
    public IEnumerable<TimeSpan> Gaps => Pieces.Skip(1).Zip(Pieces, (b, a) => b - a);
}

/// <summary>The summary of a run against one target.</summary>
internal sealed record LoadResult(
    string Target,
    int Completed,
    int Failed,
    double WallSeconds,
    double ThroughputTokensPerSecond,
    double TtftP50Ms,
    double TtftP99Ms,
    double TbtP50Ms,
    double TbtP99Ms,
    double TbtMaxMs)
{
    public static LoadResult From(string target, IReadOnlyList<RequestTiming> timings, TimeSpan wall)
    {
        var ok = timings.Where(t => t.Error is null).ToList();
        double[] ttft = [.. ok.Where(t => t.TimeToFirstToken is not null).Select(t => t.TimeToFirstToken!.Value.TotalMilliseconds)];
        double[] tbt = [.. ok.SelectMany(t => t.Gaps).Select(g => g.TotalMilliseconds)];
        return new LoadResult(
            target,
            ok.Count,
            timings.Count - ok.Count,
            wall.TotalSeconds,
            ok.Sum(t => t.OutputTokens) / wall.TotalSeconds,
            Percentile(ttft, 50),
            Percentile(ttft, 99),
            Percentile(tbt, 50),
            Percentile(tbt, 99),
            tbt.Length > 0 ? tbt.Max() : 0);
    }

    /// <summary>The nearest-rank percentile; 0 for no samples.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0)
        {
            return 0;
        }

        double[] sorted = [.. values.Order()];
        int rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}

/// <summary>Sends requests to an <see cref="IChatClient"/> and records what each one saw.</summary>
internal static class LoadGenerator
{
    /// <summary>Sends every prompt at once (closed loop, <paramref name="prompts"/>.Count concurrent requests) and waits for all.</summary>
    public static async Task<(IReadOnlyList<RequestTiming> Timings, TimeSpan Wall)> RunConcurrentAsync(
        IChatClient client, IReadOnlyList<string> prompts, ChatOptions options, IProgress<int>? progress, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        int done = 0;
        RequestTiming[] timings = await Task.WhenAll(prompts.Select(async prompt =>
        {
            RequestTiming timing = await SendAsync(client, prompt, options, clock, cancellationToken).ConfigureAwait(false);
            progress?.Report(Interlocked.Increment(ref done));
            return timing;
        })).ConfigureAwait(false);
        return (timings, clock.Elapsed);
    }

    private static async Task<RequestTiming> SendAsync(IChatClient client, string prompt, ChatOptions options, Stopwatch clock, CancellationToken cancellationToken)
    {
        TimeSpan start = clock.Elapsed;
        var pieces = new List<TimeSpan>();
        long tokens = 0;
        try
        {
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, prompt)], options, cancellationToken).ConfigureAwait(false))
            {
                if (!string.IsNullOrEmpty(update.Text))
                {
                    pieces.Add(clock.Elapsed);
                }

                foreach (UsageContent usage in update.Contents.OfType<UsageContent>())
                {
                    tokens = usage.Details.OutputTokenCount ?? tokens;
                }
            }

            return new RequestTiming(start, pieces, tokens, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new RequestTiming(start, pieces, tokens, ex.Message);
        }
    }
}
