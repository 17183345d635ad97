using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using LlmPq.Host.Benchmarking;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Benchmarking;

/// <summary>Multi-turn conversations, shared prefixes and cached prompt tokens, against scripted targets.</summary>
public sealed class PrefixReuseTests
{
    [Fact]
    public async Task Each_turn_sends_the_earlier_messages_and_answers_when_the_answer_before_it_ended()
    {
        using var client = new EchoClient();
        BenchPrompt[] prompts =
        [
            new(new BenchRequest(0, TimeSpan.Zero, 5, 3), "a1") { FollowUps = ["a2", "a3"] },
            new(new BenchRequest(1, TimeSpan.FromMilliseconds(20), 5, 3), "b1") { FollowUps = ["b2", "b3"] },
        ];
        var counters = new LoadCounters();
        LoadRun run = await LoadGenerator.RunAsync(client, prompts, new ChatOptions(), counters, null, CancellationToken.None);

        Assert.Equal(0, run.NotSent);
        Assert.Equal(6, run.Timings.Count);
        Assert.Equal(6, counters.Sent);
        Assert.Equal(["a1"], client.Seen["a1"]);
        Assert.Equal(["a1", "answer to a1", "a2"], client.Seen["a2"]);
        Assert.Equal(["b1", "answer to b1", "b2", "answer to b2", "b3"], client.Seen["b3"]);

        Assert.Equal(2, run.Timings.Count(t => t.Turn == 1));
        foreach (RequestTiming first in run.Timings.Where(t => t.Turn == 1))
        {
            // Each later turn arrives when the one before it ended.
            RequestTiming second = run.Timings.Single(t => t.Turn == 2 && t.Arrival == first.End);
            RequestTiming[] turns = [first, second, run.Timings.Single(t => t.Turn == 3 && t.Arrival == second.End)];

            // The echo target counts one token per message: a turn adds its answer and its new message.
            Assert.Equal([1, 3, 5], turns.Select(t => t.PromptTokens));
            Assert.Equal([1, 2, 2], turns.Select(t => t.NewPromptTokens));
        }

        LoadResult result = LoadResult.From(run);
        Assert.Equal(6, result.Completed);
        Assert.Equal(3, result.TtftP50MsByTurn!.Count);
        Assert.Equal(18, result.PromptTokensSent);
        Assert.Equal(10, result.PromptTokensNew);
        Assert.Equal(6, result.PromptTokensComputed);   // the echo target computes only each request's newest message
    }

    [Fact]
    public async Task A_turn_that_fails_ends_its_conversation_and_its_later_turns_count_as_not_sent()
    {
        using var client = new EchoClient(failOn: "a2");
        BenchPrompt[] prompts = [new(new BenchRequest(0, TimeSpan.Zero, 5, 3), "a1") { FollowUps = ["a2", "a3", "a4"] }];
        LoadRun run = await LoadGenerator.RunAsync(client, prompts, new ChatOptions(), null, null, CancellationToken.None);
        Assert.Equal([RequestOutcome.Completed, RequestOutcome.Failed], run.Timings.Select(t => t.Outcome));
        Assert.Equal(2, run.NotSent);
        Assert.False(client.Seen.ContainsKey("a3"));
    }

    [Fact]
    public async Task A_capacity_search_sends_no_prompt_twice_but_repeats_the_prefix_within_a_probe()
    {
        // SLOs nothing misses: the search doubles the rate at every probe until it runs out of probes.
        static int Count(string text) => 4 + text.Split(' ', '\n').Count(w => w.Length > 0);
        BenchRequest[] workload = [.. Enumerable.Range(0, 4).Select(i => new BenchRequest(i, TimeSpan.Zero, 24, 2))];
        var source = new PromptSource(Count, workload, new ConversationShape(2, 16), seed: 1);
        var settings = new MeasureSettings(Warmup: 2, TimeLimit: null, Capacity: true, TbtSloMs: 1e9, DelaySloMs: 1e9, Precision: 0.5, Probes: 3, Seed: 1, StartQps: 200);
        using var client = new EchoClient();
        LoadResult result = await TargetMeasurement.MeasureAsync(client, "echo", null, source, null, settings, CancellationToken.None);

        Assert.Equal(3, result.Capacity!.Probes.Count);
        Assert.Equal(client.Requests.Count, client.Requests.Select(r => r[^1]).Distinct().Count());   // no message sent twice as the newest

        // 2 warm-up requests, 2 idle tries and 3 probes of 4 conversations of 2 turns: 7 prefixes, one per round.
        string[] firsts = [.. client.Requests.Select(r => r[0]).Distinct()];
        Assert.Equal(2 + 2 + (3 * 4), firsts.Length);
        Assert.Equal(2 + 2 + 3, firsts.Select(f => f[..f.IndexOf('\n', StringComparison.Ordinal)]).Distinct().Count());
    }

    [Fact]
    public void Without_cached_counts_from_every_request_nothing_is_said_about_computed_tokens()
    {
        RequestTiming Timing(long? cached) => new(TimeSpan.Zero, [TimeSpan.FromMilliseconds(1)], TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(2), 100, 1, RequestOutcome.Completed, null) { NewPromptTokens = 40, CachedPromptTokens = cached };
        LoadResult some = LoadResult.From(new LoadRun([Timing(60), Timing(null)], 0, TimeSpan.FromSeconds(1)));
        Assert.Null(some.PromptTokensComputed);
        Assert.Null(some.TtftP50MsByTurn);
        Assert.Equal((200, 80), (some.PromptTokensSent, some.PromptTokensNew));
        Assert.Equal(80, LoadResult.From(new LoadRun([Timing(60), Timing(60)], 0, TimeSpan.FromSeconds(1))).PromptTokensComputed);
    }

    [Theory]
    [InlineData("""{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":90,"completion_tokens":2,"total_tokens":92,"prompt_tokens_details":{"cached_tokens":64}}}""", 64)]
    [InlineData("""{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":90,"completion_tokens":2,"total_tokens":92}}""", null)]
    public async Task The_bench_target_reads_the_cached_prompt_tokens_a_server_reports_through_the_OpenAI_SDK(string usage, int? cached)
    {
        string body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
            + "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
            + $"data: {usage}\n\n"
            + "data: [DONE]\n\n";
        var handler = new FixedResponse(body);
        using var http = new HttpClient(handler);
        using IChatClient client = OpenAITarget.Create(http, new Uri("http://localhost/"), "m");
        ChatResponse response = await client.GetStreamingResponseAsync("hello").ToChatResponseAsync();
        Assert.Equal("hi", response.Text);
        Assert.Equal(90, response.Usage!.InputTokenCount);
        Assert.Equal((long?)cached, response.Usage.CachedInputTokenCount);
        Assert.Equal("/v1/chat/completions", handler.LastPath);
    }

    /// <summary>
    /// Answers "answer to X" for the last message X; counts one prompt token per message and reports all but the newest
    /// message as cached, in a usage part of its own (as llama-server's timings can come).
    /// </summary>
    private sealed class EchoClient(string? failOn = null) : IChatClient
    {
        public ConcurrentDictionary<string, string[]> Seen { get; } = new();

        public ConcurrentQueue<string[]> Requests { get; } = new();

        public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            ChatMessage[] all = [.. messages];
            string last = all[^1].Text;
            Seen[last] = [.. all.Select(m => m.Text)];
            Requests.Enqueue(Seen[last]);
            if (last == failOn)
            {
                throw new HttpRequestException("refused");
            }

            await Task.Delay(5, cancellationToken);
            yield return new ChatResponseUpdate(ChatRole.Assistant, "answer to " + last);
            yield return new ChatResponseUpdate
            {
                FinishReason = ChatFinishReason.Stop,
                Contents = { new UsageContent(new UsageDetails { InputTokenCount = all.Length, OutputTokenCount = 1 }) },
            };
            yield return new ChatResponseUpdate { Contents = { new UsageContent(new UsageDetails { CachedInputTokenCount = all.Length - 1 }) } };
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }

    private sealed class FixedResponse(string body) : HttpMessageHandler
    {
        public string? LastPath { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            LastPath = request.RequestUri!.AbsolutePath;
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(body))) { Headers = { ContentType = new("text/event-stream") } } });
        }
    }
}
