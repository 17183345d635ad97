namespace LlmPq.Scheduling;

/// <summary>
/// How uneven recent iterations are, the measurable proxy for pipeline bubbles: a stage idles when the micro-batch
/// behind the one it finished is shorter or longer. Per iteration kind it keeps the spread (coefficient of variation)
/// of iteration times, and over consecutive iterations of any kind the imbalance |t₁ − t₀| / max(t₀, t₁), which also
/// catches a prefill iteration followed by a decode one. Both are moving averages over about the last 20 iterations.
/// Written by the engine's loop thread, read by metric collection on any thread.
/// </summary>
internal sealed class IterationSpread
{
    private const double Smoothing = 0.05;

    private readonly Lock _gate = new();
    private readonly Moments?[] _kinds = new Moments?[Enum.GetValues<IterationKind>().Length];
    private double _last;
    private double? _imbalance;

    /// <summary>Records one iteration's time.</summary>
    public void Record(IterationKind kind, TimeSpan elapsed)
    {
        double t = elapsed.TotalSeconds;
        lock (_gate)
        {
            _kinds[(int)kind] = _kinds[(int)kind] is { } m
                ? new Moments(Average(m.Mean, t), Average(m.Square, t * t))
                : new Moments(t, t * t);
            double longer = Math.Max(t, _last);
            if (_last > 0 && longer > 0)
            {
                double step = Math.Abs(t - _last) / longer;
                _imbalance = _imbalance is { } average ? Average(average, step) : step;
            }

            _last = t;
        }
    }

    /// <summary>Gets the spread of one kind's iteration times (standard deviation over mean), or null before any.</summary>
    public double? Spread(IterationKind kind)
    {
        lock (_gate)
        {
            return _kinds[(int)kind] is { Mean: > 0 } m ? Math.Sqrt(Math.Max(0, m.Square - (m.Mean * m.Mean))) / m.Mean : null;
        }
    }

    /// <summary>Gets the average imbalance of consecutive iterations (0 when all take the same time), or null before two.</summary>
    public double? Imbalance
    {
        get
        {
            lock (_gate)
            {
                return _imbalance;
            }
        }
    }

    private static double Average(double average, double value) => average + (Smoothing * (value - average));

    private readonly record struct Moments(double Mean, double Square);
}
