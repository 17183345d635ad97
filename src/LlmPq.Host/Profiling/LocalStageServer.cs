using System.Globalization;
using LlmPq.Planning;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Profiling;

/// <summary>
/// A CPU device of this machine as the pipeline serves it: a <c>ggml-rpc-server</c> of its own at the device's
/// threads on loopback, so that its profile holds what a stage costs in fact (ggml RPC's round trips, the graph
/// sent each step), not only the layers' arithmetic.
/// </summary>
internal static class LocalStageServer
{
    private const string Loopback = "127.0.0.1";

    /// <summary>Starts the stage server of <paramref name="device"/> and waits until it accepts connections.</summary>
    /// <param name="device">A CPU device without an endpoint.</param>
    /// <param name="logger">Logs the server's output.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The server (dispose it to stop it) and the device with the server's endpoint.</returns>
    public static async Task<(ChildProcess Server, DeviceSpec Device)> StartAsync(DeviceSpec device, ILogger logger, CancellationToken cancellationToken)
    {
        int port = LlmPq.Loopback.FreePort();
        ChildProcess server = await StageServerProcess.StartAsync("CPU", device.Threads ?? 0, Loopback, port, Loopback, TimeSpan.FromSeconds(60), logger, cancellationToken).ConfigureAwait(false);
        return (server, device with { Endpoint = string.Create(CultureInfo.InvariantCulture, $"{Loopback}:{port}") });
    }
}
