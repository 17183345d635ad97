using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Serving;

/// <summary>
/// An <see cref="IChatClient"/> that streams fixed pieces, a usage update and a finish reason, remembers what it was
/// asked, and can be told to fail or to hang until cancelled.
/// </summary>
internal sealed class FakeChatClient : IChatClient
{
    public const string Model = "fake-model";
    public const string ResponseId = "chatcmpl-fake-1";
    public const long InputTokens = 11;
    public static readonly string[] Pieces = ["Hel", "lo", ", ", "wörld", "!"];
    public static readonly DateTimeOffset Created = new(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);

    private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Gets or sets the finish reason of the last update.</summary>
    public ChatFinishReason FinishReason { get; set; } = ChatFinishReason.Stop;

    /// <summary>Gets or sets the tool calls sent, each in an update of its own, after the text.</summary>
    public IReadOnlyList<FunctionCallContent> ToolCalls { get; set; } = [];

    /// <summary>Gets or sets the cached prompt tokens the usage reports.</summary>
    public long? CachedTokens { get; set; }

    /// <summary>Gets or sets reasoning sent before the text.</summary>
    public string? Reasoning { get; set; }

    /// <summary>Gets or sets an exception thrown before the first update.</summary>
    public Exception? ThrowAtStart { get; set; }

    /// <summary>Gets or sets an exception thrown after the first piece.</summary>
    public Exception? ThrowAfterFirstPiece { get; set; }

    /// <summary>Gets or sets a value indicating whether to wait after the first piece until the call is cancelled.</summary>
    public bool HangAfterFirstPiece { get; set; }

    /// <summary>Gets or sets a task to wait for after the first piece (cancellation ends the wait too).</summary>
    public Task? GateAfterFirstPiece { get; set; }

    /// <summary>Gets the messages of the last call.</summary>
    public IReadOnlyList<ChatMessage>? ReceivedMessages { get; private set; }

    /// <summary>Gets the options of the last call.</summary>
    public ChatOptions? ReceivedOptions { get; private set; }

    /// <summary>Gets a task that completes when a hanging call saw its cancellation token fire.</summary>
    public Task Cancelled => _cancelled.Task;

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ReceivedMessages = [.. messages];
        ReceivedOptions = options;
        if (ThrowAtStart is { } atStart)
        {
            throw atStart;
        }

        if (Reasoning is not null)
        {
            yield return new ChatResponseUpdate { Role = ChatRole.Assistant, ResponseId = ResponseId, Contents = [new TextReasoningContent(Reasoning)] };
        }

        for (int i = 0; i < Pieces.Length; i++)
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, Pieces[i]) { ResponseId = ResponseId, CreatedAt = Created, ModelId = Model };
            if (i == 0 && ThrowAfterFirstPiece is { } afterFirst)
            {
                throw afterFirst;
            }

            if (i == 0 && GateAfterFirstPiece is { } gate)
            {
                await gate.WaitAsync(cancellationToken);
            }

            if (i == 0 && HangAfterFirstPiece)
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    _cancelled.TrySetResult();
                    throw;
                }
            }
        }

        foreach (FunctionCallContent call in ToolCalls)
        {
            yield return new ChatResponseUpdate { Role = ChatRole.Assistant, ResponseId = ResponseId, Contents = [call] };
        }

        yield return new ChatResponseUpdate
        {
            ResponseId = ResponseId,
            FinishReason = FinishReason,
            Contents = [new UsageContent(new UsageDetails { InputTokenCount = InputTokens, OutputTokenCount = Pieces.Length, TotalTokenCount = InputTokens + Pieces.Length, CachedInputTokenCount = CachedTokens })],
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("llmpq", defaultModelId: Model)
        : serviceType.IsInstanceOfType(this) ? this
        : null;

    public void Dispose()
    {
    }
}
