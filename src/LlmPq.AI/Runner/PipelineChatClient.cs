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
internal sealed class PipelineChatClient(LlmPqPipeline pipeline, bool ownsPipeline) : BackendChatClient(ownsPipeline)
{
    /// <inheritdoc/>
    public override string ModelId => pipeline.ModelId;

    /// <inheritdoc/>
    public override bool IsReady => pipeline.IsReady;

    /// <inheritdoc/>
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
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
    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(LlmPqPipeline) ? pipeline
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : null;

    /// <inheritdoc/>
    protected override Task StartOwnedAsync(CancellationToken cancellationToken) => pipeline.StartAsync(cancellationToken);

    /// <inheritdoc/>
    protected override Task StopOwnedAsync(CancellationToken cancellationToken) => pipeline.StopAsync(cancellationToken);

    /// <inheritdoc/>
    protected override ValueTask DisposeOwnedAsync() => pipeline.DisposeAsync();
}
