using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmPq.Host.Serving;

// The wire types of the OpenAI chat API, as far as LlmPq speaks it. Fields a request may carry that LlmPq does not
// honour are ignored, as llama-server does, so that existing OpenAI clients work unchanged.

/// <summary>The body of <c>POST /v1/chat/completions</c>.</summary>
internal sealed class ChatCompletionRequest
{
    public string? Model { get; init; }

    public IReadOnlyList<ChatCompletionRequestMessage?>? Messages { get; init; }

    // stream_options.include_usage is not read: LlmPq always ends a stream with a usage chunk.
    public bool? Stream { get; init; }

    public int? N { get; init; }

    public int? MaxTokens { get; init; }

    public int? MaxCompletionTokens { get; init; }

    public float? Temperature { get; init; }

    public float? TopP { get; init; }

    public long? Seed { get; init; }

    /// <summary>Gets a string or an array of strings.</summary>
    public JsonElement? Stop { get; init; }

    public float? FrequencyPenalty { get; init; }

    public float? PresencePenalty { get; init; }

    public ChatCompletionResponseFormat? ResponseFormat { get; init; }

    /// <summary>Gets the tools: an array of <c>{"type":"function","function":{name, description, parameters}}</c>.</summary>
    public JsonElement? Tools { get; init; }

    /// <summary>Gets <c>none</c>, <c>auto</c>, <c>required</c>, or <c>{"type":"function","function":{"name":…}}</c>.</summary>
    public JsonElement? ToolChoice { get; init; }

    public bool? ParallelToolCalls { get; init; }

    public bool? Logprobs { get; init; }

    public int? TopLogprobs { get; init; }

    // llama.cpp's sampler knobs, which llama-server accepts on the same endpoint.
    public int? TopK { get; init; }

    public float? MinP { get; init; }

    public float? RepeatPenalty { get; init; }

    /// <summary>Gets llama-server's per-request switch of prompt reuse (on unless false).</summary>
    public bool? CachePrompt { get; init; }
}

/// <summary>One message of a request.</summary>
internal sealed class ChatCompletionRequestMessage
{
    public string? Role { get; init; }

    /// <summary>Gets a string, or an array of content parts (<c>{"type":"text","text":…}</c>).</summary>
    public JsonElement? Content { get; init; }

    public string? Name { get; init; }

    /// <summary>Gets the calls an assistant message made.</summary>
    public IReadOnlyList<ChatCompletionToolCall?>? ToolCalls { get; init; }

    /// <summary>Gets the call a <c>tool</c> message answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>Gets an assistant message's reasoning, as llama-server and DeepSeek name it.</summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>A tool call, in an assistant message of a request or of an answer.</summary>
internal sealed class ChatCompletionToolCall
{
    public string? Id { get; init; }

    public string? Type { get; init; }

    public ChatCompletionFunctionCall? Function { get; init; }
}

/// <summary>The function of a tool call; its arguments are a JSON object written as a string.</summary>
internal sealed class ChatCompletionFunctionCall
{
    public string? Name { get; init; }

    public string? Arguments { get; init; }
}

/// <summary>A tool call streamed in a delta: the whole call in one chunk, at its index.</summary>
internal sealed class ChatCompletionChunkToolCall
{
    public int Index { get; init; }

    public string? Id { get; init; }

    public string Type { get; } = "function";

    public required ChatCompletionFunctionCall Function { get; init; }
}

/// <summary>The <c>response_format</c> of a request.</summary>
internal sealed class ChatCompletionResponseFormat
{
    public string? Type { get; init; }

    public ChatCompletionJsonSchema? JsonSchema { get; init; }
}

/// <summary>The <c>json_schema</c> of a <c>json_schema</c> response format.</summary>
internal sealed class ChatCompletionJsonSchema
{
    public string? Name { get; init; }

    public string? Description { get; init; }

    public JsonElement? Schema { get; init; }
}

/// <summary>A <c>chat.completion</c> object, the answer to a request without streaming.</summary>
internal sealed class ChatCompletion
{
    public required string Id { get; init; }

    public string Object { get; } = "chat.completion";

    public required long Created { get; init; }

    public required string Model { get; init; }

    public required IReadOnlyList<ChatCompletionChoice> Choices { get; init; }

    public required ChatCompletionUsage Usage { get; init; }
}

/// <summary>A choice of a <c>chat.completion</c>.</summary>
internal sealed class ChatCompletionChoice
{
    public int Index { get; init; }

    public required ChatCompletionMessage Message { get; init; }

    public required string FinishReason { get; init; }

    public ChatCompletionLogprobs? Logprobs { get; init; }
}

/// <summary>The <c>logprobs</c> of a choice: one entry per output token.</summary>
internal sealed class ChatCompletionLogprobs
{
    public required IReadOnlyList<ChatCompletionTokenLogprob> Content { get; init; }
}

/// <summary>One output token's log-probability and its most likely alternatives.</summary>
internal sealed class ChatCompletionTokenLogprob
{
    public required string Token { get; init; }

    public required float Logprob { get; init; }

    public required IReadOnlyList<byte> Bytes { get; init; }

    public required IReadOnlyList<ChatCompletionTopLogprob> TopLogprobs { get; init; }
}

/// <summary>An alternative token and its log-probability.</summary>
internal sealed class ChatCompletionTopLogprob
{
    public required string Token { get; init; }

    public required float Logprob { get; init; }

    public required IReadOnlyList<byte> Bytes { get; init; }
}

/// <summary>The assistant message of a choice.</summary>
internal sealed class ChatCompletionMessage
{
    public string Role { get; } = "assistant";

    // OpenAI writes "content": null beside tool calls.
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Content { get; init; }

    public string? ReasoningContent { get; init; }

    public IReadOnlyList<ChatCompletionToolCall>? ToolCalls { get; init; }
}

/// <summary>A <c>chat.completion.chunk</c> object, one server-sent event of a stream.</summary>
internal sealed class ChatCompletionChunk
{
    public required string Id { get; init; }

    public string Object { get; } = "chat.completion.chunk";

    public required long Created { get; init; }

    public required string Model { get; init; }

    public required IReadOnlyList<ChatCompletionChunkChoice> Choices { get; init; }

    public ChatCompletionUsage? Usage { get; init; }
}

/// <summary>A choice of a <c>chat.completion.chunk</c>.</summary>
internal sealed class ChatCompletionChunkChoice
{
    public int Index { get; init; }

    public required ChatCompletionDelta Delta { get; init; }

    public ChatCompletionLogprobs? Logprobs { get; init; }

    // OpenAI writes "finish_reason": null on every chunk but the last; some clients look for the key.
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; init; }
}

/// <summary>The delta of a streamed choice.</summary>
internal sealed class ChatCompletionDelta
{
    public string? Role { get; init; }

    public string? Content { get; init; }

    public string? ReasoningContent { get; init; }

    public IReadOnlyList<ChatCompletionChunkToolCall>? ToolCalls { get; init; }
}

/// <summary>Token counts of a completion.</summary>
internal sealed class ChatCompletionUsage
{
    public long PromptTokens { get; init; }

    public long CompletionTokens { get; init; }

    public long TotalTokens { get; init; }

    public ChatCompletionPromptTokensDetails? PromptTokensDetails { get; init; }
}

/// <summary>How many prompt tokens came from the cache rather than being computed.</summary>
internal sealed class ChatCompletionPromptTokensDetails
{
    public long CachedTokens { get; init; }
}

/// <summary>The answer of <c>GET /v1/models</c>.</summary>
internal sealed class ModelList
{
    public string Object { get; } = "list";

    public required IReadOnlyList<ModelInfo> Data { get; init; }
}

/// <summary>One model of <c>GET /v1/models</c>.</summary>
internal sealed class ModelInfo
{
    public required string Id { get; init; }

    public string Object { get; } = "model";

    public required long Created { get; init; }

    public string OwnedBy { get; } = "llmpq";
}

/// <summary>The answer of <c>GET /health</c>.</summary>
internal sealed class HealthStatus
{
    public required string Status { get; init; }
}

/// <summary>An OpenAI error body: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
internal sealed class ErrorResponse
{
    public required ErrorDetail Error { get; init; }
}

/// <summary>The inside of an OpenAI error body.</summary>
internal sealed class ErrorDetail
{
    public required string Message { get; init; }

    public required string Type { get; init; }

    // OpenAI always writes both keys, null when they do not apply.
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Param { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Code { get; init; }
}

/// <summary>Source-generated serialization of the wire types (snake_case, nulls left out unless marked).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(HealthStatus))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(Dictionary<string, object?>))]
internal sealed partial class OpenAIJsonContext : JsonSerializerContext
{
    private static OpenAIJsonContext? s_wire;

    /// <summary>
    /// Gets the context the endpoint reads and writes with. It writes text as raw UTF-8, as OpenAI and llama-server do;
    /// the default encoder would escape every non-ASCII character (most tokens of most languages) as <c>\uXXXX</c>.
    /// Escaping for HTML is not needed: the answers are JSON and event streams, never pages.
    /// </summary>
    /// <remarks>Made on first use: the generated <c>Default</c> is initialized in another part of this class, in no defined order.</remarks>
    public static OpenAIJsonContext Wire => s_wire ??= new(new JsonSerializerOptions(Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
