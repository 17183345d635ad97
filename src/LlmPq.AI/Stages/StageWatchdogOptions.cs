namespace LlmPq.Stages;

/// <summary>
/// The watchdog of a pipeline's iterations: an iteration that runs past its deadline means a stage is frozen (a
/// stopped or swapped-out process, a hung driver, a network partition). Its requests then fail as unavailable, the
/// pipeline reports itself unhealthy, and the stages that no longer answer are replaced with the engine's runner.
/// </summary>
/// <remarks>
/// The deadline of an iteration of <c>n</c> tokens is <see cref="DeadlineMultiplier"/> × the 99th percentile of the
/// recent iterations' times × <c>max(1, n / the 99th percentile of their token counts)</c>, clamped to
/// [<see cref="DeadlineFloor"/>, <see cref="DeadlineCeiling"/>]. The first iterations after the model loads (warm-up:
/// graph allocation, the first prefill) are not measured and run under the ceiling.
/// </remarks>
public sealed class StageWatchdogOptions
{
    /// <summary>Gets or sets the shortest deadline of an iteration (5 s by default); also how long a stage may take to answer a probe once one is overdue.</summary>
    public TimeSpan DeadlineFloor { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Gets or sets the longest deadline of an iteration, and the deadline while warming up (120 s by default).</summary>
    public TimeSpan DeadlineCeiling { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Gets or sets how many times the 99th percentile of recent iteration times an iteration may take (4 by default).</summary>
    public double DeadlineMultiplier { get; set; } = 4;

    /// <summary>Adds what is wrong with these options to <paramref name="failures"/>, each naming the setting and what to do.</summary>
    /// <param name="prefix">The settings' path, for the messages (for example <c>LlmPq:Watchdog:</c>).</param>
    /// <param name="failures">Where the messages go.</param>
    internal void Validate(string prefix, List<string> failures)
    {
        if (DeadlineFloor <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}DeadlineFloor must be positive; it is {DeadlineFloor}.");
        }

        if (DeadlineCeiling < DeadlineFloor)
        {
            failures.Add($"{prefix}DeadlineCeiling ({DeadlineCeiling}) must be at least DeadlineFloor ({DeadlineFloor}).");
        }

        if (!double.IsFinite(DeadlineMultiplier) || DeadlineMultiplier < 1)
        {
            failures.Add($"{prefix}DeadlineMultiplier must be a number of at least 1 (an iteration may take that many times its usual time); it is {DeadlineMultiplier}.");
        }
    }
}
