using System.Text.Json;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Serving;

/// <summary>Turns an OpenAI chat request into the messages and <see cref="ChatOptions"/> of an <see cref="IChatClient"/> call.</summary>
internal static class ChatRequestMapper
{
    /// <summary>Gets the messages of a request.</summary>
    /// <exception cref="OpenAIRequestException">There are none, or one has an unknown role or content of an unsupported shape.</exception>
    public static List<ChatMessage> ToMessages(ChatCompletionRequest request)
    {
        if (request.Messages is not { Count: > 0 } messages)
        {
            throw new OpenAIRequestException("'messages' is required and must hold at least one message.", "messages");
        }

        var result = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            string param = $"messages[{i}]";
            ChatCompletionRequestMessage message = messages[i] ?? throw new OpenAIRequestException("A message must be an object.", param);
            result.Add(new ChatMessage(ToRole(message.Role, param), ToContents(message.Content, param + ".content"))
            {
                AuthorName = message.Name,
            });
        }

        return result;
    }

    /// <summary>Gets the options of a request.</summary>
    /// <exception cref="OpenAIRequestException">A field has a value of an unsupported shape.</exception>
    public static ChatOptions ToOptions(ChatCompletionRequest request)
    {
        if (request.N is not (null or 1))
        {
            throw new OpenAIRequestException("LlmPq returns one choice per request; 'n' must be 1.", "n");
        }

        var options = new ChatOptions
        {
            ModelId = request.Model,
            MaxOutputTokens = request.MaxCompletionTokens ?? request.MaxTokens,
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            Seed = request.Seed,
            FrequencyPenalty = request.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty,
            StopSequences = ToStopSequences(request.Stop),
            ResponseFormat = ToResponseFormat(request.ResponseFormat),
        };

        // ChatOptions has no field for these llama.cpp samplers; the LlmPq client reads them from here.
        if (request.MinP is float minP)
        {
            (options.AdditionalProperties ??= [])["min_p"] = minP;
        }

        if (request.RepeatPenalty is float repeatPenalty)
        {
            (options.AdditionalProperties ??= [])["repeat_penalty"] = repeatPenalty;
        }

        return options;
    }

    private static ChatRole ToRole(string? role, string param) => role switch
    {
        "system" or "developer" => ChatRole.System,
        "user" => ChatRole.User,
        "assistant" => ChatRole.Assistant,
        "tool" => ChatRole.Tool,
        _ => throw new OpenAIRequestException(
            $"Unknown role '{role}'; expected system, developer, user, assistant or tool.", param + ".role"),
    };

    private static List<AIContent> ToContents(JsonElement? content, string param)
    {
        switch (content)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return [];
            case { ValueKind: JsonValueKind.String } text:
                return [new TextContent(text.GetString())];
            case { ValueKind: JsonValueKind.Array } parts:
                var contents = new List<AIContent>(parts.GetArrayLength());
                int i = 0;
                foreach (JsonElement part in parts.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object
                        || !part.TryGetProperty("type", out JsonElement type) || !type.ValueEquals("text")
                        || !part.TryGetProperty("text", out JsonElement text) || text.ValueKind != JsonValueKind.String)
                    {
                        throw new OpenAIRequestException(
                            "Only text content parts ({\"type\": \"text\", \"text\": \"...\"}) are supported.", $"{param}[{i}]");
                    }

                    contents.Add(new TextContent(text.GetString()));
                    i++;
                }

                return contents;
            default:
                throw new OpenAIRequestException("Message content must be a string or an array of content parts.", param);
        }
    }

    private static List<string>? ToStopSequences(JsonElement? stop)
    {
        switch (stop)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return null;
            case { ValueKind: JsonValueKind.String } one:
                return [one.GetString()!];
            case { ValueKind: JsonValueKind.Array } many:
                var sequences = new List<string>(many.GetArrayLength());
                foreach (JsonElement s in many.EnumerateArray())
                {
                    sequences.Add(s.ValueKind == JsonValueKind.String
                        ? s.GetString()!
                        : throw new OpenAIRequestException("'stop' must be a string or an array of strings.", "stop"));
                }

                return sequences;
            default:
                throw new OpenAIRequestException("'stop' must be a string or an array of strings.", "stop");
        }
    }

    private static ChatResponseFormat? ToResponseFormat(ChatCompletionResponseFormat? format) => format is null ? null : format.Type switch
    {
        "text" => ChatResponseFormat.Text,
        "json_object" => ChatResponseFormat.Json,
        "json_schema" when format.JsonSchema is { Schema: { ValueKind: JsonValueKind.Object } schema } jsonSchema
            => ChatResponseFormat.ForJsonSchema(schema, jsonSchema.Name, jsonSchema.Description),
        "json_schema" => throw new OpenAIRequestException(
            "A 'json_schema' response format needs 'json_schema.schema', a JSON Schema object.", "response_format.json_schema"),
        _ => throw new OpenAIRequestException(
            $"Unknown response format type '{format.Type}'; expected text, json_object or json_schema.", "response_format.type"),
    };
}
