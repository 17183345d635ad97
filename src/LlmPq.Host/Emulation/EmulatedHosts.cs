using System.Diagnostics;
using System.Globalization;
using System.Net;
using LlmPq.Host.Commands;
using LlmPq.Native;
using LlmPq.Planning;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Host.Emulation;

/// <summary>
/// A cluster file's hosts emulated on this machine: each host other than the coordinator in a network namespace of
/// its own, joined to the root namespace (where this process, the coordinator, runs) by a veth pair shaped with
/// <c>tc tbf</c> to the link's bandwidth, with a stage server per device inside it (<see cref="EmulationPlan"/>).
/// <see cref="Cluster"/> is the cluster with those servers as the devices' endpoints, so the pipeline serves across
/// the links. Linux and root only; <c>tbf</c> shapes bandwidth and adds no latency (that needs <c>netem</c>).
/// </summary>
/// <remarks>
/// Every namespace, veth pair and server goes on <see cref="DisposeAsync"/>, when starting fails, and when the process
/// exits without disposing (Ctrl+C past the drain, an unhandled error); after a SIGKILL the servers die with the
/// process (<see cref="ProcessSpawner"/>) and the next start removes the namespaces of owners that are gone.
/// </remarks>
internal sealed partial class EmulatedHosts : IAsyncDisposable
{
    private static readonly string s_lockPath = Path.Combine("/run", "llmpq-emulated-hosts.lock");
    private static readonly TimeSpan s_serverStartTimeout = TimeSpan.FromSeconds(60);

    private readonly ILogger _logger;
    private readonly List<ChildProcess> _servers = [];
    private readonly EventHandler _onExit;
    private int _disposed;

    private EmulatedHosts(EmulationPlan plan, ClusterSpec cluster, ILogger logger)
    {
        Plan = plan;
        Cluster = plan.Apply(cluster);
        _logger = logger;
        _onExit = (_, _) => TeardownOnExit();
    }

    /// <summary>Gets what was set up.</summary>
    public EmulationPlan Plan { get; }

    /// <summary>Gets the cluster with every emulated device's endpoint pointing at its stage server.</summary>
    public ClusterSpec Cluster { get; }

    /// <summary>Gets why hosts cannot be emulated here, or null when they can.</summary>
    /// <returns>A message that says what is needed.</returns>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "emulated hosts need Linux network namespaces (ip netns), veth pairs and tc tbf";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "emulated hosts need root (CAP_NET_ADMIN and CAP_SYS_ADMIN: they create network namespaces, veth pairs and tc qdiscs); run as root, e.g. with sudo";
        }

        return FindTool("ip") is null || FindTool("tc") is null
            ? "emulated hosts need iproute2's ip and tc on PATH or in /usr/sbin (apt-get install iproute2)"
            : null;
    }

    /// <summary>Sets the hosts of <paramref name="cluster"/> up and starts their stage servers.</summary>
    /// <param name="cluster">The cluster; its devices off the coordinator's host must not have endpoints.</param>
    /// <param name="loggerFactory">Where the servers' output and the setup's commands log.</param>
    /// <param name="cancellationToken">Cancels the start (everything made so far is removed).</param>
    /// <returns>The running hosts; <see cref="Cluster"/> is the cluster to plan and serve with.</returns>
    /// <exception cref="UnauthorizedAccessException">Not root, or not Linux.</exception>
    /// <exception cref="FileNotFoundException"><c>ip</c> or <c>tc</c> is missing.</exception>
    /// <exception cref="IOException">A setup command failed; the message quotes it and its output.</exception>
    /// <exception cref="LlamaException">A stage server did not start; the message quotes its output.</exception>
    public static async Task<EmulatedHosts> StartAsync(ClusterSpec cluster, ILoggerFactory? loggerFactory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (Unavailable() is string missing)
        {
            throw OperatingSystem.IsLinux() && Environment.IsPrivilegedProcess ? new FileNotFoundException(missing) : new UnauthorizedAccessException(missing);
        }

        ILogger logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<EmulatedHosts>();
        EmulatedHosts hosts;
        await using (FileStream held = await LockAsync(cancellationToken).ConfigureAwait(false))
        {
            await RemoveStaleAsync(logger, cancellationToken).ConfigureAwait(false);
            EmulationPlan plan = EmulationPlan.Create(cluster, Environment.ProcessId, await AddressesInUseAsync(logger, cancellationToken).ConfigureAwait(false));
            hosts = new EmulatedHosts(plan, cluster, logger);
            AppDomain.CurrentDomain.ProcessExit += hosts._onExit;
            try
            {
                foreach (IReadOnlyList<string> command in plan.SetupCommands())
                {
                    await RunAsync(command, logger, cancellationToken).ConfigureAwait(false);
                }
            }
            catch
            {
                await hosts.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        try
        {
            await hosts.StartServersAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await hosts.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return hosts;
    }

    /// <summary>Gets one line per emulated host, for the console: its namespace, address, rate and what is not emulated.</summary>
    public IEnumerable<string> Describe() => Plan.Hosts.Select(h => string.Create(
        CultureInfo.InvariantCulture,
        $"host {h.Host}: namespace {h.Namespace}, {string.Join(", ", h.Devices.Select(d => $"{d.Device.Name}={h.Endpoint(d.Port)}"))}; tbf {h.Shaping.RateBitsPerSecond / 1e9:0.###} Gbit/s each way{(h.LatencyMs > 0 ? $", its {h.LatencyMs:0.###} ms latency not added (no netem)" : string.Empty)}"));

    /// <summary>Shapes the link of an emulated host to another rate, in place (the servers and connections stay).</summary>
    /// <param name="host">The host's plan, from <see cref="Plan"/>.</param>
    /// <param name="gbps">The new rate in Gbit/s.</param>
    /// <param name="cancellationToken">Cancels the change.</param>
    /// <returns>A task that completes when both ends are shaped.</returns>
    public async Task ShapeAsync(EmulatedHostPlan host, double gbps, CancellationToken cancellationToken)
    {
        foreach (IReadOnlyList<string> command in EmulationPlan.ShapeCommands(host, TokenBucket.For(gbps)))
        {
            await RunAsync(command, _logger, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the stage servers and removes every namespace and veth pair.</summary>
    /// <returns>A task that completes when they are gone.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        foreach (ChildProcess server in _servers)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }

        foreach (IReadOnlyList<string> command in Plan.TeardownCommands())
        {
            string text = string.Join(' ', command);
            try
            {
                await RunAsync(command, _logger, CancellationToken.None).ConfigureAwait(false);
            }
            catch (IOException ex) when (command[1] == "link")
            {
                // The root end goes with its namespace; it is only there alone after a setup that failed half way.
                LogTeardown(_logger, text, ex.Message);
            }
            catch (IOException ex)
            {
                LogTeardownFailed(_logger, text, ex.Message);
            }
        }
    }

    /// <summary>Removes the namespaces and root-side interfaces of owners that are no longer running, and kills what runs in them.</summary>
    /// <param name="logger">Where each removal is logged.</param>
    /// <param name="cancellationToken">Cancels the removal.</param>
    /// <returns>A task that completes when they are gone.</returns>
    internal static async Task RemoveStaleAsync(ILogger logger, CancellationToken cancellationToken)
    {
        foreach (string name in Names(await RunAsync(["ip", "netns", "list"], logger, cancellationToken).ConfigureAwait(false), link: false).Where(IsStale))
        {
            foreach (string pid in (await RunAsync(["ip", "netns", "pids", name], logger, cancellationToken).ConfigureAwait(false)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                Kill(int.Parse(pid, CultureInfo.InvariantCulture));
            }

            await RunAsync(["ip", "netns", "del", name], logger, cancellationToken).ConfigureAwait(false);
            LogStale(logger, "namespace", name);
        }

        foreach (string name in Names(await RunAsync(["ip", "-o", "link", "show"], logger, cancellationToken).ConfigureAwait(false), link: true).Where(IsStale))
        {
            await RunAsync(["ip", "link", "del", name], logger, cancellationToken).ConfigureAwait(false);
            LogStale(logger, "interface", name);
        }
    }

    /// <summary>Gets the namespaces (<c>ip netns list</c>) or interfaces (<c>ip -o link show</c>) an output names.</summary>
    internal static IEnumerable<string> Names(string output, bool link) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => link
                ? line.Split(':', 3) is [_, var name, _] ? name.Trim().Split('@')[0] : string.Empty // "7: lq12-0@if2: <…"
                : line.Split(' ')[0]) // "llmpq-12-0-b (id: 3)"
            .Where(name => name.Length > 0);

    private static bool IsStale(string name) => EmulationPlan.TryOwner(name, out int pid) && pid != Environment.ProcessId && !RunningProcess.Is(pid);

    private static void Kill(int pid)
    {
        try
        {
            using Process process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (ArgumentException)
        {
            // It has exited already.
        }
    }

    private static async Task<IReadOnlyCollection<IPAddress>> AddressesInUseAsync(ILogger logger, CancellationToken cancellationToken)
    {
        // "2: eth0    inet 172.17.0.2/16 brd … scope global eth0\ …"
        string output = await RunAsync(["ip", "-o", "-4", "addr", "show"], logger, cancellationToken).ConfigureAwait(false);
        return
        [
            .. output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Select(words => Array.IndexOf(words, "inet") is int at and >= 0 && at + 1 < words.Length ? words[at + 1].Split('/')[0] : null)
                .Select(text => IPAddress.TryParse(text, out IPAddress? address) ? address : null)
                .OfType<IPAddress>(),
        ];
    }

    // One process at a time picks addresses and names, so two emulations never take the same /30.
    private static async Task<FileStream> LockAsync(CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            try
            {
                return new FileStream(s_lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (!deadline.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), deadline.Token).ConfigureAwait(false);
            }
        }
    }

    private static async Task<string> RunAsync(IReadOnlyList<string> command, ILogger logger, CancellationToken cancellationToken)
    {
        string program = FindTool(command[0]) ?? throw new FileNotFoundException(Unavailable() ?? $"{command[0]} is missing");
        await using ChildProcess process = await ChildProcess.StartAsync(program, command.Skip(1), logger, keepStandardOutput: true).ConfigureAwait(false);
        try
        {
            return await process.WaitForSuccessAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (LlamaException ex)
        {
            throw new IOException($"'{string.Join(' ', command)}' failed: {ex.Message}", ex);
        }
    }

    private static string? FindTool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    private async Task StartServersAsync(CancellationToken cancellationToken)
    {
        string server = NativeLibraryLoader.ToolPath("ggml-rpc-server");
        string ip = FindTool("ip")!;
        foreach (EmulatedHostPlan host in Plan.Hosts)
        {
            foreach ((DeviceSpec device, int port) in host.Devices)
            {
                ChildProcess process = await ChildProcess.StartAsync(ip, EmulationPlan.ServerCommand(host, device, port, server), _logger).ConfigureAwait(false);
                _servers.Add(process);
                string endpoint = host.Endpoint(port);
                await process.WaitForPortAsync(host.HostAddress.ToString(), port, s_serverStartTimeout, cancellationToken).ConfigureAwait(false);
                StageServerInfo info = await StageEndpointCheck.ProbeAsync(endpoint, s_serverStartTimeout, cancellationToken).ConfigureAwait(false);
                StageEndpointCheck.Verify(info, device.Name, requiredBytes: 0);
                LogServer(_logger, device.Name, host.Host, endpoint, process.Id);
            }

            if (host.LatencyMs > 0)
            {
                LogNoLatency(_logger, host.Host, host.LatencyMs);
            }
        }
    }

    // The process is exiting without DisposeAsync: remove the namespaces synchronously; the servers die with it.
    private void TeardownOnExit()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (IReadOnlyList<string> command in Plan.TeardownCommands())
        {
            var start = new ProcessStartInfo(FindTool(command[0]) ?? command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string argument in command.Skip(1))
            {
                start.ArgumentList.Add(argument);
            }

            using Process? process = Process.Start(start);
            process?.WaitForExit(TimeSpan.FromSeconds(5));
        }
    }

    [LoggerMessage(EventId = 170, Level = LogLevel.Information, Message = "Stage server of {Device} on emulated host {Host} is up on {Endpoint} (pid {Pid})")]
    private static partial void LogServer(ILogger logger, string device, string host, string endpoint, int pid);

    [LoggerMessage(EventId = 171, Level = LogLevel.Warning, Message = "The link to emulated host {Host} declares {LatencyMs} ms of latency; tc tbf adds none (no netem), so each transfer is that much faster than the cost model says")]
    private static partial void LogNoLatency(ILogger logger, string host, double latencyMs);

    [LoggerMessage(EventId = 172, Level = LogLevel.Warning, Message = "Removed the stale {What} {Name}: its llmpq process is gone")]
    private static partial void LogStale(ILogger logger, string what, string name);

    [LoggerMessage(EventId = 173, Level = LogLevel.Debug, Message = "'{Command}' found nothing to remove: {Reason}")]
    private static partial void LogTeardown(ILogger logger, string command, string reason);

    [LoggerMessage(EventId = 174, Level = LogLevel.Warning, Message = "'{Command}' failed; remove it by hand (ip netns del): {Reason}")]
    private static partial void LogTeardownFailed(ILogger logger, string command, string reason);
}
