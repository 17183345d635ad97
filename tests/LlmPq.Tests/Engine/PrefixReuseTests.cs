using System.Diagnostics.Metrics;
using System.Text;
using LlmPq.Engine;
using LlmPq.Native;
using LlmPq.Stages;
using LlmPq.Tests.Chat;
using LlmPq.Tests.Stages;

namespace LlmPq.Tests.Engine;

/// <summary>Prefix reuse on a real engine: what is reused, what it answers, and what is evicted.</summary>
[Collection(NativeTests.Name)]
public sealed class PrefixReuseTests
{
    private const string Story = "Once upon a time a keeper lived in a lighthouse on a rock far out at sea. Every night he climbed the stairs, lit the lamp, wound the clockwork and watched the ships pass by the reef until the morning came. In winter the waves broke over the gallery, the wind shook the windows, and the gulls sheltered on the stairs below him while he wrote the weather in his book.";

    [Fact]
    public async Task The_same_request_twice_reuses_all_but_its_last_prompt_token_and_answers_as_without_reuse()
    {
        var reused = new List<long>();
        var computed = new List<long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == EngineMetrics.MeterName && instrument.Name.StartsWith("llmpq.engine.prompt_tokens.", StringComparison.Ordinal))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((i, value, tags, _) =>
        {
            if (tags.ToArray().Contains(new KeyValuePair<string, object?>("gen_ai.request.model", "prefix-reuse")))
            {
                (i.Name.EndsWith(".reused", StringComparison.Ordinal) ? reused : computed).Add(value);
            }
        });
        listener.Start();

        var answers = new Dictionary<bool, Result[]>();
        foreach (bool reuse in new[] { true, false })
        {
            await using LlmPqEngine engine = await ChatClientTests.StartAsync(o => (o.PrefixReuse, o.ModelId) = (reuse, reuse ? "prefix-reuse" : "no-prefix-reuse"));
            int[] prompt = Tokens(engine, Story);
            Assert.True(prompt.Length > 64, "the prompt must exceed the token budget");
            answers[reuse] = [await RunAsync(engine, prompt), await RunAsync(engine, prompt), await RunAsync(engine, prompt, cachePrompt: false)];
        }

        int length = answers[true][0].Finished.PromptTokens;
        Assert.Equal([0, length - 1, 0], answers[true].Select(r => r.Finished.CachedTokens));
        Assert.Equal([0, 0, 0], answers[false].Select(r => r.Finished.CachedTokens));
        Assert.Equal(answers[false].Select(r => r.Text), answers[true].Select(r => r.Text));
        Assert.All(answers[true], r => Assert.NotEmpty(r.Text));
        Assert.Equal([0, length - 1, 0], reused);
        Assert.Equal([length, 1, length], computed);
    }

    [Fact]
    public async Task A_changed_earlier_token_invalidates_exactly_the_suffix_after_it()
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        int[] first = Tokens(engine, Story);
        int[] changed = [.. first];
        changed[40] = first[41];
        Assert.NotEqual(first[40], changed[40]);

        await RunAsync(engine, first);
        Result second = await RunAsync(engine, changed);

        Assert.Equal(40, second.Finished.CachedTokens);
    }

    [Fact]
    public async Task A_request_reuses_the_idle_slot_sharing_the_longest_prefix()
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        int[] story = Tokens(engine, Story);
        int[] tail = Tokens(engine, " Then a storm came.", bos: false);
        Assert.NotEqual(story[30], tail[0]);
        Assert.NotEqual(story[60], tail[0]);

        // Together, so each runs in a slot of its own and leaves its cells there.
        await Task.WhenAll(RunAsync(engine, [.. story[..30], .. tail]), RunAsync(engine, [.. story[..60], .. tail]), RunAsync(engine, Tokens(engine, "Something else entirely.")));
        Result next = await RunAsync(engine, [.. story[..80], .. tail]);

        Assert.Equal(60, next.Finished.CachedTokens);
    }

    [Fact]
    public async Task With_a_shared_kv_cache_idle_caches_are_evicted_least_recently_used_first()
    {
        // Prompts of over 170 tokens: two of them with their outputs fit in the 512 cells, three do not.
        await using LlmPqEngine engine = await ChatClientTests.StartAsync(o => o.KvCacheTokens = 512);
        int[][] prompts = [Tokens(engine, $"North: {Story} {Story}"), Tokens(engine, $"South: {Story} {Story}"), Tokens(engine, $"East: {Story} {Story}")];
        Assert.All(prompts, p => Assert.InRange(p.Length, 170, 240));
        Assert.Equal(512, engine.KvCapacity);

        Result[] first = [await RunAsync(engine, prompts[0]), await RunAsync(engine, prompts[1]), await RunAsync(engine, prompts[2])];
        Result secondAgain = await RunAsync(engine, prompts[1]);
        Result firstAgain = await RunAsync(engine, prompts[0]);

        Assert.All(first, r => Assert.True(r.Finished.CachedTokens <= 1)); // at most the shared BOS
        Assert.Equal(prompts[1].Length - 1, secondAgain.Finished.CachedTokens);
        Assert.True(firstAgain.Finished.CachedTokens <= 1, $"the oldest cache was evicted, yet {firstAgain.Finished.CachedTokens} tokens were reused");
        Assert.InRange(engine.KvTokensInUse, 0, engine.KvCapacity);
    }

    [Fact]
    public async Task With_a_shared_kv_cache_a_request_shares_the_prefix_of_a_running_one()
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync(o => o.KvCacheTokens = 1024);
        int[] story = Tokens(engine, Story);
        int[] tail = Tokens(engine, " Then a storm came.", bos: false);
        Assert.NotEqual(story[60], tail[0]);

        // A long, sampled answer runs while the second request arrives; nothing finished has left cells to reuse.
        EngineStream running = engine.Submit(new EngineRequest(story, new SamplingSettings { Temperature = 0.8f, Seed = 5 }, 400, []), CancellationToken.None);
        Assert.True(await running.Events.WaitToReadAsync());
        Result next = await RunAsync(engine, [.. story[..60], .. tail]);

        Assert.Equal(60, next.Finished.CachedTokens);
        Assert.False(running.Events.Completion.IsCompleted, "the first request was meant to be still running");
    }

    [Fact]
    public async Task A_request_sharing_the_prefix_another_is_prefilling_waits_then_computes_only_the_rest_and_answers_as_without_sharing()
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        (int[] system, int[] leader, int[] follower) = SharedPrompts(engine);

        // A running decode keeps iterations within the budget, so the leader's prompt takes several of them.
        EngineStream background = StartBackground(engine);
        Task<Result> first = RunAsync(engine, leader);
        Task<Result> second = RunAsync(engine, follower);
        Result[] results = await Task.WhenAll(first, second);
        Result alone = await RunAsync(engine, follower, cachePrompt: false);

        Assert.True(results[0].Finished.CachedTokens <= 1, $"the leader reused {results[0].Finished.CachedTokens} tokens"); // at most the BOS
        Assert.Equal(system.Length + leader.Skip(system.Length).Zip(follower.Skip(system.Length)).TakeWhile(p => p.First == p.Second).Count(), results[1].Finished.CachedTokens);
        Assert.Equal(0, alone.Finished.CachedTokens);
        Assert.Equal(alone.Text, results[1].Text);
        Assert.False(background.Events.Completion.IsCompleted, "the background request was meant to be still running");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_request_waiting_for_a_prefix_completes_when_the_leader_or_itself_is_cancelled(bool cancelLeader)
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        (_, int[] leader, int[] follower) = SharedPrompts(engine);
        StartBackground(engine);

        using var cancel = new CancellationTokenSource();
        Task<Result> first = RunAsync(engine, leader, cancellationToken: cancelLeader ? cancel.Token : CancellationToken.None);
        Task<Result> second = RunAsync(engine, follower, cancellationToken: cancelLeader ? CancellationToken.None : cancel.Token);
        await cancel.CancelAsync();
        Task<Result> survivor = cancelLeader ? second : first;
        Result alone = await RunAsync(engine, cancelLeader ? follower : leader, cachePrompt: false);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelLeader ? first : second);
        Assert.Equal(alone.Text, (await survivor).Text);
        Assert.NotEmpty(alone.Text);
    }

    [Fact]
    public async Task Through_a_pipeline_stage_the_reused_request_answers_as_without_reuse()
    {
        (ChildProcess server, string endpoint) = await TestStageServer.StartAsync();
        await using (server)
        {
            var answers = new Dictionary<bool, Result[]>();
            foreach (bool reuse in new[] { true, false })
            {
                await using LlmPqEngine engine = await ChatClientTests.StartAsync(o =>
                {
                    o.PrefixReuse = reuse;
                    o.Stages.Add(new LlmPqStageOptions { InProcess = true, Layers = 2 });
                    o.Stages.Add(new LlmPqStageOptions { Endpoint = endpoint, Layers = 2 });
                });
                int[] prompt = Tokens(engine, Story);
                answers[reuse] = [await RunAsync(engine, prompt), await RunAsync(engine, prompt)];
            }

            Assert.Equal(answers[true][0].Finished.PromptTokens - 1, answers[true][1].Finished.CachedTokens);
            Assert.Equal(answers[false].Select(r => r.Text), answers[true].Select(r => r.Text));
        }
    }

    [Fact]
    public async Task Through_a_pipeline_stage_a_request_copies_the_prefix_another_is_prefilling_and_answers_as_without_sharing()
    {
        (ChildProcess server, string endpoint) = await TestStageServer.StartAsync();
        await using (server)
        {
            await using LlmPqEngine engine = await ChatClientTests.StartAsync(o =>
            {
                o.Stages.Add(new LlmPqStageOptions { InProcess = true, Layers = 2 });
                o.Stages.Add(new LlmPqStageOptions { Endpoint = endpoint, Layers = 2 });
            });
            (int[] system, int[] leader, int[] follower) = SharedPrompts(engine);
            StartBackground(engine);

            Result[] results = await Task.WhenAll(RunAsync(engine, leader), RunAsync(engine, follower));
            Result alone = await RunAsync(engine, follower, cachePrompt: false);

            Assert.InRange(results[1].Finished.CachedTokens, system.Length, follower.Length - 1);
            Assert.Equal(alone.Text, results[1].Text);
        }
    }

    private static int[] Tokens(LlmPqEngine engine, string text, bool bos = true) => engine.Model.Tokenize(text, addSpecial: bos, parseSpecial: false);

    /// <summary>A shared prefix over four times the token budget and two prompts that start with it.</summary>
    private static (int[] System, int[] Leader, int[] Follower) SharedPrompts(LlmPqEngine engine)
    {
        int[] system = Tokens(engine, $"{Story} {Story} {Story}");
        Assert.InRange(system.Length, 256, 600);
        return (system, [.. system, .. Tokens(engine, " Then a storm came.", bos: false)], [.. system, .. Tokens(engine, " The ships kept away.", bos: false)]);
    }

    /// <summary>Starts a long sampled answer to an unrelated prompt, which keeps decoding while a test runs.</summary>
    private static EngineStream StartBackground(LlmPqEngine engine) =>
        engine.Submit(new EngineRequest(Tokens(engine, "Something else entirely."), new SamplingSettings { Temperature = 0.8f, Seed = 5 }, 400, []), CancellationToken.None);

    /// <summary>Runs a greedy request of up to eight tokens to its end.</summary>
    private static async Task<Result> RunAsync(LlmPqEngine engine, int[] prompt, bool cachePrompt = true, CancellationToken cancellationToken = default)
    {
        EngineStream stream = engine.Submit(new EngineRequest(prompt, new SamplingSettings { Temperature = 0 }, 8, [], cachePrompt), cancellationToken);
        var text = new StringBuilder();
        EngineEvent.Finished? finished = null;
        await foreach (EngineEvent e in stream.Events.ReadAllAsync(cancellationToken))
        {
            switch (e)
            {
                case EngineEvent.Text t:
                    text.Append(t.Delta);
                    break;
                case EngineEvent.Finished f:
                    finished = f;
                    break;
            }
        }

        return new Result(text.ToString(), finished!);
    }

    private sealed record Result(string Text, EngineEvent.Finished Finished);
}
