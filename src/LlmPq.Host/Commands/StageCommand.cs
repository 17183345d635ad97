using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq stage</c>: the stage server of one device of this machine, for a coordinator on another machine.</summary>
internal static class StageCommand
{
    /// <summary>The flag that lets the server listen beyond loopback, naming what that exposes.</summary>
    public const string ExposeFlag = "--expose-unauthenticated-rpc";

    public static Command Create()
    {
        var device = new Option<string?>("--device", "-d") { Description = "The ggml device the server owns, such as CPU or CUDA0 (default: every GPU, else the CPU). One server per device." };
        var host = new Option<string>("--host") { Description = $"IPv4 address to listen on; anything but loopback also needs {ExposeFlag}.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port", "-p") { Description = "Port to listen on (0: a free one).", DefaultValueFactory = _ => 50052 };
        var threads = new Option<int>("--threads", "-t") { Description = "Threads of a CPU device (0: the server's default, half the cores).", DefaultValueFactory = _ => 0 };
        var expose = new Option<bool>(ExposeFlag)
        {
            Description = "Listen on a non-loopback --host although the RPC protocol has no authentication: whoever reaches the port can run code in the server. Only on a network you trust.",
        };
        var command = new Command("stage", "Run the stage server (ggml-rpc-server of this build) of one device until Ctrl+C; prints its endpoint on standard output.")
        {
            device, host, port, threads, expose,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            string address = parse.GetValue(host)!;
            bool loopback = CheckListenAddress(address, parse.GetValue(expose));
            int requestedPort = parse.GetValue(port);
            int cpuThreads = parse.GetValue(threads);
            if (requestedPort is < 0 or > 65535)
            {
                throw new ArgumentException($"--port {requestedPort} is not a port; give 0 (a free one) to 65535.");
            }

            if (cpuThreads < 0)
            {
                throw new ArgumentException("--threads is 0 (the server's default) or more.");
            }

            int listenPort = requestedPort == 0 ? Loopback.FreePort() : requestedPort;
            string endpoint = string.Create(CultureInfo.InvariantCulture, $"{address}:{listenPort}");
            string probeHost = address == IPAddress.Any.ToString() ? "127.0.0.1" : address; // 0.0.0.0 is not an address to connect to

            using ILoggerFactory loggers = Cli.CreateLoggerFactory(parse);
            await using ChildProcess server = await StageServerProcess.StartAsync(parse.GetValue(device), cpuThreads, address, listenPort, probeHost, TimeSpan.FromSeconds(60), loggers.CreateLogger("LlmPq.Stage"), ct).ConfigureAwait(false);
            StageServerInfo info = await StageEndpointCheck.ProbeAsync(string.Create(CultureInfo.InvariantCulture, $"{probeHost}:{listenPort}"), TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            StageEndpointCheck.Verify(info, "this stage", requiredBytes: 0);

            StageDeviceMemory memory = info.Devices[0];
            Console.WriteLine(endpoint);
            await Console.Error.WriteLineAsync(string.Create(
                CultureInfo.InvariantCulture,
                $"llmpq: stage server on {endpoint} (ggml-rpc-server pid {server.Id}, RPC protocol {info.Protocol}, {memory.FreeBytes >> 20} MiB free of {memory.TotalBytes >> 20} MiB); Ctrl+C stops it")).ConfigureAwait(false);
            if (!loopback)
            {
                await Console.Error.WriteLineAsync($"llmpq: warning: {endpoint} takes unauthenticated RPC from anyone who reaches it; keep it on a network you trust.").ConfigureAwait(false);
            }

            try
            {
                int code = await server.Exited.WaitAsync(ct).ConfigureAwait(false);
                throw new LlamaException(string.Create(CultureInfo.InvariantCulture, $"ggml-rpc-server exited with code {code}. Its last output:{Environment.NewLine}{server.LastOutput}"));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync("llmpq: stage server stopped").ConfigureAwait(false);
                return 0;
            }
        }));
        return command;
    }

    /// <summary>Refuses an address the server cannot take, and a non-loopback one unless <paramref name="exposed"/>.</summary>
    /// <param name="address">The <c>--host</c> value.</param>
    /// <param name="exposed">Whether <see cref="ExposeFlag"/> was given.</param>
    /// <returns>Whether the address is a loopback one.</returns>
    /// <exception cref="ArgumentException">The address is refused; the message says what to do.</exception>
    internal static bool CheckListenAddress(string address, bool exposed)
    {
        if (!IPAddress.TryParse(address, out IPAddress? ip) || ip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"--host '{address}' is not an IPv4 address; ggml-rpc-server listens on IPv4 only (127.0.0.1, or 0.0.0.0 for every interface).");
        }

        bool loopback = IPAddress.IsLoopback(ip);
        if (!loopback && !exposed)
        {
            throw new ArgumentException(
                $"refusing to listen on {address}: ggml's RPC protocol has no authentication, so whoever reaches the port can run code in the stage server. " +
                $"Keep it on 127.0.0.1 and reach it through an SSH tunnel (ssh -L PORT:127.0.0.1:PORT HOST), or, on a network you trust, add {ExposeFlag}.");
        }

        return loopback;
    }
}
