using System.Diagnostics;
using System.Globalization;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Native;
using LlmPq.Pipeline;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Engine;

/// <summary>The same model split across 1, 2 and 3 stages answers token for token the same.</summary>
[Collection(NativeTests.Name)]
public sealed class PipelineEquivalenceTests
{
    private static readonly ChatOptions s_greedy = new() { Temperature = 0, MaxOutputTokens = 12 };
    private static readonly string[] s_prompts = ["Tell me about lighthouses.", "Count the seals on the rocks.", "How is bread made?"];

    [Fact]
    public async Task Greedy_answers_are_identical_on_one_two_and_three_stages()
    {
        List<Process> servers = [.. Enumerable.Range(0, 3).Select(_ => StartServer())];
        try
        {
            string[] ep = [.. servers.Select(s => (string)s.StartInfo.Environment["LLMPQ_TEST_ENDPOINT"]!)];
            IReadOnlyList<string> reference = await AnswersAsync([]);
            (string Name, LlmPqStageOptions[] Stages)[] layouts =
            [
                ("1 in-process", [Stage(null, 4)]),
                ("2: in-process + server", [Stage(null, 2), Stage(ep[0], 2)]),
                ("2 servers", [Stage(ep[0], 3), Stage(ep[1], 1)]),
                ("3: in-process + 2 servers", [Stage(null, 1), Stage(ep[0], 2), Stage(ep[1], 1)]),
                ("3 servers", [Stage(ep[0], 1), Stage(ep[1], 1), Stage(ep[2], 2)]),
            ];

            foreach (var (name, stages) in layouts)
            {
                IReadOnlyList<string> answers = await AnswersAsync(stages);
                Assert.True(reference.SequenceEqual(answers), $"{name}: {string.Join(" | ", answers)} differs from {string.Join(" | ", reference)}");
            }

            Assert.All(reference, a => Assert.NotEmpty(a));
        }
        finally
        {
            servers.ForEach(s => s.Kill(entireProcessTree: true));
        }
    }

    [Fact]
    public async Task Pipeline_parallelism_can_be_turned_off_and_changes_no_answer()
    {
        List<Process> servers = [StartServer(), StartServer()];
        try
        {
            string[] ep = [.. servers.Select(s => (string)s.StartInfo.Environment["LLMPQ_TEST_ENDPOINT"]!)];
            var answers = new Dictionary<bool, IReadOnlyList<string>>();
            foreach (bool pipelined in new[] { true, false })
            {
                var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 256, MaxSequences = 3, TokenBudget = 64, MicroBatchSize = 16, Threads = 2, PipelineParallelism = pipelined };
                options.Stages.Add(Stage(ep[0], 2));
                options.Stages.Add(Stage(ep[1], 2));
                await using var engine = new LlmPqEngine(options);
                await engine.StartAsync();
                Assert.Equal(pipelined, engine.PipelineParallel);
                using var client = new LlmPqChatClient(engine, options);
                answers[pipelined] = [.. (await Task.WhenAll(s_prompts.Select(p => client.GetResponseAsync(p, s_greedy)))).Select(r => r.Text)];
            }

            Assert.Equal(answers[true], answers[false]);
        }
        finally
        {
            servers.ForEach(s => s.Kill(entireProcessTree: true));
        }
    }

    [Fact]
    public async Task Stages_that_do_not_cover_the_model_fail_the_start_clearly()
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 256, MaxSequences = 2, TokenBudget = 64, Threads = 2 };
        options.Stages.Add(Stage(null, 3));
        await using var engine = new LlmPqEngine(options);

        var error = await Assert.ThrowsAsync<ArgumentException>(() => engine.StartAsync());

        Assert.Contains("3 layers in all; the model has 4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_split_counts_the_output_layer_on_the_last_stage()
    {
        LlmPqStageOptions[] stages = [Stage(null, 1), Stage("127.0.0.1:1", 2), Stage("127.0.0.1:2", 5)];

        Assert.Equal([2f, 6f], LayerPlacement.Split(stages, firstInProcess: true));
        Assert.Equal(["CPU", "A", "A", "B", "B", "B", "B", "B", "B"], LayerPlacement.Expected(stages, ["CPU", "A", "B"]));
        Assert.Throws<ArgumentException>(() => LayerPlacement.Check([Stage("127.0.0.1:1", 4), Stage(null, 4)], 8));
        Assert.Throws<ArgumentException>(() => LayerPlacement.Check([Stage(null, 0), Stage("127.0.0.1:1", 8)], 8));
    }

    private static LlmPqStageOptions Stage(string? endpoint, int layers) => new() { Endpoint = endpoint, InProcess = endpoint is null, Layers = layers };

    private static async Task<IReadOnlyList<string>> AnswersAsync(LlmPqStageOptions[] stages)
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 256, MaxSequences = 3, TokenBudget = 64, Threads = 2 };
        foreach (LlmPqStageOptions stage in stages)
        {
            options.Stages.Add(stage);
        }

        await using var engine = new LlmPqEngine(options);
        await engine.StartAsync();
        using var client = new LlmPqChatClient(engine, options);
        ChatResponse[] responses = await Task.WhenAll(s_prompts.Select(p => client.GetResponseAsync(p, s_greedy)));
        return [.. responses.Select(r => r.Text)];
    }

    private static Process StartServer()
    {
        int port = Loopback.FreePort();
        var psi = new ProcessStartInfo(NativeLibraryLoader.ToolPath("ggml-rpc-server")) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "-H", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-t", "1" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["LLMPQ_TEST_ENDPOINT"] = $"127.0.0.1:{port}";
        Process p = Process.Start(psi)!;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        for (int i = 0; i < 100; i++)
        {
            try
            {
                using var tcp = new System.Net.Sockets.TcpClient("127.0.0.1", port);
                return p;
            }
            catch (System.Net.Sockets.SocketException)
            {
                Thread.Sleep(100);
            }
        }

        p.Kill();
        throw new InvalidOperationException("ggml-rpc-server did not start");
    }
}
