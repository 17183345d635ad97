using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
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
internal sealed partial class EngineChatClient : BackendChatClient
{
    private const float DefaultTemperature = 0.8f;
    private const int DefaultTopK = 40;
    private const float DefaultTopP = 0.95f;
    private const float DefaultMinP = 0.05f;
    private const int MaxGrammarChars = 256 * 1024;

    /// <summary>The <see cref="UsageDetails.AdditionalCounts"/> key of how often a request was evicted and recomputed.</summary>
    internal const string PreemptionsCount = "llmpq.preemptions";

    private readonly LlmPqEngine _engine;
    private readonly ILogger _logger;
    private readonly int _defaultMaxOutputTokens;
    private readonly PromptTokenizer _tokenizer;

    /// <summary>Initializes a new instance of the <see cref="EngineChatClient"/> class.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="options">The engine's options (for defaults such as the output limit).</param>
    /// <param name="logger">Where request problems are logged.</param>
    /// <param name="ownsEngine">Whether this client starts, stops and disposes the engine.</param>
    public EngineChatClient(LlmPqEngine engine, LlmPqOptions options, ILogger logger, bool ownsEngine)
        : base(ownsEngine)
    {
        _engine = engine;
        _logger = logger;
        _defaultMaxOutputTokens = options.DefaultMaxOutputTokens;

        // An answer's tokens help while its cells can be in the KV cache, which holds at most this many tokens (the
        // options given here are for defaults, and may be unvalidated: at least one token).
        long kvTokens = options.KvCacheTokens > 0 ? options.KvCacheTokens : (long)options.ContextLength * options.MaxSequences;
        _tokenizer = new PromptTokenizer(Math.Max(1, kvTokens), logger);
    }

    /// <inheritdoc/>
    public override string ModelId => _engine.ModelId;

    /// <inheritdoc/>
    public override bool IsReady => _engine.IsReady;

    /// <inheritdoc/>
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages,
        ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        PreparedChat chat = Prepare(messages, options);
        EngineStream stream;
        try
        {
            stream = _engine.Submit(chat.Request, cancellationToken);
        }
        catch (ArgumentException ex)
        {
            throw new LlmPqRequestException($"The request's sampling options were rejected: {ex.Message}", ex);
        }

        string responseId = string.Create(CultureInfo.InvariantCulture, $"chatcmpl-{Guid.NewGuid():N}");
        string messageId = string.Create(CultureInfo.InvariantCulture, $"msg-{stream.Id}-{Guid.NewGuid():N}");
        DateTimeOffset created = DateTimeOffset.UtcNow;
        ChatResponseUpdate Update(IList<AIContent> contents) => new()
        {
            Role = ChatRole.Assistant,
            ResponseId = responseId,
            MessageId = messageId,
            ModelId = ModelId,
            CreatedAt = created,
            Contents = contents,
        };

        // The answer's text as the caller gets it, to remember its tokens by.
        var answer = new StringBuilder();
        await foreach (EngineEvent e in stream.Events.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            switch (e)
            {
                case EngineEvent.Logprob logprob:
                    ChatResponseUpdate scored = Update([]);
                    scored.AdditionalProperties = new() { [TokenLogprob.PropertyName] = new[] { logprob.Token } };
                    yield return scored;
                    break;
                case EngineEvent.Text text when chat.Reader is { } reader:
                    if (reader.Push(text.Delta) is { Count: > 0 } contents)
                    {
                        AppendText(answer, contents);
                        yield return Update(contents);
                    }

                    break;
                case EngineEvent.Text text:
                    answer.Append(text.Delta);
                    yield return Update([new TextContent(text.Delta)]);
                    break;
                case EngineEvent.Finished finished:
                    List<AIContent> rest = chat.Reader?.Finish(truncated: finished.Reason != FinishReason.Stop) ?? [];
                    if (chat.Reader?.FormatError is { } unreadable)
                    {
                        LogUnreadableAnswer(_logger, unreadable);
                    }

                    AppendText(answer, rest);
                    _tokenizer.Remember(_engine.Model, answer.ToString(), finished.Output);

                    rest.Add(new UsageContent(new UsageDetails
                    {
                        InputTokenCount = finished.PromptTokens,
                        OutputTokenCount = finished.OutputTokens,
                        TotalTokenCount = finished.PromptTokens + finished.OutputTokens,
                        CachedInputTokenCount = finished.CachedTokens,

                        // Evicted from a full shared KV cache and recomputed: why this answer took longer.
                        AdditionalCounts = finished.Preemptions > 0 ? new() { [PreemptionsCount] = finished.Preemptions } : null,
                    }));
                    ChatResponseUpdate last = Update(rest);
                    last.FinishReason = chat.Reader?.CalledTools == true ? ChatFinishReason.ToolCalls
                        : finished.Reason == FinishReason.Stop ? ChatFinishReason.Stop
                        : ChatFinishReason.Length;
                    last.RawRepresentation = finished;
                    yield return last;
                    break;
            }
        }
    }

    /// <inheritdoc/>
    public override object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType == typeof(LlmPqEngine) ? _engine
        : serviceKey is null && serviceType.IsInstanceOfType(this) ? this
        : null;

    /// <inheritdoc/>
    protected override Task StartOwnedAsync(CancellationToken cancellationToken) => _engine.StartAsync(cancellationToken);

    /// <inheritdoc/>
    protected override Task StopOwnedAsync(CancellationToken cancellationToken) => _engine.StopAsync(cancellationToken);

    /// <inheritdoc/>
    protected override ValueTask DisposeOwnedAsync() => _engine.DisposeAsync();

    /// <summary>Turns messages and options into an engine request: template, tokens, sampling, limits.</summary>
    internal EngineRequest CreateRequest(IEnumerable<ChatMessage> messages, ChatOptions? options) => Prepare(messages, options).Request;

    /// <summary>
    /// Renders the chat with llama.cpp's chat layer and builds the engine request: the prompt's tokens, the sampling
    /// (a tool grammar from the template, or a response format's grammar), the stops, and the reader of the answer.
    /// </summary>
    private PreparedChat Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        PromptSizeGuard.Check(_engine, messages);
        if (options?.ModelId is { Length: > 0 } modelId && !string.Equals(modelId, ModelId, StringComparison.Ordinal))
        {
            throw new LlmPqRequestException("model_not_found", $"The model '{modelId}' is not served here; this LlmPq serves '{ModelId}'.");
        }

        int maxOutput = options?.MaxOutputTokens ?? _defaultMaxOutputTokens;
        if (maxOutput <= 0)
        {
            throw new LlmPqRequestException($"MaxOutputTokens must be positive; it is {maxOutput}.");
        }

        ChatTemplateRequest chat = ChatTemplateMapper.ToRequest(messages, options);
        bool tools = chat.Tools.Count > 0 && chat.ToolChoice != ChatToolChoice.None;
        string? responseGrammar = ResponseGrammar(options, out string? patternAt);
        if (tools)
        {
            // The tools' grammar governs the answer; the schema's pattern is not llama.cpp's to convert then.
            patternAt = null;
        }

        if (patternAt is not null)
        {
            chat = chat with { JsonSchema = ((ChatResponseFormatJson)options!.ResponseFormat!).Schema!.Value.GetRawText() };
        }

        SamplingSettings sampling = CreateSampling(options, patternAt is null ? responseGrammar : null);
        try
        {
            LlamaModel model = _engine.Model;
            ChatPrompt prompt = Render(_engine.Templates, chat, patternAt);
            if (patternAt is not null)
            {
                sampling = sampling with
                {
                    Grammar = prompt.GrammarError.Length == 0 && prompt.Grammar.Length > 0 ? prompt.Grammar
                        : throw new LlmPqRequestException($"The response JSON schema cannot be enforced: llama.cpp cannot convert it (it has a pattern at {patternAt}): {prompt.GrammarError}"),
                    GrammarPrefill = prompt.GrammarPrefill,
                };
            }
            else if (tools && prompt.Grammar.Length > 0)
            {
                sampling = sampling with
                {
                    Grammar = prompt.GrammarLazy ? prompt.Grammar : ToolGrammar.Required(prompt.Grammar, chat.ParallelToolCalls),
                    GrammarLazy = prompt.GrammarLazy,
                    GrammarTriggerPatterns = prompt.TriggerPatterns,
                    GrammarTriggerTokens = prompt.TriggerTokens,
                    GrammarPrefill = prompt.GrammarPrefill,
                };
            }

            RefuseLargeGrammar(sampling.Grammar);
            int[] tokens = _tokenizer.Tokenize(model, prompt.Prompt, chat.Messages);
            IReadOnlyList<string> stops = [.. options?.StopSequences ?? [], .. prompt.AdditionalStops];
            ChatOutputReader? reader = tools || prompt.SupportsThinking ? new ChatOutputReader(prompt.Syntax, chat.ParallelToolCalls == false ? 1 : int.MaxValue) : null;
            bool cachePrompt = Flag(options?.AdditionalProperties, "cache_prompt") ?? true;
            return new PreparedChat(new EngineRequest(tokens, sampling, maxOutput, stops, cachePrompt, TopLogprobs(options?.AdditionalProperties)), reader);
        }
        catch (ObjectDisposedException ex)
        {
            throw new LlmPqUnavailableException("The LlmPq engine stopped while the request was being prepared.", ex);
        }
    }

    private static ChatPrompt Render(ChatTemplates templates, ChatTemplateRequest chat, string? patternAt)
    {
        ChatPrompt prompt;
        try
        {
            prompt = templates.Apply(chat);
        }
        catch (LlamaException ex)
        {
            throw new LlmPqRequestException(
                patternAt is null
                    ? $"The chat template could not render the conversation: {ex.Message}"
                    : $"The response JSON schema cannot be enforced: llama.cpp could not convert it (it has a pattern at {patternAt}): {ex.Message}",
                ex);
        }

        return prompt.GrammarError.Length == 0 || chat.Tools.Count == 0 || chat.ToolChoice == ChatToolChoice.None
            ? prompt
            : throw new LlmPqRequestException($"llama.cpp cannot build the grammar of these tools: {prompt.GrammarError}");
    }

    private static void AppendText(StringBuilder answer, IEnumerable<AIContent> contents)
    {
        foreach (TextContent text in contents.OfType<TextContent>())
        {
            answer.Append(text.Text);
        }
    }

    /// <summary>
    /// The response format's grammar, and where its schema has a string <c>pattern</c>: LlmPq's converter cannot enforce
    /// one, llama.cpp's can (through the template's grammar), so such a schema goes there.
    /// </summary>
    private static string? ResponseGrammar(ChatOptions? options, out string? patternAt)
    {
        patternAt = null;
        switch (options?.ResponseFormat)
        {
            case ChatResponseFormatJson { Schema: JsonElement schema }:
                try
                {
                    return JsonGrammar.FromSchema(schema, out patternAt);
                }
                catch (ArgumentException ex)
                {
                    throw new LlmPqRequestException($"The response JSON schema cannot be enforced: {ex.Message}", ex);
                }

            case ChatResponseFormatJson:
                return JsonGrammar.AnyJson;
            default:
                return null;
        }
    }

    /// <param name="options">The request's options.</param>
    /// <param name="grammar">The grammar the answer must follow, if any (the response format's, when LlmPq converts it).</param>
    private static SamplingSettings CreateSampling(ChatOptions? options, string? grammar)
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

    /// <summary>
    /// Refuses a grammar too large to check every sampled token against in time: llama.cpp walks it on the engine's loop
    /// for each token, so one request's 100,000-value enum would slow every request in the batch.
    /// </summary>
    private static void RefuseLargeGrammar(string? grammar)
    {
        if (grammar is { Length: > MaxGrammarChars })
        {
            throw new LlmPqRequestException(
                $"The grammar of the response format or tools is {grammar.Length / 1024} KiB; LlmPq takes up to {MaxGrammarChars / 1024} KiB, since every sampled token is checked against it. Make the schema smaller (a long enum, for example).");
        }
    }

    /// <summary>Reads <c>logprobs</c> (true asks for them) and <c>top_logprobs</c> (0 to 20 alternatives), as OpenAI names them.</summary>
    private static int? TopLogprobs(AdditionalPropertiesDictionary? extra)
    {
        bool wanted = Flag(extra, "logprobs") ?? false;
        float? top = Number(extra, "top_logprobs");
        if (top is not null && (!wanted || top is < 0 or > TokenLogprob.MaxTop || top != MathF.Floor(top.Value)))
        {
            throw new LlmPqRequestException($"top_logprobs must be a whole number from 0 to {TokenLogprob.MaxTop}, with logprobs true; it is {top}.");
        }

        return wanted ? (int)(top ?? 0) : null;
    }

    /// <summary>Reads a true/false knob; null when it is absent.</summary>
    private static bool? Flag(AdditionalPropertiesDictionary? extra, string key) =>
        extra?.TryGetValue(key, out object? value) != true ? null : value switch
        {
            bool b => b,
            JsonElement { ValueKind: JsonValueKind.True or JsonValueKind.False } j => j.GetBoolean(),
            _ => throw new LlmPqRequestException($"AdditionalProperties['{key}'] must be true or false; it is {value}."),
        };

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

    /// <summary>An engine request and, when the answer has a format to read (tool calls, reasoning), its reader.</summary>
    private sealed record PreparedChat(EngineRequest Request, ChatOutputReader? Reader);

    [LoggerMessage(EventId = 20, Level = LogLevel.Debug, Message = "An answer did not follow the chat template's tool-call format and was sent as text: {Reason}")]
    private static partial void LogUnreadableAnswer(ILogger logger, string reason);

}
