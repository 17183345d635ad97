using System.Runtime.CompilerServices;
using LlmPq.Chat;
using Microsoft.Extensions.AI;

namespace LlmPq.Runner;

/// <summary>
/// The pipeline backend: requests go to the engine in the pipeline's runner process, which builds them with its own
/// <see cref="EngineChatClient"/>; updates come back as they are.
/// </summary>
/// <param name="pipeline">The pipeline.</param>
/// <param name="ownsPipeline">Whether this client starts, stops and disposes the pipeline.</param>
internal sealed class PipelineChatClient(LlmPqPipeline pipeline, bool ownsPipeline) : IBackendChatClient
{
    /// <inheritdoc/>
    public string ModelId => pipeline.ModelId;

    /// <inheritdoc/>
    public bool IsReady => pipeline.IsReady;

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken) => ownsPipeline ? pipeline.StartAsync(cancellationToken) : Task.CompletedTask;

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => ownsPipeline ? pipeline.StopAsync(cancellationToken) : Task.CompletedTask;

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ownsPipeline ? pipeline.DisposeAsync() : ValueTask.CompletedTask;

    /// <inheritdoc/>
    public void Dispose()
    {
        // Asynchronous disposal is the owner's (LlmPqChatClient's) job.
    }

    /// <inheritdoc/>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages,
        ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (ChatResponseUpdate update in pipeline.StreamAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(LlmPqPipeline) ? pipeline
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : null;
}
