using LlmPq.Engine;
using LlmPq.Native;
using LlmPq.Stages;
using LlmPq.Tests.Stages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Native;

/// <summary>A stage server of the same build, reached through the RPC registry entry of the binding.</summary>
[Collection(NativeTests.Name)]
public sealed class RpcTests
{
    [Fact]
    public async Task A_model_on_an_rpc_stage_generates_what_it_generates_in_process()
    {
        (ChildProcess server, string endpoint) = await TestStageServer.StartAsync();
        await using ChildProcess stage = server;

        IReadOnlyList<BackendDevice> devices = BackendDevice.AddRpcServer(endpoint);
        BackendDevice remote = Assert.Single(devices);
        Assert.Contains(endpoint, remote.Description, StringComparison.Ordinal);
        Assert.True(remote.TotalBytes > 0);

        int[] local = GenerateGreedy(new LlamaModelLoadOptions { GpuLayers = 0 });
        var sink = new ListLoggerProvider();
        int[] viaRpc;
        using (var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink)))
        {
            LlamaBackend.EnsureInitialized(factory);
            viaRpc = GenerateGreedy(new LlamaModelLoadOptions { Devices = [remote], GpuLayers = -1 });
            LlamaBackend.EnsureInitialized(NullLoggerFactory.Instance);
        }

        // The weights really went to the stage: llama.cpp reports a model buffer on the server's buffer type, which
        // names the endpoint (the device's own name counts every server this process has seen).
        Assert.Contains(sink.Lines, l => l.Message.Contains(endpoint, StringComparison.Ordinal) && l.Message.Contains("model buffer size", StringComparison.Ordinal));
        Assert.NotEmpty(local);
        Assert.Equal(local, viaRpc);
    }

    [Fact]
    public void An_unreachable_stage_server_is_a_managed_error_not_an_abort()
    {
        int port = Loopback.FreePort(); // nothing listens there
        LlamaException ex = Assert.Throws<LlamaException>(() => BackendDevice.AddRpcServer($"127.0.0.1:{port}", TimeSpan.FromSeconds(2)));
        Assert.Contains($"127.0.0.1:{port}", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("127.0.0.1:notaport")]
    [InlineData(":50052")]
    public void A_malformed_endpoint_is_rejected(string endpoint) =>
        Assert.Throws<ArgumentException>(() => BackendDevice.AddRpcServer(endpoint));

    private static int[] GenerateGreedy(LlamaModelLoadOptions load)
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small, load);
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 256, Threads = 2 });
        using var sampler = new LlamaSampler(model, new SamplingSettings());
        int[] prompt = model.Tokenize("Pipelines split layers", addSpecial: true, parseSpecial: false);
        return [.. SingleSequenceGenerator.Generate(context, sampler, prompt, 16).Tokens];
    }
}
