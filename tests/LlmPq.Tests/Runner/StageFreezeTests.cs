using System.Diagnostics;
using System.Globalization;
using LlmPq.Engine;
using LlmPq.Runner;
using LlmPq.Stages;
using LlmPq.Tests.Stages;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Runner;

/// <summary>
/// The pipeline's watchdog: a stage server stopped with SIGSTOP (as a hung driver, a swapped-out host or a partition
/// look) fails the requests in flight as unavailable instead of hanging them, and the pipeline recovers.
/// </summary>
[Collection(NativeTests.Name)]
public sealed class StageFreezeTests
{
    private static readonly ChatOptions s_short = new() { Temperature = 0, MaxOutputTokens = 12 };
    private static readonly ChatOptions s_long = new() { Temperature = 0, MaxOutputTokens = 100_000 };

    [Fact]
    public async Task A_frozen_local_stage_fails_the_request_in_flight_and_is_replaced_so_the_next_request_is_served()
    {
        await using var pipeline = new LlmPqPipeline(Options(Local(1), Local(2), Local(1)));
        await pipeline.StartAsync();
        using var client = new LlmPqChatClient(pipeline);
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(3)); // against a hang, not a timing check
        await client.GetResponseAsync("Warm up.", s_short, guard.Token); // past the warm-up iterations, which run under the ceiling
        int runner = pipeline.RunnerProcessId!.Value;
        ProcessTable.Entry frozen = ProcessTable.Read(pipeline.Stages[1].ProcessId!.Value)!;
        try
        {
            LlmPqUnavailableException error = await Assert.ThrowsAsync<LlmPqUnavailableException>(() => StreamUntilFrozenAsync(client, frozen.Pid, guard.Token));

            Assert.False(guard.IsCancellationRequested, "the request hung instead of failing");
            Assert.Contains("watchdog", error.Message, StringComparison.Ordinal);
            Assert.True(ProcessTable.WaitUntilGone(frozen), "the frozen stage server is replaced");

            ChatResponse next = await client.GetResponseAsync("Are you back?", s_short, guard.Token);

            Assert.NotEmpty(next.Text);
            Assert.NotEqual(runner, pipeline.RunnerProcessId);
            Assert.NotEqual(frozen.Pid, pipeline.Stages[1].ProcessId);
            Assert.True(pipeline.Stages[1].Restarts >= 1);
            Assert.Contains("stopped answering", pipeline.Stages[1].LastFailure, StringComparison.Ordinal);
        }
        finally
        {
            Signal("-CONT", frozen.Pid);
        }
    }

    [Fact]
    public async Task A_frozen_remote_stage_fails_the_request_and_the_pipeline_is_unhealthy_until_the_stage_answers_again()
    {
        (ChildProcess remote, string endpoint) = await TestStageServer.StartAsync();
        await using (remote)
        {
            await using var pipeline = new LlmPqPipeline(Options(Local(2), new LlmPqStageOptions { Endpoint = endpoint, Layers = 2 }));
            await pipeline.StartAsync();
            using var client = new LlmPqChatClient(pipeline);
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await client.GetResponseAsync("Warm up.", s_short, guard.Token);
            bool stopped = false;
            try
            {
                stopped = true;
                LlmPqUnavailableException error = await Assert.ThrowsAsync<LlmPqUnavailableException>(() => StreamUntilFrozenAsync(client, remote.Id, guard.Token));

                // A remote stage cannot be replaced from here: the pipeline stays unhealthy (what /health reports) while it is frozen.
                Assert.False(guard.IsCancellationRequested, "the request hung instead of failing");
                Assert.Contains("watchdog", error.Message, StringComparison.Ordinal);
                Assert.False(client.IsReady);
                Assert.False(pipeline.IsReady);

                Signal("-CONT", remote.Id);
                stopped = false;
                ChatResponse next = await client.GetResponseAsync("Are you back?", s_short, guard.Token);

                Assert.NotEmpty(next.Text);
                Assert.True(pipeline.IsReady);
            }
            finally
            {
                if (stopped)
                {
                    Signal("-CONT", remote.Id);
                }
            }
        }
    }

    [Fact]
    public async Task The_engine_in_process_is_not_ready_and_refuses_requests_while_a_remote_stage_is_frozen_and_resumes_after()
    {
        (ChildProcess remote, string endpoint) = await TestStageServer.StartAsync();
        await using (remote)
        {
            LlmPqOptions options = Options(new LlmPqStageOptions { InProcess = true, Layers = 2 }, new LlmPqStageOptions { Endpoint = endpoint, Layers = 2 });
            await using var engine = new LlmPqEngine(options);
            await engine.StartAsync();
            using var client = new LlmPqChatClient(engine, options);
            using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await client.GetResponseAsync("Warm up.", s_short, guard.Token);
            bool stopped = true;
            try
            {
                // The loop thread blocks in llama_decode until the stage answers; nothing can interrupt it in process.
                Task inFlight = StreamUntilFrozenAsync(client, remote.Id, guard.Token);
                while (engine.IsReady && !guard.IsCancellationRequested)
                {
                    await Task.Delay(100, CancellationToken.None);
                }

                Assert.False(engine.IsReady, "the engine stayed ready with its iteration stuck");
                LlmPqUnavailableException refused = await Assert.ThrowsAsync<LlmPqUnavailableException>(() => client.GetResponseAsync("Anyone there?", s_short, guard.Token));
                Assert.Contains("stuck", refused.Message, StringComparison.Ordinal);
                Assert.False(inFlight.IsCompleted);

                Signal("-CONT", remote.Id);
                stopped = false;
                await inFlight;

                Assert.True(engine.IsReady);
                Assert.NotEmpty((await client.GetResponseAsync("Are you back?", s_short, guard.Token)).Text);
            }
            finally
            {
                if (stopped)
                {
                    Signal("-CONT", remote.Id);
                }
            }
        }
    }

    /// <summary>Streams a long answer and stops <paramref name="pid"/> with SIGSTOP once tokens flow; returns only if the answer ends.</summary>
    private static async Task StreamUntilFrozenAsync(LlmPqChatClient client, int pid, CancellationToken cancellationToken)
    {
        int received = 0;
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Tell me a long story.", s_long, cancellationToken))
        {
            if (++received == 3)
            {
                Signal("-STOP", pid);
            }
        }
    }

    private static void Signal(string signal, int pid)
    {
        using Process kill = Process.Start("kill", [signal, pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    private static LlmPqStageOptions Local(int layers) => new() { Layers = layers, Threads = 1 };

    private static LlmPqOptions Options(params LlmPqStageOptions[] stages)
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 512, MaxSequences = 2, TokenBudget = 64, Threads = 2 };
        options.Watchdog.DeadlineFloor = TimeSpan.FromSeconds(3);
        options.Watchdog.DeadlineCeiling = TimeSpan.FromSeconds(20);
        foreach (LlmPqStageOptions stage in stages)
        {
            options.Stages.Add(stage);
        }

        return options;
    }
}
