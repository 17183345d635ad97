using System.Diagnostics;
using LlmPq.Engine;
using LlmPq.Runner;
using LlmPq.Stages;
using LlmPq.Tests.Chat;
using LlmPq.Tests.Stages;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Runner;

/// <summary>The engine in a runner process over supervised stage servers: same answers, and a stage's death is survived.</summary>
[Collection(NativeTests.Name)]
public sealed class PipelineTests
{
    private static readonly ChatOptions s_greedy = new() { Temperature = 0, MaxOutputTokens = 12 };

    [Fact]
    public async Task A_pipeline_answers_as_the_engine_in_process_does()
    {
        string[] prompts = ["Tell me about lighthouses.", "How is bread made?"];
        LlmPqOptions inProcess = Options();
        string[] expected;
        await using (var engine = new LlmPqEngine(inProcess))
        {
            await engine.StartAsync();
            using var client = new LlmPqChatClient(engine, inProcess);
            expected = [.. (await Task.WhenAll(prompts.Select(p => client.GetResponseAsync(p, s_greedy)))).Select(r => r.Text)];
        }

        // Two local servers; and the first stage in the runner's own process, the rest on a server.
        foreach (LlmPqOptions options in new[] { Options(Local(2), Local(2)), Options(new LlmPqStageOptions { InProcess = true, Layers = 1 }, Local(3)) })
        {
            await using var pipeline = new LlmPqPipeline(options);
            await pipeline.StartAsync();
            using var piped = new LlmPqChatClient(pipeline);
            ChatResponse[] answers = await Task.WhenAll(prompts.Select(p => piped.GetResponseAsync(p, s_greedy)));

            Assert.Equal(expected, answers.Select(r => r.Text));
            Assert.All(answers, r => Assert.Equal(ChatFinishReason.Length, r.FinishReason));
            Assert.Equal(options.Stages.Count(s => !s.InProcess), pipeline.Stages.Count);
            Assert.All(pipeline.Stages, s => Assert.Equal(StageState.Up, s.State));
        }
    }

    [Fact]
    public async Task A_pipeline_request_is_a_genai_span_in_the_serving_process_with_its_usage()
    {
        using var spans = new ChatSpans(nameof(PipelineTests));
        LlmPqOptions options = Options(Local(4));
        await using var pipeline = new LlmPqPipeline(options);
        await pipeline.StartAsync();
        using var client = new LlmPqChatClient(pipeline);

        // The runner process traces too, but only this process's listener counts.
        ChatResponse response;
        ActivityTraceId trace;
        using (Activity parent = spans.StartTrace())
        {
            trace = parent.TraceId;
            response = await client.GetResponseAsync("Trace me.", s_greedy);
        }

        Activity span = Assert.Single(spans.Of(trace));
        Assert.Equal($"chat {pipeline.ModelId}", span.DisplayName);
        Assert.Equal("llmpq", span.GetTagItem("gen_ai.provider.name"));
        Assert.Equal((int)response.Usage!.OutputTokenCount!.Value, span.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal([response.FinishReason!.Value.Value], (string[])span.GetTagItem("gen_ai.response.finish_reasons")!);
        Assert.NotEqual(ActivityStatusCode.Error, span.Status);
    }

    [Fact]
    public async Task Killing_a_stage_mid_generation_fails_that_request_and_the_next_one_succeeds()
    {
        LlmPqOptions options = Options(Local(1), Local(2), Local(1));
        await using var pipeline = new LlmPqPipeline(options);
        await pipeline.StartAsync();
        using var client = new LlmPqChatClient(pipeline);
        int runner = pipeline.RunnerProcessId!.Value;
        ProcessTable.Entry runnerEntry = ProcessTable.Read(runner)!;
        ProcessTable.Entry stage = ProcessTable.Read(pipeline.Stages[1].ProcessId!.Value)!;

        var received = new List<ChatResponseUpdate>();
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(2)); // against a hang, not a timing check
        var error = await Assert.ThrowsAsync<LlmPqUnavailableException>(async () =>
        {
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Tell me a long story.", new ChatOptions { Temperature = 0, MaxOutputTokens = 100_000 }, guard.Token))
            {
                received.Add(update);
                if (received.Count == 3)
                {
                    System.Diagnostics.Process.GetProcessById(stage.Pid).Kill();
                }
            }
        });

        Assert.False(guard.IsCancellationRequested, "the request hung instead of failing");
        Assert.Contains("restarting", error.Message, StringComparison.Ordinal);
        Assert.True(received.Count >= 3);
        Assert.True(ProcessTable.WaitUntilGone(runnerEntry), "the runner holding the lost stage is replaced");

        ChatResponse next = await client.GetResponseAsync("Are you back?", s_greedy, guard.Token);

        Assert.NotEmpty(next.Text);
        Assert.NotEqual(runner, pipeline.RunnerProcessId);
        Assert.True(pipeline.Stages[1].Restarts >= 1);
    }

    [Fact]
    public async Task Stopping_the_pipeline_leaves_no_process_behind()
    {
        LlmPqOptions options = Options(Local(2), Local(2));
        var pipeline = new LlmPqPipeline(options);
        await pipeline.StartAsync();
        ProcessTable.Entry[] processes = [ProcessTable.Read(pipeline.RunnerProcessId!.Value)!, .. pipeline.Stages.Select(s => ProcessTable.Read(s.ProcessId!.Value)!)];

        await pipeline.DisposeAsync();

        Assert.All(processes, p => Assert.True(ProcessTable.WaitUntilGone(p), $"{p.Command} ({p.Pid}) survived"));
        using var client = new LlmPqChatClient(pipeline);
        await Assert.ThrowsAsync<LlmPqUnavailableException>(() => client.GetResponseAsync("Hello?", s_greedy));
    }

    private static LlmPqStageOptions Local(int layers) => new() { Layers = layers, Threads = 1 };

    private static LlmPqOptions Options(params LlmPqStageOptions[] stages)
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 512, MaxSequences = 2, TokenBudget = 64, Threads = 2 };
        foreach (LlmPqStageOptions stage in stages)
        {
            options.Stages.Add(stage);
        }

        return options;
    }
}
