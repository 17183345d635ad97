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
            ChatRole role = ToRole(message.Role, param);
            List<AIContent> contents = role == ChatRole.Tool
                ? [ToToolResult(message, param)]
                : ToContents(message.Content, param + ".content");
            if (message.ReasoningContent is { Length: > 0 } reasoning)
            {
                contents.Insert(0, new TextReasoningContent(reasoning));
            }

            if (message.ToolCalls is { Count: > 0 } calls)
            {
                contents.AddRange(calls.Select((call, j) => ToFunctionCall(call, $"{param}.tool_calls[{j}]")));
            }

            result.Add(new ChatMessage(role, contents) { AuthorName = message.Name });
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

        foreach ((int? value, string field) in (ReadOnlySpan<(int?, string)>)[(request.MaxCompletionTokens, "max_completion_tokens"), (request.MaxTokens, "max_tokens")])
        {
            if (value <= 0)
            {
                throw new OpenAIRequestException($"'{field}' must be a positive number of tokens; it is {value}.", field);
            }
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

        options.Tools = ToTools(request.Tools);
        options.ToolMode = ToToolMode(request.ToolChoice, options.Tools);
        options.AllowMultipleToolCalls = request.ParallelToolCalls;

        // ChatOptions has no field for these llama.cpp samplers; the LlmPq client reads them from here.
        if (request.MinP is float minP)
        {
            (options.AdditionalProperties ??= [])["min_p"] = minP;
        }

        if (request.Logprobs is bool logprobs)
        {
            (options.AdditionalProperties ??= [])["logprobs"] = logprobs;
        }

        if (request.TopLogprobs is int top)
        {
            (options.AdditionalProperties ??= [])["top_logprobs"] = top;
        }

        if (request.CachePrompt is bool cachePrompt)
        {
            (options.AdditionalProperties ??= [])["cache_prompt"] = cachePrompt;
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

    private static FunctionResultContent ToToolResult(ChatCompletionRequestMessage message, string param)
    {
        if (message.ToolCallId is not { Length: > 0 } callId)
        {
            throw new OpenAIRequestException("A tool message needs 'tool_call_id', the id of the call it answers.", param + ".tool_call_id");
        }

        string result = string.Concat(ToContents(message.Content, param + ".content").OfType<TextContent>().Select(c => c.Text));
        return new FunctionResultContent(callId, result);
    }

    private static FunctionCallContent ToFunctionCall(ChatCompletionToolCall? call, string param)
    {
        if (call is not { Function.Name: { Length: > 0 } name })
        {
            throw new OpenAIRequestException("A tool call needs 'function.name'.", param + ".function.name");
        }

        if (call.Type is not (null or "function"))
        {
            throw new OpenAIRequestException($"Unknown tool call type '{call.Type}'; only 'function' exists.", param + ".type");
        }

        Dictionary<string, object?>? arguments;
        try
        {
            arguments = string.IsNullOrWhiteSpace(call.Function.Arguments) ? [] : JsonSerializer.Deserialize(call.Function.Arguments, OpenAIJsonContext.Wire.DictionaryStringObject);
        }
        catch (JsonException ex)
        {
            throw new OpenAIRequestException($"'function.arguments' must be a JSON object written as a string: {ex.Message}", param + ".function.arguments");
        }

        return new FunctionCallContent(call.Id ?? string.Empty, name, arguments ?? []);
    }

    private static List<AITool>? ToTools(JsonElement? tools)
    {
        switch (tools)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return null;
            case { ValueKind: JsonValueKind.Array } array:
                var result = new List<AITool>(array.GetArrayLength());
                int i = 0;
                foreach (JsonElement tool in array.EnumerateArray())
                {
                    result.Add(ToTool(tool, $"tools[{i++}]"));
                }

                if (result.Select(t => t.Name).GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
                {
                    throw new OpenAIRequestException($"Two tools are named '{twice.Key}'; tool names must be unique.", "tools");
                }

                return result;
            default:
                throw new OpenAIRequestException("'tools' must be an array of {\"type\": \"function\", \"function\": {...}} objects.", "tools");
        }
    }

    private static AIFunctionDeclaration ToTool(JsonElement tool, string param)
    {
        if (tool.ValueKind != JsonValueKind.Object)
        {
            throw new OpenAIRequestException("A tool must be an object: {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}.", param);
        }

        if (!tool.TryGetProperty("type", out JsonElement type) || !type.ValueEquals("function"))
        {
            throw new OpenAIRequestException("Only tools of type 'function' are supported.", param + ".type");
        }

        if (!tool.TryGetProperty("function", out JsonElement function) || function.ValueKind != JsonValueKind.Object)
        {
            throw new OpenAIRequestException("A function tool needs 'function', an object.", param + ".function");
        }

        if (!function.TryGetProperty("name", out JsonElement name) || name.ValueKind != JsonValueKind.String || !IsToolName(name.GetString()!))
        {
            throw new OpenAIRequestException("'function.name' must be 1 to 64 letters, digits, '_' or '-'.", param + ".function.name");
        }

        string? description = function.TryGetProperty("description", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        JsonElement schema = function.TryGetProperty("parameters", out JsonElement parameters) && parameters.ValueKind != JsonValueKind.Null
            ? parameters
            : JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement;
        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw new OpenAIRequestException("'function.parameters' must be a JSON Schema object.", param + ".function.parameters");
        }

        return AIFunctionFactory.CreateDeclaration(name.GetString()!, description, schema.Clone());
    }

    private static bool IsToolName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    private static ChatToolMode? ToToolMode(JsonElement? choice, IList<AITool>? tools)
    {
        switch (choice)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return null;
            case { ValueKind: JsonValueKind.String } text:
                return text.GetString() switch
                {
                    "none" => ChatToolMode.None,
                    "auto" => ChatToolMode.Auto,
                    "required" when tools is { Count: > 0 } => ChatToolMode.RequireAny,
                    "required" => throw new OpenAIRequestException("'tool_choice' is 'required' but there are no 'tools'.", "tool_choice"),
                    var other => throw new OpenAIRequestException($"Unknown tool_choice '{other}'; expected none, auto, required or a named function.", "tool_choice"),
                };
            case { ValueKind: JsonValueKind.Object } named
                when named.TryGetProperty("function", out JsonElement function) && function.ValueKind == JsonValueKind.Object
                    && function.TryGetProperty("name", out JsonElement name) && name.ValueKind == JsonValueKind.String:
                string wanted = name.GetString()!;
                return tools?.Any(t => t.Name == wanted) == true
                    ? ChatToolMode.RequireSpecific(wanted)
                    : throw new OpenAIRequestException($"'tool_choice' names the function '{wanted}', which is not among the request's tools.", "tool_choice");
            default:
                throw new OpenAIRequestException("'tool_choice' must be none, auto, required, or {\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice");
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
