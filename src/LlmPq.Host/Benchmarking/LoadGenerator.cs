using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Benchmarking;

/// <summary>How a request ended.</summary>
internal enum RequestOutcome
{
    /// <summary>The answer streamed to its end.</summary>
    Completed,

    /// <summary>The target refused it or failed while answering.</summary>
    Failed,

    /// <summary>The run stopped (time limit or Ctrl+C) before the answer ended.</summary>
    Cancelled,
}

/// <summary>A request ready to send: its place in the workload, its first message, and the messages of its later turns.</summary>
internal sealed record BenchPrompt(BenchRequest Request, string Text)
{
    /// <summary>Gets the user messages of turns 2, 3, …: each is sent after the answer to the one before, with all earlier messages and answers.</summary>
    public IReadOnlyList<string> FollowUps { get; init; } = [];

    /// <summary>Gets the tokens at the start of <see cref="Text"/> that every request of its round shares.</summary>
    public int SharedPrefixTokens { get; init; }

    /// <summary>Gets the turns of the conversation.</summary>
    public int Turns => 1 + FollowUps.Count;
}

/// <summary>
/// What one request saw, in time from the start of the run: when it was due to arrive, when each piece of text
/// came, when the first answer came (text, or the end of an answer without text), and when the stream ended or was cut off.
/// </summary>
internal sealed record RequestTiming(
    TimeSpan Arrival,
    IReadOnlyList<TimeSpan> Pieces,
    TimeSpan? FirstResponse,
    TimeSpan End,
    long PromptTokens,
    long OutputTokens,
    RequestOutcome Outcome,
    string? Error)
{
    /// <summary>Gets the turn of its conversation, from 1; each turn arrives when the answer before it ended.</summary>
    public int Turn { get; init; } = 1;

    /// <summary>Gets the prompt tokens no earlier request of the run sent on purpose: the first turn less the shared prefix, a later turn less the turn before it.</summary>
    public long NewPromptTokens { get; init; }

    /// <summary>Gets the tokens of the prefix every request of the run shares that this first turn starts with (0 for later turns).</summary>
    public long SharedPrefixTokens { get; init; }

    /// <summary>Gets the prompt tokens the target took from its cache instead of computing, when it said.</summary>
    public long? CachedPromptTokens { get; init; }

    /// <summary>Gets the time from arrival to the first answer, when there was one.</summary>
    public TimeSpan? TimeToFirstToken => FirstResponse - Arrival;

    /// <summary>Gets the gaps between consecutive pieces (time between tokens).</summary>
    public IEnumerable<TimeSpan> Gaps => Pieces.Skip(1).Zip(Pieces, (b, a) => b - a);
}

/// <summary>What a run did: every sent request's (each turn's) timing, the requests (turns) not sent before it stopped, and its length.</summary>
internal sealed record LoadRun(IReadOnlyList<RequestTiming> Timings, int NotSent, TimeSpan Wall);

/// <summary>Live counts of a run, for a progress display; updated from many threads.</summary>
internal sealed class LoadCounters
{
    private int _sent;
    private int _completed;
    private int _failed;
    private int _cancelled;
    private long _outputTokens;

    public int Sent => Volatile.Read(ref _sent);

    public int Completed => Volatile.Read(ref _completed);

    public int Failed => Volatile.Read(ref _failed);

    public int Cancelled => Volatile.Read(ref _cancelled);

    /// <summary>Gets the pieces of text received so far (about one per token).</summary>
    public long OutputTokens => Interlocked.Read(ref _outputTokens);

    public void OnSent() => Interlocked.Increment(ref _sent);

    public void OnPiece() => Interlocked.Increment(ref _outputTokens);

    public void OnEnded(RequestOutcome outcome)
    {
        switch (outcome)
        {
            case RequestOutcome.Completed:
                Interlocked.Increment(ref _completed);
                break;
            case RequestOutcome.Failed:
                Interlocked.Increment(ref _failed);
                break;
            default:
                Interlocked.Increment(ref _cancelled);
                break;
        }
    }
}

/// <summary>Sends requests to an <see cref="IChatClient"/> at their arrival times (open loop) and records what each one saw.</summary>
internal static class LoadGenerator
{
    /// <summary>
    /// Starts each conversation (<paramref name="options"/> with the request's output limit) when it is due, without
    /// waiting for earlier ones, and waits for all; a conversation sends its turns one after another, each when the
    /// answer before it ended. At <paramref name="timeLimit"/> or cancellation, requests in flight are cut off (counted
    /// as cancelled, with what they received) and later ones are not sent; the run still returns. Latencies count from
    /// the due time, so a late send is charged to the run, not hidden.
    /// </summary>
    public static async Task<LoadRun> RunAsync(
        IChatClient client, IReadOnlyList<BenchPrompt> prompts, ChatOptions options, LoadCounters? counters, TimeSpan? timeLimit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeLimit is { } limit)
        {
            stop.CancelAfter(limit);
        }

        var clock = Stopwatch.StartNew();
        var sent = new List<Task<IReadOnlyList<RequestTiming>>>(prompts.Count);
        foreach (BenchPrompt prompt in prompts.OrderBy(p => p.Request.Arrival))
        {
            // Timers have millisecond granularity and may fire a little early: wait again until the request is due.
            TimeSpan wait;
            try
            {
                while ((wait = prompt.Request.Arrival - clock.Elapsed) > TimeSpan.Zero)
                {
                    await Task.Delay(wait, stop.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }

            if (stop.IsCancellationRequested)
            {
                break;
            }

            // Off this loop: preparing a request (a template, tokenizing) must not delay the next arrival.
            sent.Add(Task.Run(() => ConverseAsync(client, prompt, options, clock, counters, stop.Token), CancellationToken.None));
        }

        RequestTiming[] timings = [.. (await Task.WhenAll(sent).ConfigureAwait(false)).SelectMany(t => t)];
        return new LoadRun(timings, prompts.Sum(p => p.Turns) - timings.Length, clock.Elapsed);
    }

    /// <summary>Sends every prompt at once (closed loop, <paramref name="prompts"/>.Count concurrent requests, <paramref name="options"/> must set the output limit) and waits for all.</summary>
    public static Task<LoadRun> RunConcurrentAsync(IChatClient client, IReadOnlyList<string> prompts, ChatOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        int output = options.MaxOutputTokens ?? throw new ArgumentException("The options must set MaxOutputTokens.", nameof(options));
        return RunAsync(client, [.. prompts.Select((p, i) => new BenchPrompt(new BenchRequest(i, TimeSpan.Zero, 0, output), p))], options, null, null, cancellationToken);
    }

    /// <summary>Sends a conversation's turns one after another, each with the earlier messages and answers; a turn that does not complete ends it.</summary>
    private static async Task<IReadOnlyList<RequestTiming>> ConverseAsync(IChatClient client, BenchPrompt prompt, ChatOptions options, Stopwatch clock, LoadCounters? counters, CancellationToken cancellationToken)
    {
        var messages = new List<ChatMessage>();
        var timings = new List<RequestTiming>();
        TimeSpan due = prompt.Request.Arrival;
        long previousPrompt = prompt.SharedPrefixTokens;

        // The prompt length counted when the target reports none: the history so far and the new message.
        long expected = prompt.SharedPrefixTokens + prompt.Request.PromptTokens;
        foreach (string user in prompt.FollowUps.Prepend(prompt.Text))
        {
            messages.Add(new ChatMessage(ChatRole.User, user));
            counters?.OnSent();
            BenchRequest turn = prompt.Request with { Arrival = due, PromptTokens = (int)expected };
            (RequestTiming timing, string answer) = await SendAsync(client, [.. messages], turn, options, clock, counters, cancellationToken).ConfigureAwait(false);
            timings.Add(timing with { Turn = timings.Count + 1, NewPromptTokens = timing.PromptTokens - previousPrompt, SharedPrefixTokens = timings.Count == 0 ? prompt.SharedPrefixTokens : 0 });
            if (timing.Outcome != RequestOutcome.Completed)
            {
                break;
            }

            messages.Add(new ChatMessage(ChatRole.Assistant, answer));
            due = timing.End;
            previousPrompt = timing.PromptTokens;
            expected = timing.PromptTokens + timing.OutputTokens + prompt.Request.PromptTokens;
        }

        return timings;
    }

    private static async Task<(RequestTiming Timing, string Answer)> SendAsync(
        IChatClient client, IReadOnlyList<ChatMessage> messages, BenchRequest request, ChatOptions baseOptions, Stopwatch clock, LoadCounters? counters, CancellationToken cancellationToken)
    {
        ChatOptions options = baseOptions.Clone();
        options.MaxOutputTokens = request.OutputTokens;
        var pieces = new List<TimeSpan>();
        var answer = new StringBuilder();
        TimeSpan? first = null;
        UsageDetails? usage = null;
        RequestOutcome outcome = RequestOutcome.Completed;
        string? error = null;
        try
        {
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
            {
                TimeSpan now = clock.Elapsed;
                bool text = !string.IsNullOrEmpty(update.Text);
                if (text)
                {
                    pieces.Add(now);
                    answer.Append(update.Text);
                    counters?.OnPiece();
                }

                if (first is null && (text || update.FinishReason is not null))
                {
                    first = now;
                }

                // A target may report usage in parts (llama-server's cached tokens can come apart from its counts).
                foreach (UsageContent part in update.Contents.OfType<UsageContent>())
                {
                    usage ??= new UsageDetails();
                    usage.Add(part.Details);
                }
            }
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // Whatever the client threw once the run stopped (cancellation, an aborted connection) is the stop.
            outcome = RequestOutcome.Cancelled;
        }
        catch (Exception ex)
        {
            // The inner messages say why ("An error occurred while sending the request" alone does not).
            outcome = RequestOutcome.Failed;
            error = string.Join(": ", Chain(ex).Select(e => e.Message).Distinct());
        }

        counters?.OnEnded(outcome);
        var timing = new RequestTiming(
            request.Arrival,
            pieces,
            first,
            clock.Elapsed,
            usage?.InputTokenCount ?? request.PromptTokens,
            usage?.OutputTokenCount ?? pieces.Count,
            outcome,
            error)
        {
            CachedPromptTokens = usage?.CachedInputTokenCount,
        };
        return (timing, answer.ToString());
    }

    private static IEnumerable<Exception> Chain(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            yield return ex;
        }
    }
}
