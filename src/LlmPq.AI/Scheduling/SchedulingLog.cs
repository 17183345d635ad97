using Microsoft.Extensions.Logging;

namespace LlmPq.Scheduling;

/// <summary>What the engine logs about scheduling, on the engine's logger (event ids 30 and up, clear of the engine's 1 to 14).</summary>
internal static partial class SchedulingLog
{
    /// <summary>Logs the policy and how the budget is set.</summary>
    public static void Started(ILogger logger, SchedulingPolicy policy, int tokenBudget, TimeSpan? tbtTarget)
    {
        if (tbtTarget is { } target)
        {
            TargetBudget(logger, policy, tokenBudget, target.TotalMilliseconds);
        }
        else
        {
            FixedBudget(logger, policy, tokenBudget);
        }
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Scheduling policy {Policy}, fixed token budget {TokenBudget}")]
    private static partial void FixedBudget(ILogger logger, SchedulingPolicy policy, int tokenBudget);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "Scheduling policy {Policy}, token budget up to {MaxBudget} chosen from a TBT target of {TargetMs:F1} ms")]
    private static partial void TargetBudget(ILogger logger, SchedulingPolicy policy, int maxBudget, double targetMs);

    [LoggerMessage(EventId = 32, Level = LogLevel.Debug, Message = "Token budget {OldBudget} -> {NewBudget}: predicted iteration {PredictedMs:F1} ms with {Decodes} decodes, TBT target {TargetMs:F1} ms")]
    public static partial void BudgetChanged(ILogger logger, int oldBudget, int newBudget, double predictedMs, int decodes, double targetMs);
}
