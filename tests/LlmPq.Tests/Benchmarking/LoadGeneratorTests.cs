using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using LlmPq.Host.Benchmarking;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Benchmarking;

/// <summary>The open-loop sender against a scripted chat client: arrivals, outcomes, and stopping honestly.</summary>
public sealed class LoadGeneratorTests
{
    private static readonly ChatOptions s_options = new() { Temperature = 0 };

    private static BenchPrompt Prompt(int index, double arrivalMs, int output = 3) =>
        new(new BenchRequest(index, TimeSpan.FromMilliseconds(arrivalMs), 8, output), $"prompt {index}");

    [Fact]
    public async Task Every_request_is_sent_no_earlier_than_due_with_its_own_output_limit()
    {
        using var client = new ScriptedClient((_, _) => ["a", "b", "c"]);
        BenchPrompt[] prompts = [Prompt(0, 0, output: 2), Prompt(1, 30, output: 5), Prompt(2, 60, output: 1)];
        LoadRun run = await LoadGenerator.RunAsync(client, prompts, s_options, new LoadCounters(), null, CancellationToken.None);

        Assert.Equal(0, run.NotSent);
        Assert.All(run.Timings, t => Assert.Equal(RequestOutcome.Completed, t.Outcome));
        Assert.Equal([2, 5, 1], prompts.Select(p => client.Calls[p.Text].MaxOutputTokens!.Value));
        Assert.All(prompts, p => Assert.True(client.Calls[p.Text].SentAt >= p.Request.Arrival, $"{p.Text} sent before it was due"));
        Assert.All(run.Timings, t => Assert.Equal(3, t.Pieces.Count));
        Assert.All(run.Timings, t => Assert.Equal(3, t.OutputTokens));
        Assert.All(run.Timings, t => Assert.Equal(8, t.PromptTokens));
    }

    [Fact]
    public async Task At_the_time_limit_requests_in_flight_are_cut_off_and_later_ones_not_sent()
    {
        // Answers one piece, then never ends; the third request is due long after the limit.
        using var client = new ScriptedClient((_, _) => ["a"], hang: true);
        var counters = new LoadCounters();
        LoadRun run = await LoadGenerator.RunAsync(client, [Prompt(0, 0), Prompt(1, 0), Prompt(2, 600_000)], s_options, counters, TimeSpan.FromMilliseconds(300), CancellationToken.None);

        Assert.Equal(1, run.NotSent);
        Assert.Equal(2, run.Timings.Count);
        Assert.All(run.Timings, t => Assert.Equal(RequestOutcome.Cancelled, t.Outcome));
        Assert.All(run.Timings, t => Assert.Single(t.Pieces));
        Assert.All(run.Timings, t => Assert.NotNull(t.TimeToFirstToken));
        Assert.Equal((2, 0, 0, 2), (counters.Sent, counters.Completed, counters.Failed, counters.Cancelled));

        LoadResult result = LoadResult.From(run);
        Assert.Equal((3, 0, 0, 2, 1), (result.Requests, result.Completed, result.Failed, result.Cancelled, result.NotSent));
    }

    [Fact]
    public async Task Cancelling_the_run_returns_what_was_seen_instead_of_throwing()
    {
        using var client = new ScriptedClient((_, _) => [], hang: true);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        LoadRun run = await LoadGenerator.RunAsync(client, [Prompt(0, 0)], s_options, null, null, cts.Token);
        RequestTiming cut = Assert.Single(run.Timings);
        Assert.Equal(RequestOutcome.Cancelled, cut.Outcome);
        Assert.Null(cut.FirstResponse);
    }

    [Fact]
    public async Task A_failing_target_gives_failed_requests_with_the_error()
    {
        using var client = new ScriptedClient((text, _) => text == "prompt 1" ? throw new HttpRequestException("503 overloaded") : ["x"]);
        LoadRun run = await LoadGenerator.RunAsync(client, [Prompt(0, 0), Prompt(1, 0)], s_options, null, null, CancellationToken.None);
        LoadResult result = LoadResult.From(run);
        Assert.Equal((1, 1), (result.Completed, result.Failed));
        Assert.Equal(["503 overloaded"], result.Errors);
    }

    [Fact]
    public async Task An_answer_without_text_still_has_a_first_response()
    {
        using var client = new ScriptedClient((_, _) => []);
        LoadRun run = await LoadGenerator.RunConcurrentAsync(client, ["a", "b"], new ChatOptions { MaxOutputTokens = 4 }, CancellationToken.None);
        Assert.All(run.Timings, t => Assert.NotNull(t.TimeToFirstToken));
        Assert.All(run.Timings, t => Assert.Empty(t.Pieces));
    }

    /// <summary>Streams the scripted pieces and a final update with usage; with <c>hang</c>, never ends until cancelled.</summary>
    private sealed class ScriptedClient(Func<string, ChatOptions?, string[]> script, bool hang = false) : IChatClient
    {
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

        public ConcurrentDictionary<string, (TimeSpan SentAt, int? MaxOutputTokens)> Calls { get; } = new();

        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            string text = messages.Single().Text;
            Calls[text] = (_clock.Elapsed, options?.MaxOutputTokens);
            string[] pieces = script(text, options);
            foreach (string piece in pieces)
            {
                await Task.Yield();
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece);
            }

            if (hang)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            yield return new ChatResponseUpdate
            {
                FinishReason = ChatFinishReason.Stop,
                Contents = { new UsageContent(new UsageDetails { InputTokenCount = 8, OutputTokenCount = pieces.Length }) },
            };
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }
}
