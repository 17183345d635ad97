using Microsoft.Extensions.AI;

namespace LlmPq.Chat;

/// <summary>
/// One backend behind <see cref="LlmPqChatClient"/>: the engine in this process (<see cref="EngineChatClient"/>) or a
/// pipeline whose engine runs in a runner process (<c>PipelineChatClient</c>). It starts, stops and disposes what it
/// serves only when it owns it.
/// </summary>
/// <param name="owns">Whether this client owns the engine or pipeline it serves.</param>
internal abstract class BackendChatClient(bool owns) : IChatClient, IAsyncDisposable
{
    /// <summary>Gets the model id served.</summary>
    public abstract string ModelId { get; }

    /// <summary>Gets a value indicating whether requests are served now.</summary>
    public abstract bool IsReady { get; }

    /// <summary>Starts what the client owns (nothing for a backend someone else started); completes when it serves.</summary>
    public Task StartAsync(CancellationToken cancellationToken) => owns ? StartOwnedAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>Stops what the client owns; requests in flight fail as unavailable.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => owns ? StopOwnedAsync(cancellationToken) : Task.CompletedTask;

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => owns ? DisposeOwnedAsync() : ValueTask.CompletedTask;

    /// <inheritdoc/>
    public void Dispose()
    {
        // Asynchronous disposal is the owner's (LlmPqChatClient's) job.
    }

    /// <inheritdoc/>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    /// <inheritdoc/>
    public abstract IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract object? GetService(Type serviceType, object? serviceKey = null);

    /// <summary>Starts the owned engine or pipeline.</summary>
    protected abstract Task StartOwnedAsync(CancellationToken cancellationToken);

    /// <summary>Stops the owned engine or pipeline.</summary>
    protected abstract Task StopOwnedAsync(CancellationToken cancellationToken);

    /// <summary>Disposes the owned engine or pipeline.</summary>
    protected abstract ValueTask DisposeOwnedAsync();
}
