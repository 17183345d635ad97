using System.Diagnostics;

namespace LlmPq.Stages;

/// <summary>
/// The engine's iterations as a watchdog sees them: the one running now, its deadline (<see cref="IterationDeadline"/>),
/// and the recent ones it is derived from. The engine's loop thread calls <see cref="Begin"/> and <see cref="End"/>;
/// any thread reads <see cref="Report"/>, which is what a watchdog outside the (possibly blocked) loop thread needs.
/// </summary>
/// <param name="options">The deadline's floor, ceiling and multiplier.</param>
internal sealed class IterationWatch(StageWatchdogOptions options)
{
    /// <summary>How many recent iterations the deadline is derived from.</summary>
    public const int Window = 128;

    private readonly Lock _gate = new();
    private readonly Queue<IterationSample> _recent = new();
    private int _ended;
    private long _startedAt;
    private TimeSpan _deadline;
    private int _tokens;

    /// <summary>Gets whether the running iteration is past its deadline.</summary>
    public bool Overdue => Report().Overdue;

    /// <summary>Marks an iteration of <paramref name="tokens"/> tokens as started and fixes its deadline.</summary>
    public void Begin(int tokens)
    {
        lock (_gate)
        {
            _deadline = _ended < IterationDeadline.WarmUpIterations ? options.DeadlineCeiling : IterationDeadline.Compute([.. _recent], tokens, options);
            _tokens = tokens;
            _startedAt = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Marks the running iteration as ended; a completed one (not a failed decode) past warm-up is measured.</summary>
    /// <param name="completed">Whether it decoded and sampled.</param>
    /// <returns>Its time and deadline.</returns>
    public (TimeSpan Elapsed, TimeSpan Deadline) End(bool completed)
    {
        lock (_gate)
        {
            TimeSpan elapsed = Stopwatch.GetElapsedTime(_startedAt);
            if (completed && _ended++ >= IterationDeadline.WarmUpIterations)
            {
                if (_recent.Count == Window)
                {
                    _recent.Dequeue();
                }

                _recent.Enqueue(new IterationSample(elapsed, _tokens));
            }

            _startedAt = 0;
            return (elapsed, _deadline);
        }
    }

    /// <summary>Gets the running iteration's state, or an idle report between iterations.</summary>
    public IterationReport Report()
    {
        lock (_gate)
        {
            return _startedAt == 0
                ? new IterationReport(null, _deadline.TotalSeconds, 0)
                : new IterationReport(Stopwatch.GetElapsedTime(_startedAt).TotalSeconds, _deadline.TotalSeconds, _tokens);
        }
    }
}

/// <summary>One measured iteration.</summary>
/// <param name="Elapsed">Its decode and sampling time.</param>
/// <param name="Tokens">The tokens it computed.</param>
internal readonly record struct IterationSample(TimeSpan Elapsed, int Tokens);

/// <summary>What a watchdog learns of the engine's iterations (it crosses the runner protocol as JSON).</summary>
/// <param name="RunningSeconds">How long the running iteration has run; null between iterations.</param>
/// <param name="DeadlineSeconds">The running (or last) iteration's deadline.</param>
/// <param name="Tokens">The running iteration's tokens.</param>
internal sealed record IterationReport(double? RunningSeconds, double DeadlineSeconds, int Tokens)
{
    /// <summary>Gets whether the running iteration is past its deadline.</summary>
    public bool Overdue => RunningSeconds > DeadlineSeconds;
}

/// <summary>The watchdog's deadline rule (see <see cref="StageWatchdogOptions"/>): a pure function of the recent iterations.</summary>
internal static class IterationDeadline
{
    /// <summary>The iterations after the model loads that are not measured and run under the ceiling.</summary>
    public const int WarmUpIterations = 4;

    /// <summary>Computes the deadline of an iteration of <paramref name="tokens"/> tokens.</summary>
    /// <param name="recent">The recent measured iterations; none (still warming up) gives the ceiling.</param>
    /// <param name="tokens">The iteration's tokens.</param>
    /// <param name="options">The floor, ceiling and multiplier.</param>
    /// <returns>Multiplier × p99 of the recent times × max(1, tokens / p99 of their tokens), within [floor, ceiling].</returns>
    public static TimeSpan Compute(IReadOnlyList<IterationSample> recent, int tokens, StageWatchdogOptions options)
    {
        if (recent.Count == 0)
        {
            return options.DeadlineCeiling;
        }

        double p99 = Percentile([.. recent.Select(s => s.Elapsed.TotalSeconds)], 0.99);
        // Scaled by the p99 of the tokens too: a decode of a few tokens costs nearly as much as one of many (the weights
        // are read either way), so only an iteration larger than the large ones seen gets more time.
        double largeTokens = Math.Max(1, Percentile([.. recent.Select(s => (double)s.Tokens)], 0.99));
        double seconds = options.DeadlineMultiplier * p99 * Math.Max(1, tokens / largeTokens);
        return TimeSpan.FromSeconds(Math.Clamp(seconds, options.DeadlineFloor.TotalSeconds, options.DeadlineCeiling.TotalSeconds));
    }

    /// <summary>The nearest-rank percentile of <paramref name="values"/> (sorted in place).</summary>
    private static double Percentile(double[] values, double p)
    {
        Array.Sort(values);
        return values[Math.Clamp((int)Math.Ceiling(p * values.Length) - 1, 0, values.Length - 1)];
    }
}
