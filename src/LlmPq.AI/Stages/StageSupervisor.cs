using System.Diagnostics;
using System.Diagnostics.Metrics;
using LlmPq.Native;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LlmPq.Stages;

/// <summary>
/// Runs this machine's stage servers: one <c>ggml-rpc-server</c> per local stage on 127.0.0.1, restarted with
/// exponential backoff when it exits, all stopped when the supervisor stops. The servers die with this process even
/// when it is killed (<see cref="ProcessSpawner"/>). The engine takes a <see cref="StageGeneration"/> from
/// <see cref="WaitUntilHealthyAsync"/> and drops it when its <see cref="StageGeneration.Lost"/> fires.
/// </summary>
/// <remarks>
/// A server is watched by its exit only: it serves one client at a time, so probing it while the engine is connected
/// would wait behind the engine. A hung server is the engine's to notice: once its watchdog has let go of the servers,
/// <see cref="ReplaceUnresponsiveAsync"/> probes them and replaces those that do not answer.
/// </remarks>
internal sealed partial class StageSupervisor : IHostedService, IAsyncDisposable
{
    private const string LoopbackAddress = "127.0.0.1";

    private readonly StageSupervisorOptions _options;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly Counter<long> _restarts;
    private readonly Stage[] _stages;
    private readonly Lock _gate = new();
    private CancellationTokenSource? _stopping;
    private Task _runners = Task.CompletedTask;
    private TaskCompletionSource _changed = NewSignal();
    private StageGeneration? _generation;
    private CancellationTokenSource? _generationLost;
    private int _generations;

    /// <summary>Initializes a new instance of the <see cref="StageSupervisor"/> class; nothing starts before <see cref="StartAsync"/>.</summary>
    /// <param name="options">The stages; validated at start.</param>
    /// <param name="loggerFactory">Where the supervisor and the servers' output log.</param>
    /// <param name="meterFactory">Creates the <c>LlmPq</c> meter (a plain one when null).</param>
    public StageSupervisor(StageSupervisorOptions options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<StageSupervisor>();
        _stages = [.. options.Stages.Select(s => new Stage(s))];

        // The engine's meter name: one meter for everything LlmPq measures.
        _meter = meterFactory?.Create("LlmPq") ?? new Meter("LlmPq");
        _restarts = _meter.CreateCounter<long>("llmpq.stage.restarts", "{restart}", "Restarts of a stage server after it exited or failed to start.");
        _meter.CreateObservableGauge("llmpq.stage.up", () => Status().Count(s => s.State == StageState.Up), "{stage}", "Stage servers answering on their endpoints.");
    }

    /// <summary>Gets the current generation, or <see langword="null"/> while a stage is not up.</summary>
    public StageGeneration? Current
    {
        get
        {
            lock (_gate)
            {
                return _generation;
            }
        }
    }

    /// <summary>Gets a snapshot of every stage.</summary>
    /// <returns>One status per stage, in pipeline order.</returns>
    public IReadOnlyList<StageStatus> Status()
    {
        lock (_gate)
        {
            return [.. _stages.Select(s => new StageStatus(s.Options.Name, s.State, s.Endpoint, s.ProcessId, s.Restarts, s.LastFailure))];
        }
    }

    /// <summary>Starts every stage server and waits until all answer.</summary>
    /// <param name="cancellationToken">Cancels the wait (the servers are then stopped).</param>
    /// <returns>A task that completes when the first generation is up.</returns>
    /// <exception cref="OptionsValidationException">The options are not valid.</exception>
    /// <exception cref="LlamaException">A stage failed to start <see cref="StageSupervisorOptions.UnhealthyAfter"/> times; the message quotes its server's output.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        ValidateOptionsResult valid = new StageSupervisorOptionsValidator().Validate(null, _options);
        if (valid.Failed)
        {
            throw new OptionsValidationException(nameof(StageSupervisorOptions), typeof(StageSupervisorOptions), valid.Failures);
        }

        string server = NativeLibraryLoader.ToolPath("ggml-rpc-server");
        CancellationTokenSource stopping;
        lock (_gate)
        {
            if (_stopping is not null)
            {
                throw new InvalidOperationException("The stage supervisor was started already.");
            }

            _stopping = stopping = new CancellationTokenSource();
        }

        _runners = Task.WhenAll(_stages.Select(s => Task.Run(() => SuperviseAsync(s, server, stopping.Token), CancellationToken.None)));
        try
        {
            await WaitUntilHealthyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Waits until every stage is up and returns that generation.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The generation, whose <see cref="StageGeneration.Lost"/> has not fired yet.</returns>
    /// <exception cref="LlamaException">A stage is unhealthy; the message says why.</exception>
    /// <exception cref="InvalidOperationException">The supervisor is not running.</exception>
    public async Task<StageGeneration> WaitUntilHealthyAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_generation is not null)
                {
                    return _generation;
                }

                if (_stopping is null || _stopping.IsCancellationRequested)
                {
                    throw new InvalidOperationException("The stage supervisor is not running.");
                }

                if (_stages.FirstOrDefault(s => s.State == StageState.Unhealthy) is Stage unhealthy)
                {
                    throw new LlamaException($"Stage '{unhealthy.Options.Name}' is unhealthy: {unhealthy.LastFailure}");
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Probes every stage server that is up and kills those that do not answer in time (frozen: stopped, swapped out,
    /// hung); their supervision restarts them as after any exit. Call it when no engine is connected to the servers
    /// (a server serves one client at a time, so a probe would wait behind it).
    /// </summary>
    /// <param name="timeout">How long a server may take to answer the probe.</param>
    /// <param name="cancellationToken">Cancels the probes and the wait.</param>
    /// <returns>The names of the stages killed; the generation they were in is lost once this returns.</returns>
    public async Task<IReadOnlyList<string>> ReplaceUnresponsiveAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        (Stage Stage, string Endpoint, ChildProcess Process)[] up;
        lock (_gate)
        {
            up = [.. _stages.Where(s => s is { State: StageState.Up, Process: not null }).Select(s => (s, s.Endpoint!, s.Process!))];
        }

        string?[] failures = await Task.WhenAll(up.Select(async u =>
        {
            try
            {
                await StageEndpointCheck.ProbeAsync(u.Endpoint, timeout, cancellationToken).ConfigureAwait(false);
                return null;
            }
            catch (LlamaException ex)
            {
                return ex.Message;
            }
        })).ConfigureAwait(false);

        var killed = new List<ChildProcess>();
        var names = new List<string>();
        for (int i = 0; i < up.Length; i++)
        {
            if (failures[i] is string failure)
            {
                lock (_gate)
                {
                    up[i].Stage.KilledBecause = failure;
                }

                LogKillingUnresponsive(_logger, up[i].Stage.Options.Name, up[i].Process.Id, failure);
                up[i].Process.Kill();
                killed.Add(up[i].Process);
                names.Add(up[i].Stage.Options.Name);
            }
        }

        // Until the supervision has seen them go, WaitUntilHealthyAsync would still hand out the generation they were in.
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (!_stages.Any(s => s.Process is { } p && killed.Contains(p)))
                {
                    return names;
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops every stage server and waits for them to exit.</summary>
    /// <param name="cancellationToken">Stops waiting (the servers are killed regardless).</param>
    /// <returns>A task that completes when the servers are gone.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        CancellationTokenSource? stopping;
        lock (_gate)
        {
            stopping = _stopping;
        }

        if (stopping is null || stopping.IsCancellationRequested)
        {
            return;
        }

        await stopping.CancelAsync().ConfigureAwait(false);
        await _runners.WaitAsync(cancellationToken).ConfigureAwait(false);
        LogStopped(_logger, _stages.Length);
    }

    /// <summary>Stops the servers (as <see cref="StopAsync"/>) and releases the meter.</summary>
    /// <returns>A task that completes when the servers are gone.</returns>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping?.Dispose();
        _meter.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task SuperviseAsync(Stage stage, string server, CancellationToken stopping)
    {
        LocalStageOptions options = stage.Options;
        int fastFailures = 0;
        while (!stopping.IsCancellationRequested)
        {
            var clock = Stopwatch.StartNew();
            string failure;
            try
            {
                failure = await RunOnceAsync(stage, server, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is LlamaException or System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
            {
                // It never answered: the port may be another process's now, so a port of our choosing is chosen again.
                failure = ex.Message;
                if (options.Port == 0)
                {
                    stage.Port = 0;
                }
            }

            fastFailures = clock.Elapsed < _options.StableAfter ? fastFailures + 1 : 1;
            var delay = TimeSpan.FromTicks((long)Math.Min(_options.MaxRestartDelay.Ticks, _options.RestartDelay.Ticks * Math.Pow(2, fastFailures - 1)));
            bool unhealthy = fastFailures >= _options.UnhealthyAfter;
            Changed(stage, unhealthy ? StageState.Unhealthy : StageState.Starting, endpoint: null, process: null, failure);
            if (unhealthy)
            {
                LogUnhealthy(_logger, options.Name, fastFailures, delay.TotalSeconds, failure);
            }
            else
            {
                LogRestarting(_logger, options.Name, delay.TotalSeconds, failure);
            }

            try
            {
                await Task.Delay(delay, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            lock (_gate)
            {
                stage.Restarts++;
            }

            _restarts.Add(1, new KeyValuePair<string, object?>("llmpq.stage", options.Name));
        }

        Changed(stage, StageState.Stopped, endpoint: null, process: null, failure: null);
    }

    // Runs the stage's server until it exits and returns why it exited; throws when it never came up.
    private async Task<string> RunOnceAsync(Stage stage, string server, CancellationToken stopping)
    {
        LocalStageOptions options = stage.Options;
        int port = stage.Port != 0 ? stage.Port : Loopback.FreePort();
        string endpoint = $"{LoopbackAddress}:{port}";
        await using ChildProcess process = await StageServerProcess.StartAsync(options.Device, options.Threads, LoopbackAddress, port, LoopbackAddress, _options.StartTimeout, _logger, stopping, server).ConfigureAwait(false);
        StageServerInfo info = await StageEndpointCheck.ProbeAsync(endpoint, _options.StartTimeout, stopping).ConfigureAwait(false);
        StageEndpointCheck.Verify(info, options.Name, options.MemoryBytes);

        stage.Port = port;
        Changed(stage, StageState.Up, endpoint, process, failure: null);
        LogUp(_logger, options.Name, endpoint, process.Id, info.Devices[0].FreeBytes >> 20);
        int code = await process.Exited.WaitAsync(stopping).ConfigureAwait(false);
        string? killedBecause;
        lock (_gate)
        {
            killedBecause = stage.KilledBecause;
            stage.KilledBecause = null;
        }

        return killedBecause is not null
            ? $"ggml-rpc-server (pid {process.Id}) was killed because it stopped answering: {killedBecause}"
            : $"ggml-rpc-server (pid {process.Id}) exited with code {code}. Its last output:{Environment.NewLine}{process.LastOutput}";
    }

    // Records a stage's new state, and moves the generations on: a stage going down loses the current one, the last
    // stage coming up makes the next one.
    private void Changed(Stage stage, StageState state, string? endpoint, ChildProcess? process, string? failure)
    {
        CancellationTokenSource? lost = null;
        TaskCompletionSource changed;
        lock (_gate)
        {
            stage.State = state;
            stage.Endpoint = endpoint;
            stage.Process = process;
            stage.LastFailure = failure ?? stage.LastFailure;
            if (state != StageState.Up && _generation is not null)
            {
                lost = _generationLost;
                _generation = null;
                _generationLost = null;
            }
            else if (state == StageState.Up && _generation is null && _stages.All(s => s.State == StageState.Up))
            {
                _generationLost = new CancellationTokenSource();
                _generation = new StageGeneration(++_generations, [.. _stages.Select(s => new StageEndpoint(s.Options.Name, s.Endpoint!))], _generationLost.Token);
                if (_logger.IsEnabled(LogLevel.Information))
                {
                    string stages = string.Join(", ", _generation.Stages.Select(s => $"{s.Name}={s.Endpoint}"));
                    LogGeneration(_logger, _generation.Number, stages);
                }
            }

            changed = _changed;
            _changed = NewSignal();
        }

        // Outside the lock: whoever listens to the token runs now.
        lost?.Cancel(); // not disposed: engines may still hold its token
        changed.SetResult();
    }

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "Stage {Stage} is up on {Endpoint} (ggml-rpc-server pid {Pid}, {FreeMiB} MiB free)")]
    private static partial void LogUp(ILogger logger, string stage, string endpoint, int pid, ulong freeMiB);

    [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "Stage generation {Number} is up: {Stages}")]
    private static partial void LogGeneration(ILogger logger, int number, string stages);

    [LoggerMessage(EventId = 113, Level = LogLevel.Warning, Message = "Stage {Stage} is down; restarting it in {DelaySeconds:0.#} s. {Reason}")]
    private static partial void LogRestarting(ILogger logger, string stage, double delaySeconds, string reason);

    [LoggerMessage(EventId = 114, Level = LogLevel.Error, Message = "Stage {Stage} is unhealthy: it failed {Failures} times in a row soon after starting; retrying in {DelaySeconds:0.#} s. {Reason}")]
    private static partial void LogUnhealthy(ILogger logger, string stage, int failures, double delaySeconds, string reason);

    [LoggerMessage(EventId = 116, Level = LogLevel.Warning, Message = "Stage {Stage} (ggml-rpc-server pid {Pid}) does not answer; killing it to replace it. {Reason}")]
    private static partial void LogKillingUnresponsive(ILogger logger, string stage, int pid, string reason);

    [LoggerMessage(EventId = 115, Level = LogLevel.Information, Message = "Stopped {Count} stage servers")]
    private static partial void LogStopped(ILogger logger, int count);

    // The mutable state of one stage; every field is read and written under _gate, except Port, which only its own
    // supervising task touches.
    private sealed class Stage(LocalStageOptions options)
    {
        public LocalStageOptions Options { get; } = options;

        public StageState State { get; set; } = StageState.Starting;

        public string? Endpoint { get; set; }

        public ChildProcess? Process { get; set; }

        public int? ProcessId => Process?.Id;

        /// <summary>Gets or sets why <see cref="ReplaceUnresponsiveAsync"/> killed its server, until its supervision reports the exit.</summary>
        public string? KilledBecause { get; set; }

        public int Port { get; set; } = options.Port;

        public int Restarts { get; set; }

        public string? LastFailure { get; set; }
    }
}
