using LlmPq.Engine;
using LlmPq.Native;
using LlmPq.Stages;
using LlmPq.Tests.Stages;
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
        var servers = new List<ChildProcess>();
        try
        {
            string[] ep = await StartServersAsync(servers, 3);
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
            foreach (ChildProcess server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Pipeline_parallelism_can_be_turned_off_and_changes_no_answer()
    {
        var servers = new List<ChildProcess>();
        try
        {
            string[] ep = await StartServersAsync(servers, 2);
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
            foreach (ChildProcess server in servers)
            {
                await server.DisposeAsync();
            }
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
    public async Task A_stage_server_of_another_version_fails_the_start_instead_of_aborting()
    {
        await using var other = new FakeStageServer(new Version(6, 0, 0), [(1UL << 30, 1UL << 30)]);
        var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 256, MaxSequences = 2, TokenBudget = 64, Threads = 2 };
        options.Stages.Add(Stage(null, 2));
        options.Stages.Add(Stage(other.Endpoint, 2));
        await using var engine = new LlmPqEngine(options);

        var error = await Assert.ThrowsAsync<LlamaException>(() => engine.StartAsync());

        Assert.Contains(other.Endpoint, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 0, false, null, "Stages:1:Layers must be positive")]
    [InlineData(1, 2, true, null, "Stages:1:InProcess: only the first stage")]
    [InlineData(0, 2, true, "127.0.0.1:5", "Stages:0 is in-process and has an endpoint")]
    [InlineData(1, 2, false, "localhost", "Stages:1:Endpoint 'localhost' is not host:port")]
    public void Bad_stages_fail_the_options_validation_by_name(int index, int layers, bool inProcess, string? endpoint, string expected)
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small };
        options.Stages.Add(Stage(null, 2));
        options.Stages.Add(Stage("127.0.0.1:1", 2));
        options.Stages[index] = new LlmPqStageOptions { Layers = layers, InProcess = inProcess, Endpoint = endpoint };

        Microsoft.Extensions.Options.ValidateOptionsResult result = new LlmPqOptionsValidator().Validate(null, options);

        string failure = Assert.Single(result.Failures!);
        Assert.Contains(expected, failure, StringComparison.Ordinal);
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

    private static async Task<string[]> StartServersAsync(List<ChildProcess> servers, int count)
    {
        var endpoints = new string[count];
        for (int i = 0; i < count; i++)
        {
            (ChildProcess server, endpoints[i]) = await TestStageServer.StartAsync();
            servers.Add(server);
        }

        return endpoints;
    }
}
