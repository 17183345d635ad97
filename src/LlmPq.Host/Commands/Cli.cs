using System.CommandLine;
using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Scheduling;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary>What every command shares: the way errors reach the user, and logging.</summary>
internal static class Cli
{
    /// <summary>Gets the option that makes llama.cpp and LlmPq log at debug level to standard error.</summary>
    public static Option<bool> Verbose { get; } = new("--verbose", "-v") { Description = "Log details (llama.cpp's included) to standard error.", Recursive = true };

    /// <summary>
    /// Runs a command body. Errors a user can act on (a bad file, a bad argument, a refused model) become one line on
    /// standard error and exit code 1; Ctrl+C exits with 130. Anything else is a bug and keeps its stack trace.
    /// </summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("llmpq: cancelled").ConfigureAwait(false);
            return 130;
        }
        catch (Exception ex) when (ex is GgufFormatException or FileNotFoundException or DirectoryNotFoundException or LlamaException
                                       or ArgumentException or InvalidDataException or DllNotFoundException or UnauthorizedAccessException
                                       or IOException or Microsoft.Extensions.Options.OptionsValidationException or LlmPq.Planning.Optimizer.PlanningException)
        {
            await Console.Error.WriteLineAsync($"llmpq: error: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>
    /// Gets how to invoke a parsed command line: System.CommandLine's two seconds between a termination signal and a
    /// forced exit, except for <c>serve</c>, which needs its drain (<see cref="ServeCommand.TerminationTimeout"/>).
    /// </summary>
    public static InvocationConfiguration Invocation(ParseResult parse) =>
        new() { ProcessTerminationTimeout = ServeCommand.TerminationTimeout(parse) ?? new InvocationConfiguration().ProcessTerminationTimeout };

    /// <summary>Gets this program's own assembly, which a pipeline starts again as its runner (<c>llmpq runner</c>).</summary>
    public static string RunnerPath => typeof(Cli).Assembly.Location;

    /// <summary>Gets the shape of the default generated model of <c>demo</c> and <c>bench</c>: 8 layers, 256 wide.</summary>
    public static TinyLlamaModelOptions DefaultModelShape { get; } = new() { Layers = 8, EmbeddingLength = 256 };

    /// <summary>Gets the default generated model, written into the temporary folder the first time (the same arguments give the same bytes).</summary>
    public static string DefaultModel()
    {
        string path = Path.Combine(Path.GetTempPath(), "llmpq", "tiny-8x256.gguf");
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            TinyLlamaModel.Write(path, DefaultModelShape);
        }

        return path;
    }

    /// <summary>
    /// Gets a progress line rewritten in place on standard error, or null when standard error is not a terminal, so
    /// logs and CI output get no carriage-return noise. Reports arrive in order, on the reporting thread.
    /// </summary>
    public static IProgress<T>? StatusLine<T>(Func<T, string> format) =>
        Console.IsErrorRedirected ? null : new SynchronousProgress<T>(value => Console.Error.Write("\r" + format(value)));

    /// <summary>Ends the line <see cref="StatusLine"/> wrote on, if any.</summary>
    public static void EndStatusLine()
    {
        if (!Console.IsErrorRedirected)
        {
            Console.Error.WriteLine();
        }
    }

    /// <summary>Creates the logger factory of a command: warnings by default, everything with <c>--verbose</c>, all to standard error.</summary>
    public static ILoggerFactory CreateLoggerFactory(ParseResult parse) =>
        LoggerFactory.Create(b => b
            .SetMinimumLevel(parse.GetValue(Verbose) ? LogLevel.Trace : LogLevel.Warning)
            .AddSimpleConsole(o => o.SingleLine = true)
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));

    /// <summary>Reads scheduling policies from the command line (names or <c>all</c>, repeated or comma-separated).</summary>
    public static List<SchedulingPolicy> ParsePolicies(string[] values)
    {
        var policies = new List<SchedulingPolicy>();
        foreach (string v in values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            policies.AddRange(
                v.Equals("all", StringComparison.OrdinalIgnoreCase) ? Enum.GetValues<SchedulingPolicy>()
                : Enum.GetValues<SchedulingPolicy>().Where(p => v.Equals(PolicyName(p), StringComparison.OrdinalIgnoreCase) || v.Equals(p.ToString(), StringComparison.OrdinalIgnoreCase)) is var match && match.Any() ? match
                : throw new ArgumentException($"--policy '{v}' is none of {string.Join(", ", Enum.GetValues<SchedulingPolicy>().Select(PolicyName))}, all."));
        }

        return policies.Count > 0 ? [.. policies.Distinct()] : [SchedulingPolicy.Sarathi];
    }

    /// <summary>The policy's name on the command line: PrefillFirst is prefill-first.</summary>
    public static string PolicyName(SchedulingPolicy policy) =>
        string.Concat(policy.ToString().Select((ch, i) => char.IsUpper(ch) && i > 0 ? "-" + char.ToLowerInvariant(ch) : char.ToLowerInvariant(ch).ToString()));
}
