using System.Globalization;
using Microsoft.Extensions.Options;

namespace LlmPq.Stages;

/// <summary>One stage server (<c>ggml-rpc-server</c>) on this machine: one device, listening on loopback.</summary>
internal sealed class LocalStageOptions
{
    /// <summary>Gets or sets the stage's name (its device's name in the cluster file and the plan).</summary>
    public string Name { get; set; } = string.Empty;

    /// <summary>Gets or sets the ggml device the server owns, such as <c>CPU</c> or <c>CUDA0</c>; empty: the server's default (every GPU, else the CPU).</summary>
    public string? Device { get; set; }

    /// <summary>Gets or sets the threads of a CPU device; 0: the server's default (half the cores).</summary>
    public int Threads { get; set; }

    /// <summary>Gets or sets the bytes the stage needs free on its device, checked each time its server starts; 0 checks nothing.</summary>
    public long MemoryBytes { get; set; }

    /// <summary>Gets or sets the port on 127.0.0.1; 0: a free one, kept across restarts while it stays free.</summary>
    public int Port { get; set; }

    /// <summary>Gets the arguments of <c>ggml-rpc-server</c> for this stage.</summary>
    /// <param name="device">The ggml device, or null or empty for the server's default.</param>
    /// <param name="threads">The CPU threads, or 0 for the server's default.</param>
    /// <param name="host">The address to listen on.</param>
    /// <param name="port">The port.</param>
    /// <returns>The arguments.</returns>
    public static IReadOnlyList<string> ServerArguments(string? device, int threads, string host, int port)
    {
        var arguments = new List<string> { "-H", host, "-p", port.ToString(CultureInfo.InvariantCulture) };
        if (!string.IsNullOrEmpty(device))
        {
            arguments.AddRange(["-d", device]);
        }

        if (threads > 0)
        {
            arguments.AddRange(["-t", threads.ToString(CultureInfo.InvariantCulture)]);
        }

        return arguments;
    }
}

/// <summary>The stage servers a <see cref="StageSupervisor"/> runs on this machine, and how it restarts them.</summary>
internal sealed class StageSupervisorOptions
{
    /// <summary>Gets the stages, in pipeline order.</summary>
    public IList<LocalStageOptions> Stages { get; } = [];

    /// <summary>Gets or sets how long a server may take from start to answering its first RPC hello.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Gets or sets the wait before the first restart of a stage; each fast failure after it doubles the wait.</summary>
    public TimeSpan RestartDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets or sets the longest wait between restarts.</summary>
    public TimeSpan MaxRestartDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how long a server must have run for its exit to count as a fresh failure rather than a fast one.</summary>
    public TimeSpan StableAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets after how many fast failures in a row a stage is reported unhealthy (restarts go on, at the longest wait).</summary>
    public int UnhealthyAfter { get; set; } = 3;
}

/// <summary>Checks <see cref="StageSupervisorOptions"/> before any server starts.</summary>
internal sealed class StageSupervisorOptionsValidator : IValidateOptions<StageSupervisorOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, StageSupervisorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.Stages.Count == 0)
        {
            failures.Add("Stages is empty: give at least one local stage.");
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var ports = new HashSet<int>();
        for (int i = 0; i < options.Stages.Count; i++)
        {
            LocalStageOptions stage = options.Stages[i];
            string where = string.Create(CultureInfo.InvariantCulture, $"Stages[{i}]");
            if (string.IsNullOrWhiteSpace(stage.Name))
            {
                failures.Add($"{where}:Name is required (the stage's device name).");
            }
            else if (!names.Add(stage.Name))
            {
                failures.Add($"{where}:Name '{stage.Name}' is used twice; stage names are unique.");
            }

            if (stage.Threads < 0)
            {
                failures.Add($"{where}:Threads must be 0 (the server's default) or more.");
            }

            if (stage.MemoryBytes < 0)
            {
                failures.Add($"{where}:MemoryBytes must be 0 (no check) or more.");
            }

            if (stage.Port is < 0 or > 65535)
            {
                failures.Add($"{where}:Port must be 0 (a free one) or a port up to 65535.");
            }
            else if (stage.Port != 0 && !ports.Add(stage.Port))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{where}:Port {stage.Port} is used twice."));
            }
        }

        Positive(options.StartTimeout, nameof(options.StartTimeout));
        Positive(options.RestartDelay, nameof(options.RestartDelay));
        if (options.MaxRestartDelay < options.RestartDelay)
        {
            failures.Add("MaxRestartDelay must be at least RestartDelay.");
        }

        Positive(options.StableAfter, nameof(options.StableAfter));
        if (options.UnhealthyAfter < 1)
        {
            failures.Add("UnhealthyAfter must be at least 1.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Positive(TimeSpan value, string option)
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"{option} must be positive.");
            }
        }
    }
}
