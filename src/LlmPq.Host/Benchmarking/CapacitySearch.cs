namespace LlmPq.Host.Benchmarking;

/// <summary>One rate tried by a capacity search and what the run at it showed (with the first error, if requests failed).</summary>
internal sealed record CapacityProbe(double Qps, bool Passed, double? TbtP99Ms, double? SchedulingDelayP50Ms, int Completed, int Failed, int Cancelled, string? Error = null);

/// <summary>
/// The result of a capacity search: the highest rate that met the SLOs (null when none did), whether the search
/// narrowed it to its precision (false when it ran out of probes or was stopped), and every probe.
/// </summary>
internal sealed record CapacityResult(double? Qps, double TbtSloMs, double SchedulingDelaySloMs, bool Complete, IReadOnlyList<CapacityProbe> Probes);

/// <summary>The bracket a search ended with: the highest passing and lowest failing rates it tried.</summary>
internal sealed record CapacityBounds(double? HighestPassing, double? LowestFailing, int Probes, bool Complete);

/// <summary>
/// Sarathi-Serve's capacity: the highest arrival rate a system sustains within its SLOs (P99 TBT under a limit and
/// median scheduling delay under 2 s), found by bracketing (doubling or halving from a start rate) and then bisecting
/// until the bracket is narrower than a fraction of its upper end.
/// </summary>
internal static class CapacitySearch
{
    /// <summary>How far below the start rate a search halves before it gives up (the system then sustains no rate tried).</summary>
    private const double Floor = 1.0 / 1024;

    /// <summary>Whether a run meets the SLOs: nothing failed, something completed, P99 TBT and median scheduling delay within their limits.</summary>
    public static bool Meets(LoadResult result, double tbtSloMs, double schedulingDelaySloMs)
    {
        ArgumentNullException.ThrowIfNull(result);
        return result.Failed == 0
            && result.Completed > 0
            && (result.TbtP99Ms ?? 0) <= tbtSloMs
            && result.SchedulingDelayP50Ms is { } delay && delay <= schedulingDelaySloMs;
    }

    /// <summary>
    /// Searches with <paramref name="probe"/>, which runs the system at a rate and says whether it met the SLOs
    /// (null: the run was stopped; the search then ends, incomplete).
    /// </summary>
    /// <param name="startQps">The first rate tried.</param>
    /// <param name="precision">The search ends when (lowest failing - highest passing) is at most this fraction of the lowest failing.</param>
    /// <param name="maxProbes">The most rates tried.</param>
    /// <param name="probe">Runs the system at a rate.</param>
    /// <param name="cancellationToken">Stops the search between probes.</param>
    public static async Task<CapacityBounds> FindAsync(double startQps, double precision, int maxProbes, Func<double, CancellationToken, Task<bool?>> probe, CancellationToken cancellationToken)
    {
        if (!(startQps > 0) || !double.IsFinite(startQps))
        {
            throw new ArgumentOutOfRangeException(nameof(startQps), startQps, "The start rate must be positive.");
        }

        if (!(precision > 0 && precision < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(precision), precision, "The precision must be between 0 and 1.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxProbes);
        ArgumentNullException.ThrowIfNull(probe);
        double? pass = null, fail = null;
        double qps = startQps;
        int probes = 0;
        while (probes < maxProbes && !cancellationToken.IsCancellationRequested)
        {
            probes++;
            bool? passed = await probe(qps, cancellationToken).ConfigureAwait(false);
            if (passed is null)
            {
                return new CapacityBounds(pass, fail, probes, Complete: false);
            }

            if (passed.Value)
            {
                pass = qps;
            }
            else
            {
                fail = qps;
            }

            if (pass is { } p && fail is { } f && f - p <= precision * f)
            {
                return new CapacityBounds(pass, fail, probes, Complete: true);
            }

            if (pass is null && fail <= startQps * Floor)
            {
                return new CapacityBounds(null, fail, probes, Complete: true);
            }

            qps = (pass, fail) switch
            {
                (null, { } f2) => f2 / 2,
                ({ } p2, null) => p2 * 2,
                ({ } p3, { } f3) => (p3 + f3) / 2,
                _ => throw new InvalidOperationException("A probe neither passed nor failed."),
            };
        }

        return new CapacityBounds(pass, fail, probes, Complete: false);
    }
}
