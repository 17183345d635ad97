using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using LlmPq.Native;
using Microsoft.Extensions.Logging;

namespace LlmPq.Stages;

/// <summary>
/// A child process LlmPq starts (a stage server, a llama.cpp tool): its output goes to a logger line by line, the last
/// lines are kept for error messages, and disposing it kills its whole tree. It dies with this process
/// (<see cref="ProcessSpawner"/>).
/// </summary>
internal sealed partial class ChildProcess : IAsyncDisposable
{
    private const int TailLines = 20;
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(100);

    private readonly Process _process;
    private readonly ILogger _logger;
    private readonly Queue<string> _tail = new();
    private readonly StringBuilder? _standardOutput;

    private ChildProcess(Process process, string name, ILogger logger, bool keepStandardOutput)
    {
        _process = process;
        _logger = logger;
        Name = name;
        Id = process.Id;
        _standardOutput = keepStandardOutput ? new StringBuilder() : null;
        process.OutputDataReceived += (_, e) => Received(e.Data, standardOutput: true);
        process.ErrorDataReceived += (_, e) => Received(e.Data, standardOutput: false);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Exited = WaitForExitCodeAsync();
    }

    /// <summary>Gets the program's file name, for messages.</summary>
    public string Name { get; }

    /// <summary>Gets the process id.</summary>
    public int Id { get; }

    /// <summary>Gets a task that completes with the exit code once the process has exited and its output is read.</summary>
    public Task<int> Exited { get; }

    /// <summary>Gets the last lines the process wrote (standard output and error, in order), for error messages.</summary>
    public string LastOutput
    {
        get
        {
            lock (_tail)
            {
                return _tail.Count == 0 ? "(no output)" : string.Join(Environment.NewLine, _tail.Select(l => "  " + l));
            }
        }
    }

    /// <summary>Starts a program; it dies with this process.</summary>
    /// <param name="program">The program: a path, or a name looked up in <c>PATH</c>.</param>
    /// <param name="arguments">Its arguments, passed as they are (no shell).</param>
    /// <param name="logger">Where its output lines go, at debug level.</param>
    /// <param name="keepStandardOutput">Whether to keep all of standard output for <see cref="WaitForSuccessAsync"/>.</param>
    /// <returns>The running process.</returns>
    public static async Task<ChildProcess> StartAsync(string program, IEnumerable<string> arguments, ILogger logger, bool keepStandardOutput = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(program);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(logger);
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        if (ProcessSpawner.LauncherPath is null && OperatingSystem.IsLinux())
        {
            LogNoLauncher(logger, Path.GetFileName(program));
        }

        Process process = await ProcessSpawner.StartAsync(start).ConfigureAwait(false);
        var child = new ChildProcess(process, Path.GetFileName(program), logger, keepStandardOutput);
        LogStarted(logger, child.Name, child.Id);
        return child;
    }

    /// <summary>Gets whether something accepts TCP connections at <paramref name="host"/>:<paramref name="port"/>.</summary>
    /// <param name="host">The address.</param>
    /// <param name="port">The port.</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <returns><see langword="true"/> once a connection was accepted.</returns>
    public static async Task<bool> AcceptsConnectionsAsync(string host, int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Waits until the process accepts TCP connections on <paramref name="host"/>:<paramref name="port"/>.</summary>
    /// <param name="host">The address it listens on.</param>
    /// <param name="port">The port.</param>
    /// <param name="timeout">How long it may take.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when it listens.</returns>
    /// <exception cref="LlamaException">It exited first, or did not listen in time; the message quotes its last output.</exception>
    public Task WaitForPortAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken) =>
        WaitUntilAsync(ct => AcceptsConnectionsAsync(host, port, ct), string.Create(CultureInfo.InvariantCulture, $"listened on {host}:{port}"), timeout, cancellationToken);

    /// <summary>Polls <paramref name="isReady"/> until it answers <see langword="true"/>.</summary>
    /// <param name="isReady">The readiness probe; it returns <see langword="false"/> for "not yet".</param>
    /// <param name="what">What readiness means, for the error message (for example "listened on 127.0.0.1:8080").</param>
    /// <param name="timeout">How long it may take.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when the process is ready.</returns>
    /// <exception cref="LlamaException">It exited first, or was not ready in time; the message quotes its last output.</exception>
    public async Task WaitUntilAsync(Func<CancellationToken, Task<bool>> isReady, string what, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(isReady);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                if (Exited.IsCompleted)
                {
                    throw new LlamaException(string.Create(CultureInfo.InvariantCulture, $"{Name} exited with code {Exited.Result} before it {what}. Its last output:{Environment.NewLine}{LastOutput}"));
                }

                if (await isReady(deadline.Token).ConfigureAwait(false))
                {
                    return;
                }

                await Task.WhenAny(Task.Delay(s_pollInterval, deadline.Token), Exited).ConfigureAwait(false);
                deadline.Token.ThrowIfCancellationRequested();
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new LlamaException(string.Create(CultureInfo.InvariantCulture, $"{Name} had not {what} after {timeout.TotalSeconds:0.#} s. Its last output:{Environment.NewLine}{LastOutput}"));
        }
    }

    /// <summary>Waits for the process to finish and returns its standard output (kept when started with <c>keepStandardOutput</c>).</summary>
    /// <param name="cancellationToken">Cancels the wait (the process runs on until disposed).</param>
    /// <returns>Its standard output.</returns>
    /// <exception cref="LlamaException">It exited with a code other than 0; the message quotes its last output.</exception>
    public async Task<string> WaitForSuccessAsync(CancellationToken cancellationToken)
    {
        int code = await Exited.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (code != 0)
        {
            throw new LlamaException(string.Create(CultureInfo.InvariantCulture, $"{Name} failed with exit code {code}. Its last output:{Environment.NewLine}{LastOutput}"));
        }

        lock (_tail)
        {
            return _standardOutput?.ToString() ?? string.Empty;
        }
    }

    /// <summary>Kills the process and everything it started (SIGKILL: a stopped process dies too), unless it has exited; <see cref="Exited"/> tells when it is gone.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It has exited already.
        }
    }

    /// <summary>Kills the process and everything it started, unless it has exited, and waits for it briefly.</summary>
    /// <returns>A task that completes when the process is gone.</returns>
    public async ValueTask DisposeAsync()
    {
        Kill();

        try
        {
            await Exited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogNotGone(_logger, Name, Id);
        }

        _process.Dispose();
    }

    private async Task<int> WaitForExitCodeAsync()
    {
        await _process.WaitForExitAsync().ConfigureAwait(false);
        return _process.ExitCode;
    }

    private void Received(string? line, bool standardOutput)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            if (standardOutput && _standardOutput is not null)
            {
                _standardOutput.AppendLine(line);
            }

            if (_tail.Count == TailLines)
            {
                _tail.Dequeue();
            }

            _tail.Enqueue(line);
        }

        LogOutput(_logger, Name, Id, line);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Debug, Message = "Started {Program} (pid {Pid})")]
    private static partial void LogStarted(ILogger logger, string program, int pid);

    [LoggerMessage(EventId = 101, Level = LogLevel.Debug, Message = "{Program}[{Pid}]: {Line}")]
    private static partial void LogOutput(ILogger logger, string program, int pid, string line);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "No stage launcher was built (eng/build-native.sh compiles it with a C compiler): {Program} is started directly and would outlive a killed LlmPq")]
    private static partial void LogNoLauncher(ILogger logger, string program);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "{Program} (pid {Pid}) was killed but had not exited after 10 s")]
    private static partial void LogNotGone(ILogger logger, string program, int pid);
}
