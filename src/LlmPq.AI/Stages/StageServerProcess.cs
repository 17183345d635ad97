using LlmPq.Native;
using Microsoft.Extensions.Logging;

namespace LlmPq.Stages;

/// <summary>Starts a stage's <c>ggml-rpc-server</c> and waits until it accepts connections, as every local stage does.</summary>
internal static class StageServerProcess
{
    /// <summary>
    /// Starts <c>ggml-rpc-server</c> with <see cref="LocalStageOptions.ServerArguments"/> and waits until its port
    /// accepts connections; a server that does not in time is stopped, and the wait's error thrown.
    /// </summary>
    /// <param name="device">The ggml device, or null or empty for the server's default.</param>
    /// <param name="threads">The CPU threads, or 0 for the server's default.</param>
    /// <param name="host">The address to listen on.</param>
    /// <param name="port">The port.</param>
    /// <param name="connectHost">The address to check the port at (<paramref name="host"/> cannot be 0.0.0.0 there).</param>
    /// <param name="timeout">How long the server may take to accept connections.</param>
    /// <param name="logger">Logs the server's output.</param>
    /// <param name="cancellationToken">Stops waiting (and the server).</param>
    /// <param name="server">The server's path; null for the native build's.</param>
    /// <returns>The running server; dispose it to stop it.</returns>
    public static async Task<ChildProcess> StartAsync(string? device, int threads, string host, int port, string connectHost, TimeSpan timeout, ILogger logger, CancellationToken cancellationToken, string? server = null)
    {
        IReadOnlyList<string> arguments = LocalStageOptions.ServerArguments(device, threads, host, port);
        ChildProcess process = await ChildProcess.StartAsync(server ?? NativeLibraryLoader.ToolPath("ggml-rpc-server"), arguments, logger).ConfigureAwait(false);
        try
        {
            await process.WaitForPortAsync(connectHost, port, timeout, cancellationToken).ConfigureAwait(false);
            return process;
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
