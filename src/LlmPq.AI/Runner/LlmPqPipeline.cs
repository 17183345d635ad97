using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Runner;

/// <summary>
/// A multi-stage pipeline with fault isolation: this machine's stage servers (started and restarted by a supervisor)
/// and the engine in a child runner process (<c>llmpq runner</c>), which loads the model across the stages and
/// answers chat requests over a local socket. ggml aborts the process that holds the model when a stage dies; here
/// that process is the runner, so the application lives on: requests in flight fail at once with
/// <see cref="LlmPqUnavailableException"/>, the stage and the runner are restarted, and later requests are served.
/// </summary>
/// <remarks>Use it through <see cref="LlmPqChatClient(LlmPqPipeline)"/>, or let <see cref="LlmPqChatClient.Create"/> make both.</remarks>
public sealed partial class LlmPqPipeline : IAsyncDisposable
{
    private static readonly TimeSpan s_runnerStartTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan s_endpointTimeout = TimeSpan.FromSeconds(10);

    private readonly LlmPqOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly StageSupervisor? _supervisor;
    private readonly string _directory;
    private readonly RunnerClient _client;
    private readonly Meter _meter;
    private readonly Counter<long> _runnerRestarts;
    private readonly Counter<long> _watchdogTrips;
    private readonly MetricRelay.Replay _metrics;
    private readonly CancellationTokenSource _stopping = new();
    // Replaced (by the watch loop only) when the runner is lost; readers take the current one.
    private volatile TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string _lostReason = "it has not started";
    private Task _watch = Task.CompletedTask;
    private int _started;
    private int _disposed;

    /// <summary>Initializes a new instance of the <see cref="LlmPqPipeline"/> class; nothing starts before <see cref="StartAsync"/>.</summary>
    /// <param name="options">The engine's options; <see cref="LlmPqOptions.Stages"/> are the pipeline's stages.</param>
    /// <param name="loggerFactory">Where the pipeline, its stage servers and its runner log.</param>
    /// <param name="meterFactory">Creates the <c>LlmPq</c> meter.</param>
    public LlmPqPipeline(LlmPqOptions options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Stages.Count == 0)
        {
            throw new ArgumentException("A pipeline needs stages: set LlmPqOptions.Stages (a plan gives them).", nameof(options));
        }

        _options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<LlmPqPipeline>();
        // Short: a Unix socket path holds at most 107 bytes.
        _directory = Path.Combine(Path.GetTempPath(), string.Create(CultureInfo.InvariantCulture, $"llmpq-{Environment.ProcessId}-{Guid.NewGuid():N}")[..24]);
        _client = new RunnerClient(Path.Combine(_directory, "runner.sock"), () => _lostReason);
        var local = new StageSupervisorOptions();
        for (int i = 0; i < options.Stages.Count; i++)
        {
            LlmPqStageOptions stage = options.Stages[i];
            if (stage.IsLocalServer)
            {
                local.Stages.Add(new LocalStageOptions { Name = StageName(i), Device = stage.Device, Threads = stage.Threads, MemoryBytes = stage.MemoryBytes });
            }
        }

        _supervisor = local.Stages.Count > 0 ? new StageSupervisor(local, _loggerFactory, meterFactory) : null;
        _meter = meterFactory?.Create("LlmPq") ?? new Meter("LlmPq");
        _runnerRestarts = _meter.CreateCounter<long>("llmpq.pipeline.runner.restarts", "{restart}", "Restarts of the engine's runner process after it or a stage failed.");
        _metrics = new MetricRelay.Replay(_meter);
        _watchdogTrips = _meter.CreateCounter<long>("llmpq.pipeline.watchdog.trips", "{trip}", "Iterations stuck past the watchdog's deadline (a frozen stage); each replaces the runner and the stages that stopped answering.");
    }

    /// <summary>Gets a value indicating whether the pipeline serves requests now.</summary>
    public bool IsReady => _ready.Task.IsCompletedSuccessfully;

    /// <summary>Gets the local stage servers' states (empty when every stage is remote).</summary>
    internal IReadOnlyList<StageStatus> Stages => _supervisor?.Status() ?? [];

    /// <summary>Gets the runner's process id, while one runs.</summary>
    internal int? RunnerProcessId { get; private set; }

    /// <summary>Gets the model id the pipeline serves.</summary>
    public string ModelId => _options.EffectiveModelId;

    /// <summary>Starts the local stage servers and the runner, and waits until the runner serves.</summary>
    /// <param name="cancellationToken">Cancels the start (what started is stopped).</param>
    /// <returns>A task that completes when the pipeline is ready.</returns>
    /// <exception cref="LlamaException">A stage or the runner could not start; the message says which and quotes its output.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("The pipeline was started already.");
        }

        Directory.CreateDirectory(_directory);
        try
        {
            if (_supervisor is not null)
            {
                await _supervisor.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            (ChildProcess runner, CancellationToken lost) = await StartRunnerAsync(cancellationToken).ConfigureAwait(false);
            _ready.TrySetResult();
            _watch = WatchAsync(runner, lost, _stopping.Token);
        }
        catch
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the runner and the stage servers.</summary>
    /// <param name="cancellationToken">Unused; stopping is quick.</param>
    /// <returns>A task that completes when everything has stopped.</returns>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _disposed) != 0 && _stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _watch.ConfigureAwait(false);
        if (_supervisor is not null)
        {
            await _supervisor.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        _ready.TrySetException(new LlmPqUnavailableException("The LlmPq pipeline has stopped."));
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopAsync().ConfigureAwait(false);
        if (_supervisor is not null)
        {
            await _supervisor.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
        _meter.Dispose();
    }

    /// <summary>Streams the answer to a chat request; waits for a restarting pipeline, up to the start timeout.</summary>
    internal async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Task ready = _ready.Task;
        if (!ready.IsCompleted)
        {
            if (Volatile.Read(ref _started) == 0)
            {
                throw new LlmPqUnavailableException("The LlmPq pipeline is not serving: start the host (or call StartAsync) first.");
            }

            try
            {
                await ready.WaitAsync(s_runnerStartTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new LlmPqUnavailableException($"The LlmPq pipeline is still restarting ({_lostReason}); retry later.");
            }
        }

        await ready.ConfigureAwait(false);
        await foreach (ChatResponseUpdate update in _client.StreamAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    /// <summary>Waits for the stages, checks their endpoints, and starts a runner on them.</summary>
    private async Task<(ChildProcess Runner, CancellationToken Lost)> StartRunnerAsync(CancellationToken cancellationToken)
    {
        StageGeneration? generation = _supervisor is null ? null : await _supervisor.WaitUntilHealthyAsync(cancellationToken).ConfigureAwait(false);
        LlmPqOptions resolved = Resolve(generation);

        // The runner's loader checks again before ggml touches a server; checking here first keeps a bad server from
        // costing a runner start each time the watch loop retries, and its message from being wrapped in the runner's.
        await StageEndpointCheck.CheckAsync(
            [.. resolved.Stages.Select((s, i) => (Stage: s, Index: i)).Where(x => !x.Stage.InProcess).Select(x => new StageRequirement(StageName(x.Index), x.Stage.Endpoint!, x.Stage.MemoryBytes))],
            s_endpointTimeout,
            cancellationToken).ConfigureAwait(false);

        string optionsPath = Path.Combine(_directory, "options.json");
        await File.WriteAllTextAsync(optionsPath, JsonSerializer.Serialize(resolved, RunnerProtocol.Json), cancellationToken).ConfigureAwait(false);
        (string program, IReadOnlyList<string> prefix) = RunnerCommand();
        // The runner's lines come back through this logger; when it takes trace, the runner logs its iterations too.
        ILogger runnerLog = _loggerFactory.CreateLogger("LlmPq.Pipeline.Runner");
        string[] arguments = [.. prefix, "runner", "--options", optionsPath, "--socket", Path.Combine(_directory, "runner.sock"), .. runnerLog.IsEnabled(LogLevel.Trace) ? ["--verbose"] : Array.Empty<string>()];
        ChildProcess runner = await ChildProcess.StartAsync(program, arguments, runnerLog).ConfigureAwait(false);
        try
        {
            await runner.WaitUntilAsync(_client.PingAsync, "served its socket", s_runnerStartTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await runner.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        RunnerProcessId = runner.Id;
        string layout = string.Join(", ", resolved.Stages.Select(s => $"{s.Endpoint ?? "in the runner"}: {s.Layers} layers"));
        LogRunnerReady(_logger, runner.Id, generation?.Number ?? 0, layout);
        return (runner, generation?.Lost ?? CancellationToken.None);
    }

    /// <summary>
    /// Restarts the runner whenever it exits, a stage of its generation is lost, or its iteration is stuck past the
    /// watchdog's deadline (then the stages that stopped answering are replaced too), until the pipeline stops.
    /// </summary>
    private async Task WatchAsync(ChildProcess runner, CancellationToken lost, CancellationToken stopping)
    {
        int failures = 0;
        while (true)
        {
            string? stuck;
            using (var watching = CancellationTokenSource.CreateLinkedTokenSource(lost, stopping))
            {
                Task<string?> watchdog = WatchdogAsync(watching.Token);
                await Task.WhenAny(runner.Exited, watchdog, Task.Delay(Timeout.Infinite, watching.Token)).ConfigureAwait(false);
                await watching.CancelAsync().ConfigureAwait(false);
                stuck = await watchdog.ConfigureAwait(false);
            }

            string reason = stopping.IsCancellationRequested ? "the pipeline is stopping" : LostReason(runner, stuck, stageLost: lost.IsCancellationRequested);
            _lostReason = reason;
            if (_ready.Task.IsCompleted)
            {
                _ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            // The runner holds connections to a lost stage; the next use of one would abort it anyway.
            await runner.DisposeAsync().ConfigureAwait(false);
            if (stopping.IsCancellationRequested)
            {
                return;
            }

            if (stuck is not null)
            {
                _watchdogTrips.Add(1);
                if (!await ReplaceFrozenStagesAsync(stopping).ConfigureAwait(false))
                {
                    return;
                }
            }

            LogRunnerLost(_logger, reason);
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(Backoff(failures), stopping).ConfigureAwait(false);
                    (runner, lost) = await StartRunnerAsync(stopping).ConfigureAwait(false);
                    _runnerRestarts.Add(1);
                    failures = 0;
                    _ready.TrySetResult();
                    break;
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is LlamaException or IOException or InvalidOperationException)
                {
                    failures++;
                    _lostReason = $"restarting failed: {ex.Message}";
                    LogRestartFailed(_logger, ex, failures);
                }
            }
        }
    }

    /// <summary>
    /// Polls the runner's heartbeat until its engine's running iteration is past its deadline, or the runner stops
    /// answering heartbeats (it is frozen itself) for as long as the deadline's ceiling; returns why, or null once cancelled.
    /// </summary>
    private async Task<string?> WatchdogAsync(CancellationToken cancellationToken)
    {
        StageWatchdogOptions options = _options.Watchdog;
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Clamp(options.DeadlineFloor.Ticks / 4, TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond)));
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                using var answer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                answer.CancelAfter(options.DeadlineCeiling);
                IterationReport? report;
                try
                {
                    RunnerProtocol.Reply? heartbeat = await _client.HeartbeatAsync(answer.Token).ConfigureAwait(false);
                    _metrics.Record(heartbeat?.Metrics ?? []);
                    report = heartbeat?.Iteration;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    return string.Create(CultureInfo.InvariantCulture, $"the runner did not answer a heartbeat within {options.DeadlineCeiling.TotalSeconds:0.#} s");
                }

                // Null: the runner cannot be reached; its exit, if that is why, is the watch loop's to see.
                if (report is { Overdue: true })
                {
                    return string.Create(CultureInfo.InvariantCulture, $"an iteration of {report.Tokens} tokens has run {report.RunningSeconds:0.#} s, past its deadline of {report.DeadlineSeconds:0.#} s");
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        return null;
    }

    /// <summary>After a stuck iteration (its runner gone): replaces the local stages that no longer answer; false when the pipeline stops meanwhile.</summary>
    private async Task<bool> ReplaceFrozenStagesAsync(CancellationToken stopping)
    {
        IReadOnlyList<string> replaced = [];
        try
        {
            if (_supervisor is not null)
            {
                replaced = await _supervisor.ReplaceUnresponsiveAsync(_options.Watchdog.DeadlineFloor, stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return false;
        }

        // A frozen remote stage cannot be replaced from here: the restart below waits for it (its endpoint check fails until it answers).
        LogWatchdogTripped(_logger, _lostReason, replaced.Count == 0 ? "none (a remote stage or the runner itself was frozen)" : string.Join(", ", replaced));
        return true;
    }

    /// <summary>Says why the runner went away: the watchdog, a lost stage, the runner's own exit (with its code or signal), or several.</summary>
    private string LostReason(ChildProcess runner, string? stuck, bool stageLost)
    {
        if (stuck is not null)
        {
            return $"the watchdog found the engine stuck ({stuck}); the runner and the stage servers that stopped answering are being replaced";
        }

        var reasons = new List<string>();
        if (stageLost)
        {
            string[] down = [.. Stages.Where(s => s.State != StageState.Up).Select(s => s.Name)];
            reasons.Add(down.Length == 0 ? "a stage server exited" : $"stage server {string.Join(", ", down)} exited");
        }

        if (runner.Exited.IsCompleted)
        {
            reasons.Add(RunnerExit(runner.Id, runner.Exited.Result, runner.LastOutput));
        }

        return string.Join("; ", reasons);
    }

    /// <summary>Describes a runner's exit for operators: its code or signal, its last output line, and what to do.</summary>
    internal static string RunnerExit(int processId, int code, string lastOutput)
    {
        // .NET reports a process ended by signal N as 128 + N.
        string how = code is > 128 and < 160
            ? string.Create(CultureInfo.InvariantCulture, $"was killed by signal {code - 128}{SignalName(code - 128)}")
            : string.Create(CultureInfo.InvariantCulture, $"exited with code {code}");
        return string.Create(
            CultureInfo.InvariantCulture,
            $"the runner (the engine's process, pid {processId}) {how}; its last output: {LastLine(lastOutput)}. It is restarted; if it keeps exiting, run with --verbose and read the LlmPq.Pipeline.Runner log");
    }

    private static string SignalName(int signal) => signal switch
    {
        4 => " (SIGILL)",
        6 => " (SIGABRT: ggml or .NET aborted)",
        7 => " (SIGBUS)",
        9 => " (SIGKILL: killed, perhaps by the out-of-memory killer)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => string.Empty,
    };

    private static TimeSpan Backoff(int failures) => TimeSpan.FromMilliseconds(Math.Min(30_000, failures == 0 ? 0 : 250 * (1 << Math.Min(failures, 7))));

    /// <summary>The options the runner gets: every stage with its endpoint.</summary>
    private LlmPqOptions Resolve(StageGeneration? generation)
    {
        LlmPqOptions resolved = JsonSerializer.Deserialize<LlmPqOptions>(JsonSerializer.Serialize(_options, RunnerProtocol.Json), RunnerProtocol.Json)!;
        for (int i = 0; i < resolved.Stages.Count; i++)
        {
            LlmPqStageOptions stage = resolved.Stages[i];
            if (stage.IsLocalServer)
            {
                stage.Endpoint = generation!.Stages.Single(s => s.Name == StageName(i)).Endpoint;
            }
        }

        return resolved;
    }

    /// <summary>How to start <c>llmpq</c>: <see cref="LlmPqOptions.RunnerPath"/>, or <c>llmpq</c> beside the application, or on <c>PATH</c>.</summary>
    private (string Program, IReadOnlyList<string> Prefix) RunnerCommand()
    {
        string? path = _options.RunnerPath;
        if (string.IsNullOrEmpty(path))
        {
            string beside = Path.Combine(AppContext.BaseDirectory, "llmpq.dll");
            path = File.Exists(beside) ? beside : "llmpq";
        }

        if (!path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            return (path, []);
        }

        // A framework-dependent llmpq runs through the same dotnet host as this process when this process is one.
        string? host = Environment.ProcessPath;
        string dotnet = host is not null && Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase) ? host : "dotnet";
        return (dotnet, [path]);
    }

    private static string StageName(int index) => string.Create(CultureInfo.InvariantCulture, $"stage{index}");

    private static string LastLine(string output)
    {
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "no output" : lines[^1];
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Information, Message = "Pipeline runner {ProcessId} serving on stage generation {Generation}: {Stages}")]
    private static partial void LogRunnerReady(ILogger logger, int processId, int generation, string stages);

    [LoggerMessage(EventId = 51, Level = LogLevel.Warning, Message = "Pipeline runner lost: {Reason}; restarting it")]
    private static partial void LogRunnerLost(ILogger logger, string reason);

    [LoggerMessage(EventId = 53, Level = LogLevel.Error, Message = "Pipeline watchdog: {Reason}. Stage servers replaced: {Stages}")]
    private static partial void LogWatchdogTripped(ILogger logger, string reason, string stages);

    [LoggerMessage(EventId = 52, Level = LogLevel.Error, Message = "Restarting the pipeline runner failed ({Failures} in a row); retrying")]
    private static partial void LogRestartFailed(ILogger logger, Exception exception, int failures);
}
