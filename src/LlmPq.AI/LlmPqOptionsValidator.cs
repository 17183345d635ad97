using System.Globalization;
using LlmPq.Stages;
using Microsoft.Extensions.Options;

namespace LlmPq;

/// <summary>Checks <see cref="LlmPqOptions"/> at start-up so a bad setting fails the host with a clear message, not the first request.</summary>
internal sealed class LlmPqOptionsValidator : IValidateOptions<LlmPqOptions>
{
    public ValidateOptionsResult Validate(string? name, LlmPqOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ModelPath))
        {
            failures.Add("LlmPq:ModelPath is required: set it to a GGUF model file (llmpq make-model writes a tiny one).");
        }
        else if (!File.Exists(options.ModelPath))
        {
            failures.Add($"LlmPq:ModelPath '{Path.GetFullPath(options.ModelPath)}' does not exist.");
        }

        Positive(options.ContextLength, nameof(options.ContextLength));
        Positive(options.MaxSequences, nameof(options.MaxSequences));
        Positive(options.TokenBudget, nameof(options.TokenBudget));
        Positive(options.DefaultMaxOutputTokens, nameof(options.DefaultMaxOutputTokens));
        Positive(options.MaxQueueLength, nameof(options.MaxQueueLength));
        if (options.MicroBatchSize < 0 || options.MicroBatchSize > options.TokenBudget)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"LlmPq:MicroBatchSize must be between 0 (the token budget) and TokenBudget ({options.TokenBudget}); it is {options.MicroBatchSize}."));
        }

        options.Watchdog.Validate("LlmPq:Watchdog:", failures);
        if (options.TbtTarget <= TimeSpan.Zero)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"LlmPq:TbtTarget must be positive (or unset for a fixed TokenBudget); it is {options.TbtTarget}."));
        }
        else if (options.TbtTarget is not null && options.TokenBudget < Scheduling.TokenBudgetController.Quantum)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"LlmPq:TokenBudget is the largest budget when TbtTarget is set, and must then be at least {Scheduling.TokenBudgetController.Quantum}; it is {options.TokenBudget}."));
        }

        if (!Enum.IsDefined(options.SchedulingPolicy))
        {
            failures.Add($"LlmPq:SchedulingPolicy '{options.SchedulingPolicy}' is not one of {string.Join(", ", Enum.GetNames<Scheduling.SchedulingPolicy>())}.");
        }

        failures.AddRange(LlmPqStageOptions.Problems(options.Stages));

        if (options.KvCacheTokens < 0)
        {
            failures.Add("LlmPq:KvCacheTokens must be 0 (ContextLength for every sequence) or more.");
        }

        if (options.Threads < 0)
        {
            failures.Add("LlmPq:Threads must be 0 (every core; one with every layer on stage servers) or more.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Positive(int value, string option)
        {
            if (value <= 0)
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"LlmPq:{option} must be positive; it is {value}."));
            }
        }
    }
}
