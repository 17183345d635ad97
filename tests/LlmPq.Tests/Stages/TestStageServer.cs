using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Stages;

/// <summary>A <c>ggml-rpc-server</c> of the native build on a free loopback port, for tests that need a real stage.</summary>
public static class TestStageServer
{
    /// <summary>Starts one and waits until its port accepts connections.</summary>
    internal static async Task<(ChildProcess Server, string Endpoint)> StartAsync(string? device = null, double startSeconds = 30)
    {
        int port = Loopback.FreePort();
        ChildProcess server = await ChildProcess.StartAsync(
            NativeLibraryLoader.ToolPath("ggml-rpc-server"), LocalStageOptions.ServerArguments(device, threads: 1, "127.0.0.1", port), NullLogger.Instance);
        await server.WaitForPortAsync("127.0.0.1", port, TimeSpan.FromSeconds(startSeconds), CancellationToken.None);
        return (server, $"127.0.0.1:{port}");
    }
}
