using System.CommandLine;
using LlmPq.Scheduling;
using LlmPq.Stages;

namespace LlmPq.Host.Commands;

/// <summary>
/// The engine's options on the command line, declared once for every command that runs the engine (<c>serve</c>,
/// <c>bench</c>). Each default is <see cref="LlmPqOptions"/>' own, so the command line, the library and every command
/// agree; a quick bench passes a smaller <c>--ctx</c> explicitly.
/// </summary>
internal sealed class EngineCommandOptions
{
    private static readonly LlmPqOptions s_defaults = new();

    /// <summary>Initializes the options of one command.</summary>
    /// <param name="severalPolicies">Whether the command runs under several policies in turn (bench compares them); otherwise <c>--policy</c> takes one.</param>
    public EngineCommandOptions(bool severalPolicies)
    {
        Policy.Validators.Add(result =>
        {
            string[] values = result.GetValueOrDefault<string[]>() ?? [];
            try
            {
                if (Cli.ParsePolicies(values).Count > 1 && !severalPolicies)
                {
                    result.AddError("--policy takes one policy here.");
                }
            }
            catch (ArgumentException ex)
            {
                result.AddError(ex.Message);
            }
        });
        foreach (Option<double> seconds in new[] { StageDeadlineFloor, StageDeadlineCeiling })
        {
            seconds.Validators.Add(result =>
            {
                double value = result.GetValueOrDefault<double>();
                if (!double.IsFinite(value) || value <= 0 || value > TimeSpan.MaxValue.TotalSeconds / 2)
                {
                    result.AddError($"{result.Option.Name} must be a positive number of seconds; it is {value}.");
                }
            });
        }
    }

    /// <summary>Gets <c>--ctx</c>: <see cref="LlmPqOptions.ContextLength"/>.</summary>
    public Option<int> ContextLength { get; } = new("--ctx")
    {
        Description = "Tokens per conversation, prompt and output (bench's llama-server: -c is this times --parallel). The default, LlmPqOptions', holds a long chat (10 turns of 128-token messages and 64-token answers need about 2,000).",
        DefaultValueFactory = _ => s_defaults.ContextLength,
    };

    /// <summary>Gets <c>--parallel</c>: <see cref="LlmPqOptions.MaxSequences"/>.</summary>
    public Option<int> MaxSequences { get; } = new("--parallel")
    {
        Description = "Conversations decoded together (bench's llama-server: -np); more wait in the queue. The default, LlmPqOptions', batches decodes without a large KV cache.",
        DefaultValueFactory = _ => s_defaults.MaxSequences,
    };

    /// <summary>Gets <c>--token-budget</c>: <see cref="LlmPqOptions.TokenBudget"/>.</summary>
    public Option<int> TokenBudget { get; } = new("--token-budget")
    {
        Description = "Tokens per iteration, decodes first, then prompt chunks (bench's llama-server: -b/-ub). The default, LlmPqOptions', is a small chunk that keeps time between tokens low on a CPU.",
        DefaultValueFactory = _ => s_defaults.TokenBudget,
    };

    /// <summary>Gets <c>--threads</c>: <see cref="LlmPqOptions.Threads"/>.</summary>
    public Option<int> Threads { get; } = new("--threads", "-t")
    {
        Description = "CPU threads (0: every core).",
        DefaultValueFactory = _ => s_defaults.Threads,
    };

    /// <summary>Gets <c>--policy</c>: <see cref="LlmPqOptions.SchedulingPolicy"/>.</summary>
    public Option<string[]> Policy { get; } = new("--policy")
    {
        Description = $"Scheduling policy: {string.Join(", ", Enum.GetValues<SchedulingPolicy>().Select(Cli.PolicyName))}; bench compares several (repeat, separate with commas, or all). The default, LlmPqOptions', is Sarathi-Serve's stall-free batching.",
        DefaultValueFactory = _ => [Cli.PolicyName(s_defaults.SchedulingPolicy)],
    };

    /// <summary>Gets <c>--tbt-target-ms</c>: <see cref="LlmPqOptions.TbtTarget"/>.</summary>
    public Option<double?> TbtTargetMs { get; } = new("--tbt-target-ms")
    {
        Description = "Choose the token budget per iteration to keep time between tokens under this target (--token-budget is then the largest); none by default: a fixed budget.",
    };

    /// <summary>Gets <c>--no-prefix-reuse</c>: <see cref="LlmPqOptions.PrefixReuse"/> off.</summary>
    public Option<bool> NoPrefixReuse { get; } = new("--no-prefix-reuse")
    {
        Description = "Compute every prompt whole: no reuse of the KV cells an earlier request with the same prefix left (on by default; a request opts out with \"cache_prompt\": false).",
    };

    /// <summary>Gets <c>--kv-cache-tokens</c>: <see cref="LlmPqOptions.KvCacheTokens"/>.</summary>
    public Option<int> KvCacheTokens { get; } = new("--kv-cache-tokens")
    {
        Description = "One KV cache of this many tokens shared by all sequences (lets a request share a running one's prefix; not batch-invariant); 0, the default, gives each sequence its own --ctx.",
        DefaultValueFactory = _ => new LlmPqOptions().KvCacheTokens,
    };

    /// <summary>Gets <c>--stage-deadline-floor-s</c>: <see cref="StageWatchdogOptions.DeadlineFloor"/>.</summary>
    public Option<double> StageDeadlineFloor { get; } = new("--stage-deadline-floor-s")
    {
        Description = "The watchdog's shortest iteration deadline in seconds: an iteration past 4 x the recent p99 (scaled by its tokens), at least this and at most the ceiling, means a frozen stage; its requests fail with 503 and the stage and runner are replaced.",
        DefaultValueFactory = _ => s_defaults.Watchdog.DeadlineFloor.TotalSeconds,
    };

    /// <summary>Gets <c>--stage-deadline-ceiling-s</c>: <see cref="StageWatchdogOptions.DeadlineCeiling"/>.</summary>
    public Option<double> StageDeadlineCeiling { get; } = new("--stage-deadline-ceiling-s")
    {
        Description = "The watchdog's longest iteration deadline in seconds, also the deadline of the first iterations after the model loads (warm-up).",
        DefaultValueFactory = _ => s_defaults.Watchdog.DeadlineCeiling.TotalSeconds,
    };

    /// <summary>Gets the options, in the order help lists them.</summary>
    public IEnumerable<Option> All => [ContextLength, MaxSequences, TokenBudget, Threads, Policy, TbtTargetMs, NoPrefixReuse, KvCacheTokens, StageDeadlineFloor, StageDeadlineCeiling];

    /// <summary>Reads the engine settings the command line gives.</summary>
    public EngineSettings Read(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return new EngineSettings(
            parse.GetValue(ContextLength),
            parse.GetValue(MaxSequences),
            parse.GetValue(TokenBudget),
            parse.GetValue(Threads),
            Cli.ParsePolicies(parse.GetValue(Policy)!),
            parse.GetValue(TbtTargetMs) is double ms ? TimeSpan.FromMilliseconds(ms) : null,
            !parse.GetValue(NoPrefixReuse),
            parse.GetValue(KvCacheTokens),
            TimeSpan.FromSeconds(parse.GetValue(StageDeadlineFloor)),
            TimeSpan.FromSeconds(parse.GetValue(StageDeadlineCeiling)));
    }
}

/// <summary>The engine settings read from a command line.</summary>
/// <param name="ContextLength">Tokens per conversation.</param>
/// <param name="MaxSequences">Conversations decoded together.</param>
/// <param name="TokenBudget">Tokens per iteration.</param>
/// <param name="Threads">CPU threads; 0: every core.</param>
/// <param name="Policies">The scheduling policies, at least one; a command that runs one engine takes the first.</param>
/// <param name="TbtTarget">The time-between-tokens target; null: a fixed budget.</param>
/// <param name="PrefixReuse">Whether a prompt reuses the cells of an earlier one with the same prefix.</param>
/// <param name="KvCacheTokens">The shared KV cache's size; 0: a cache per sequence.</param>
/// <param name="StageDeadlineFloor">The watchdog's shortest iteration deadline.</param>
/// <param name="StageDeadlineCeiling">The watchdog's longest iteration deadline (and the warm-up's).</param>
internal sealed record EngineSettings(int ContextLength, int MaxSequences, int TokenBudget, int Threads, IReadOnlyList<SchedulingPolicy> Policies, TimeSpan? TbtTarget, bool PrefixReuse, int KvCacheTokens, TimeSpan StageDeadlineFloor, TimeSpan StageDeadlineCeiling)
{
    /// <summary>Sets these settings on <paramref name="options"/>, with the first policy.</summary>
    public void Fill(LlmPqOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ContextLength = ContextLength;
        options.MaxSequences = MaxSequences;
        options.TokenBudget = TokenBudget;
        options.Threads = Threads;
        options.SchedulingPolicy = Policies[0];
        options.TbtTarget = TbtTarget;
        options.PrefixReuse = PrefixReuse;
        options.KvCacheTokens = KvCacheTokens;
        options.Watchdog.DeadlineFloor = StageDeadlineFloor;
        options.Watchdog.DeadlineCeiling = StageDeadlineCeiling;
    }
}
