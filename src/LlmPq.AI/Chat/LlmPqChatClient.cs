using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using LlmPq.Engine;
using LlmPq.Grammar;
using LlmPq.Native;
using LlmPq.Runner;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Chat;

/// <summary>
/// An <see cref="IChatClient"/> over an <see cref="LlmPqEngine"/>. Concurrent calls are safe and are batched
/// together by the engine. Prompts go through the model's own chat template (ChatML when the model has none).
/// </summary>
/// <remarks>
/// <see cref="ChatOptions"/> mapping: <c>MaxOutputTokens</c>, <c>Temperature</c> (0 samples greedily), <c>TopP</c>,
/// <c>TopK</c>, <c>Seed</c>, <c>FrequencyPenalty</c>, <c>PresencePenalty</c>, <c>StopSequences</c> (the stop text is
/// not emitted), <c>ResponseFormat</c> (JSON, or a JSON schema, enforced by a grammar), <c>Instructions</c> (a system
/// message in front), <c>ModelId</c> (must name the served model). <c>AdditionalProperties</c> take llama.cpp knobs:
/// <c>min_p</c>, <c>repeat_penalty</c>, <c>repeat_last_n</c>. Unset sampling options take llama.cpp's defaults
/// (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05). Tools are not used: the model answers in text.
/// </remarks>
public sealed partial class LlmPqChatClient : IChatClient
{
    private const float DefaultTemperature = 0.8f;
    private const int DefaultTopK = 40;
    private const float DefaultTopP = 0.95f;
    private const float DefaultMinP = 0.05f;

    private readonly LlmPqEngine? _engine;
    private readonly LlmPqPipeline? _pipeline;
    private readonly string _modelId;
    private readonly ILogger _logger;
    private readonly int _defaultMaxOutputTokens;
    private readonly ChatClientMetadata _metadata;

    /// <summary>Creates a chat client over a started (or starting) engine; the client does not own the engine.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="options">The engine's options (for defaults such as the output limit).</param>
    /// <param name="logger">Where request problems are logged.</param>
    public LlmPqChatClient(LlmPqEngine engine, LlmPqOptions options, ILogger<LlmPqChatClient>? logger = null)
        : this((engine ?? throw new ArgumentNullException(nameof(engine))).ModelId, options, logger) => _engine = engine;

    /// <summary>
    /// Creates a chat client over a pipeline whose engine runs in a process of its own, so that a stage's failure fails
    /// the requests in flight (with <see cref="LlmPqUnavailableException"/>) but never this process; the client does
    /// not own the pipeline.
    /// </summary>
    /// <param name="pipeline">The pipeline.</param>
    /// <param name="options">The pipeline's options.</param>
    /// <param name="logger">Where request problems are logged.</param>
    public LlmPqChatClient(LlmPqPipeline pipeline, LlmPqOptions options, ILogger<LlmPqChatClient>? logger = null)
        : this((pipeline ?? throw new ArgumentNullException(nameof(pipeline))).ModelId, options, logger) => _pipeline = pipeline;

    private LlmPqChatClient(string modelId, LlmPqOptions options, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _modelId = modelId;
        _logger = logger ?? NullLogger.Instance;
        _defaultMaxOutputTokens = options.DefaultMaxOutputTokens;
        _metadata = new ChatClientMetadata("llmpq", new Uri(Path.GetFullPath(options.ModelPath)), modelId);
    }

    /// <summary>Gets a value indicating whether the engine or pipeline behind the client serves requests now.</summary>
    internal bool IsReady => _pipeline?.IsReady ?? _engine!.IsReady;

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
        if (_pipeline is not null)
        {
            await foreach (ChatResponseUpdate update in _pipeline.StreamAsync(messages, options, cancellationToken).ConfigureAwait(false))
            {
                yield return update;
            }

            yield break;
        }

        EngineRequest request = CreateRequest(messages, options);
        EngineStream stream;
        try
        {
            stream = _engine!.Submit(request, cancellationToken);
        }
        catch (ArgumentException ex)
        {
            throw new LlmPqRequestException($"The request's sampling options were rejected: {ex.Message}", ex);
        }

        string responseId = string.Create(CultureInfo.InvariantCulture, $"chatcmpl-{Guid.NewGuid():N}");
        string messageId = string.Create(CultureInfo.InvariantCulture, $"msg-{stream.Id}-{Guid.NewGuid():N}");
        DateTimeOffset created = DateTimeOffset.UtcNow;
        await foreach (EngineEvent e in stream.Events.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            var update = new ChatResponseUpdate
            {
                Role = ChatRole.Assistant,
                ResponseId = responseId,
                MessageId = messageId,
                ModelId = _modelId,
                CreatedAt = created,
            };
            switch (e)
            {
                case EngineEvent.Text text:
                    update.Contents.Add(new TextContent(text.Delta));
                    break;
                case EngineEvent.Finished finished:
                    update.FinishReason = finished.Reason == FinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length;
                    update.Contents.Add(new UsageContent(new UsageDetails
                    {
                        InputTokenCount = finished.PromptTokens,
                        OutputTokenCount = finished.OutputTokens,
                        TotalTokenCount = finished.PromptTokens + finished.OutputTokens,
                    }));
                    break;
            }

            yield return update;
        }
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceKey is not null ? null
            : serviceType == typeof(ChatClientMetadata) ? _metadata
            : serviceType == typeof(LlmPqEngine) ? _engine
            : serviceType == typeof(LlmPqPipeline) ? _pipeline
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        // The engine belongs to whoever created it (the DI container, usually).
    }

    /// <summary>Turns messages and options into an engine request: template, tokens, sampling, limits.</summary>
    internal EngineRequest CreateRequest(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        LlmPqEngine engine = _engine ?? throw new InvalidOperationException("A pipeline client builds its requests in the runner.");
        if (options?.ModelId is { Length: > 0 } modelId && !string.Equals(modelId, engine.ModelId, StringComparison.Ordinal))
        {
            throw new LlmPqRequestException("model_not_found", $"The model '{modelId}' is not served here; this LlmPq serves '{engine.ModelId}'.");
        }

        int maxOutput = options?.MaxOutputTokens ?? _defaultMaxOutputTokens;
        if (maxOutput <= 0)
        {
            throw new LlmPqRequestException($"MaxOutputTokens must be positive; it is {maxOutput}.");
        }

        LlamaModel model = engine.Model;
        string prompt;
        int[] tokens;
        try
        {
            prompt = FormatPrompt(model, messages, options?.Instructions);
            tokens = model.Tokenize(prompt, addSpecial: !StartsWithBos(model, prompt), parseSpecial: true);
        }
        catch (ObjectDisposedException ex)
        {
            throw new LlmPqUnavailableException("The LlmPq engine stopped while the request was being prepared.", ex);
        }

        IReadOnlyList<string> stops = options?.StopSequences is { Count: > 0 } s ? [.. s] : [];
        if (options?.Tools is { Count: > 0 })
        {
            LogToolsIgnored(_logger, options.Tools.Count);
        }

        return new EngineRequest(tokens, CreateSampling(options), maxOutput, stops);
    }

    private string FormatPrompt(LlamaModel model, IEnumerable<ChatMessage> messages, string? instructions)
    {
        var turns = new List<(string Role, string Content)>();
        if (!string.IsNullOrWhiteSpace(instructions))
        {
            turns.Add(("system", instructions));
        }

        foreach (ChatMessage message in messages)
        {
            if (message.Contents.Count > 0 && message.Contents.All(c => c is not TextContent))
            {
                throw new LlmPqRequestException($"A {message.Role} message has no text; LlmPq serves text only ({string.Join(", ", message.Contents.Select(c => c.GetType().Name))} given).");
            }

            turns.Add((message.Role.Value, message.Text));
        }

        if (turns.Count == 0)
        {
            throw new LlmPqRequestException("There are no messages to answer.");
        }

        string? formatted = model.ApplyChatTemplate(turns, addAssistantPrefix: true);
        if (formatted is null)
        {
            // No template, or one llama.cpp does not recognize: ChatML is the documented fallback.
            LogTemplateFallback(_logger, model.ChatTemplate is null ? "none" : "unrecognized");
            formatted = model.ApplyChatTemplate(turns, addAssistantPrefix: true, template: "chatml")
                ?? throw new LlmPqRequestException("The conversation could not be formatted with the ChatML template.");
        }

        return formatted;
    }

    private static bool StartsWithBos(LlamaModel model, string prompt)
    {
        string bos = model.Detokenize([model.BosToken], removeSpecial: false, unparseSpecial: true);
        return bos.Length > 0 && prompt.StartsWith(bos, StringComparison.Ordinal);
    }

    private static SamplingSettings CreateSampling(ChatOptions? options)
    {
        AdditionalPropertiesDictionary? extra = options?.AdditionalProperties;
        float temperature = options?.Temperature ?? DefaultTemperature;
        if (temperature < 0 || float.IsNaN(temperature))
        {
            throw new LlmPqRequestException($"Temperature must be 0 or more; it is {temperature}.");
        }

        float topP = options?.TopP ?? DefaultTopP;
        if (topP is <= 0 or > 1)
        {
            throw new LlmPqRequestException($"TopP must be in (0, 1]; it is {topP}.");
        }

        string? grammar = options?.ResponseFormat switch
        {
            ChatResponseFormatJson { Schema: JsonElement schema } => GrammarFor(schema),
            ChatResponseFormatJson => JsonGrammar.AnyJson,
            _ => null,
        };

        return new SamplingSettings
        {
            Temperature = temperature,
            TopK = options?.TopK ?? DefaultTopK,
            TopP = topP,
            MinP = Number(extra, "min_p") ?? DefaultMinP,
            Seed = options?.Seed is long seed ? unchecked((uint)seed) : (uint)Random.Shared.Next(),
            FrequencyPenalty = options?.FrequencyPenalty ?? 0f,
            PresencePenalty = options?.PresencePenalty ?? 0f,
            RepeatPenalty = Number(extra, "repeat_penalty") ?? 1f,
            PenaltyLastN = (int)(Number(extra, "repeat_last_n") ?? 64),
            Grammar = grammar,
        };
    }

    private static string GrammarFor(JsonElement schema)
    {
        try
        {
            return JsonGrammar.FromSchema(schema);
        }
        catch (ArgumentException ex)
        {
            throw new LlmPqRequestException($"The response JSON schema cannot be enforced: {ex.Message}", ex);
        }
    }

    private static float? Number(AdditionalPropertiesDictionary? extra, string key)
    {
        if (extra is null || !extra.TryGetValue(key, out object? value) || value is null)
        {
            return null;
        }

        return value switch
        {
            float f => f,
            double d => (float)d,
            int i => i,
            long l => l,
            decimal m => (float)m,
            JsonElement { ValueKind: JsonValueKind.Number } j => j.GetSingle(),
            string text when float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float parsed) => parsed,
            _ => throw new LlmPqRequestException($"AdditionalProperties['{key}'] must be a number; it is {value}."),
        };
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Debug, Message = "{Count} tools were given; LlmPq does not call tools and answers in text")]
    private static partial void LogToolsIgnored(ILogger logger, int count);

    [LoggerMessage(EventId = 21, Level = LogLevel.Debug, Message = "The model's chat template is {State}; using ChatML")]
    private static partial void LogTemplateFallback(ILogger logger, string state);
}
