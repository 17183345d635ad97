using Microsoft.Extensions.AI;

namespace LlmPq.Chat;

/// <summary>
/// One backend behind <see cref="LlmPqChatClient"/>: the engine in this process (<see cref="EngineChatClient"/>) or a
/// pipeline whose engine runs in a runner process (<c>PipelineChatClient</c>). Each owns what it serves, or not.
/// </summary>
internal interface IBackendChatClient : IChatClient, IAsyncDisposable
{
    /// <summary>Gets the model id served.</summary>
    string ModelId { get; }

    /// <summary>Gets a value indicating whether requests are served now.</summary>
    bool IsReady { get; }

    /// <summary>Starts what the client owns (a no-op for a backend someone else started); completes when it serves.</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Stops what the client owns; requests in flight fail as unavailable.</summary>
    Task StopAsync(CancellationToken cancellationToken);
}
