using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Runner;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq;

/// <summary>
/// LlmPq's <see cref="IChatClient"/>: one entry point over two backends, the engine in this process or a pipeline whose
/// engine runs in a runner process of its own (chosen once, by <see cref="Create"/>, from
/// <see cref="LlmPqOptions.Stages"/>). Concurrent calls are safe and are batched together by the engine. Prompts go
/// through the model's own chat template (ChatML when the model has none).
/// </summary>
/// <remarks>
/// <see cref="ChatOptions"/> mapping: <c>MaxOutputTokens</c>, <c>Temperature</c> (0 samples greedily), <c>TopP</c>,
/// <c>TopK</c>, <c>Seed</c>, <c>FrequencyPenalty</c>, <c>PresencePenalty</c>, <c>StopSequences</c> (the stop text is
/// not emitted), <c>ResponseFormat</c> (JSON, or a JSON schema, enforced by a grammar), <c>Instructions</c> (a system
/// message in front), <c>ModelId</c> (must name the served model). <c>AdditionalProperties</c> take llama.cpp knobs:
/// <c>min_p</c>, <c>repeat_penalty</c>, <c>repeat_last_n</c>. Unset sampling options take llama.cpp's defaults
/// (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05).
/// </remarks>
public sealed class LlmPqChatClient : IChatClient, IAsyncDisposable
{
    private readonly BackendChatClient _backend;
    private readonly ChatClientMetadata _metadata;
    private readonly bool _owned;
    private readonly Lock _lifecycle = new();
    private Task? _start;
    private bool _stopped;

    /// <summary>Creates a chat client over a started (or starting) engine; the client does not own the engine.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="options">The engine's options (for defaults such as the output limit).</param>
    /// <param name="logger">Where request problems are logged.</param>
    public LlmPqChatClient(LlmPqEngine engine, LlmPqOptions options, ILogger<LlmPqChatClient>? logger = null)
        : this(new EngineChatClient(engine ?? throw new ArgumentNullException(nameof(engine)), options ?? throw new ArgumentNullException(nameof(options)), logger ?? (ILogger)NullLogger.Instance, ownsEngine: false), owned: false)
    {
    }

    /// <summary>
    /// Creates a chat client over a pipeline whose engine runs in a process of its own, so that a stage's failure fails
    /// the requests in flight (with <see cref="LlmPqUnavailableException"/>) but never this process; the client does
    /// not own the pipeline.
    /// </summary>
    /// <param name="pipeline">The pipeline; its runner logs the requests.</param>
    public LlmPqChatClient(LlmPqPipeline pipeline)
        : this(new PipelineChatClient(pipeline ?? throw new ArgumentNullException(nameof(pipeline)), ownsPipeline: false), owned: false)
    {
    }

    private LlmPqChatClient(BackendChatClient backend, bool owned)
    {
        _backend = backend;
        _owned = owned;

        // No provider URI: OpenTelemetry reads a server address and port from it, and a local file has neither.
        _metadata = new ChatClientMetadata("llmpq", providerUri: null, backend.ModelId);
    }

    /// <summary>
    /// Gets a value indicating whether the engine or pipeline behind the client serves requests now.
    /// </summary>
    public bool IsReady => _backend.IsReady;

    /// <summary>
    /// Creates a chat client that owns its backend: the engine in this process when every stage is in process (the
    /// default), else a pipeline with its stage servers and runner process. Nothing loads until <see cref="StartAsync"/>
    /// or the first request; <see cref="DisposeAsync"/> stops and unloads everything.
    /// </summary>
    /// <param name="options">The options; validated here (a problem throws <see cref="ArgumentException"/> naming it).</param>
    /// <param name="loggerFactory">Where the engine, the pipeline and requests log.</param>
    /// <param name="meterFactory">Creates the <c>LlmPq</c> meter.</param>
    /// <returns>The client, not started.</returns>
    public static LlmPqChatClient Create(LlmPqOptions options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (new LlmPqOptionsValidator().Validate(null, options) is { Failed: true } invalid)
        {
            throw new ArgumentException($"The LlmPq options are not valid: {invalid.FailureMessage}", nameof(options));
        }

        loggerFactory ??= NullLoggerFactory.Instance;
        BackendChatClient backend = options.Stages.Any(s => !s.InProcess)
            ? new PipelineChatClient(new LlmPqPipeline(options, loggerFactory, meterFactory), ownsPipeline: true)
            : new EngineChatClient(new LlmPqEngine(options, loggerFactory, meterFactory), options, loggerFactory.CreateLogger<LlmPqChatClient>(), ownsEngine: true);
        return new LlmPqChatClient(backend, owned: true);
    }

    /// <summary>
    /// Starts the backend this client owns (a no-op for an engine or pipeline passed in) and completes when it serves.
    /// Calling it again returns the same start. Without it, the first request starts the backend.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the start goes on).</param>
    /// <returns>A task that completes when requests are served.</returns>
    /// <exception cref="LlmPqUnavailableException">The client was stopped.</exception>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        lock (_lifecycle)
        {
            if (_stopped)
            {
                return Task.FromException(new LlmPqUnavailableException("This LlmPq chat client was stopped; create another one to serve again."));
            }

            _start ??= _backend.StartAsync(CancellationToken.None);
            return _start.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Stops the backend this client owns: requests in flight fail as unavailable; it does not start again.</summary>
    /// <param name="cancellationToken">Stops waiting for the stop.</param>
    /// <returns>A task that completes when the backend has stopped.</returns>
    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        lock (_lifecycle)
        {
            _stopped = true;
        }

        return _backend.StopAsync(cancellationToken);
    }

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken).ConfigureAwait(false);

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages,
        ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (_owned && !_backend.IsReady && !Volatile.Read(ref _stopped))
        {
            // No host started it (a plain ServiceCollection, a Kernel's services): the first request does.
            await StartAsync(cancellationToken).ConfigureAwait(false);
        }

        await foreach (ChatResponseUpdate update in ChatTelemetry.TraceAsync(_backend.ModelId, options, _backend.GetStreamingResponseAsync(messages, options, cancellationToken), cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? _metadata
            : serviceType.IsInstanceOfType(this) ? this
            : _backend.GetService(serviceType);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (_owned)
        {
            lock (_lifecycle)
            {
                _stopped = true;
            }

            await _backend.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Disposes the backend this client owns, waiting for it to stop; prefer <see cref="DisposeAsync"/>.</summary>
    public void Dispose()
    {
        if (_owned)
        {
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
