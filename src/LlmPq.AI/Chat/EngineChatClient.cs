using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using LlmPq.Engine;
using LlmPq.Grammar;
using LlmPq.Native;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace LlmPq.Chat;

/// <summary>
/// The in-process backend: turns chat messages into engine requests (the model's chat template, tokens, sampling,
/// limits) and engine events into updates. Concurrent calls are batched together by the engine.
/// </summary>
internal sealed partial class EngineChatClient : IBackendChatClient
{
    private const float DefaultTemperature = 0.8f;
    private const int DefaultTopK = 40;
    private const float DefaultTopP = 0.95f;
    private const float DefaultMinP = 0.05f;

    private readonly LlmPqEngine _engine;
    private readonly bool _ownsEngine;
    private readonly ILogger _logger;
    private readonly int _defaultMaxOutputTokens;

    /// <summary>Initializes a new instance of the <see cref="EngineChatClient"/> class.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="options">The engine's options (for defaults such as the output limit).</param>
    /// <param name="logger">Where request problems are logged.</param>
    /// <param name="ownsEngine">Whether this client starts, stops and disposes the engine.</param>
    public EngineChatClient(LlmPqEngine engine, LlmPqOptions options, ILogger logger, bool ownsEngine)
    {
        _engine = engine;
        _ownsEngine = ownsEngine;
        _logger = logger;
        _defaultMaxOutputTokens = options.DefaultMaxOutputTokens;
    }

    /// <inheritdoc/>
    public string ModelId => _engine.ModelId;

    /// <inheritdoc/>
    public bool IsReady => _engine.IsReady;

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken) => _ownsEngine ? _engine.StartAsync(cancellationToken) : Task.CompletedTask;

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => _ownsEngine ? _engine.StopAsync(cancellationToken) : Task.CompletedTask;

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _ownsEngine ? _engine.DisposeAsync() : ValueTask.CompletedTask;

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
        EngineRequest request = CreateRequest(messages, options);
        EngineStream stream;
        try
        {
            stream = _engine.Submit(request, cancellationToken);
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
                ModelId = ModelId,
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
                        CachedInputTokenCount = finished.CachedTokens,
                    }));
                    break;
            }

            yield return update;
        }
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(LlmPqEngine) ? _engine
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : null;

    /// <summary>Turns messages and options into an engine request: template, tokens, sampling, limits.</summary>
    internal EngineRequest CreateRequest(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        LlmPqEngine engine = _engine;
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
