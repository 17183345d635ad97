using System.Text.Json;
using LlmPq.Native;
using Microsoft.Extensions.AI;

namespace LlmPq.Chat;

/// <summary>
/// Turns M.E.AI messages and options into the request llama.cpp's chat layer renders: text, tool calls, tool results
/// and reasoning in the history; tools, tool mode and parallel calls in the options. Nothing is refused that a
/// template can render; content that has no text form (images, audio) is, naming it.
/// </summary>
internal static class ChatTemplateMapper
{
    // M.E.AI's options indent; OpenAI writes arguments compact, and templates render them as they are.
    private static readonly JsonSerializerOptions s_compact = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    /// <summary>Gets the template request of a chat.</summary>
    /// <exception cref="LlmPqRequestException">A message holds content LlmPq cannot render, or the tool mode names no given tool.</exception>
    public static ChatTemplateRequest ToRequest(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var rendered = new List<ChatTemplateMessage>();
        if (!string.IsNullOrWhiteSpace(options?.Instructions))
        {
            rendered.Add(new ChatTemplateMessage("system", options.Instructions));
        }

        foreach (ChatMessage message in messages)
        {
            AddMessage(rendered, message);
        }

        if (rendered.Count == 0)
        {
            throw new LlmPqRequestException("There are no messages to answer.");
        }

        List<ChatTemplateTool> tools = ToTools(options?.Tools);
        return new ChatTemplateRequest
        {
            Messages = rendered,
            Tools = tools,
            ToolChoice = ToChoice(options?.ToolMode, tools),
            ParallelToolCalls = options?.AllowMultipleToolCalls,
        };
    }

    /// <summary>Gets a call's arguments as the compact JSON object text OpenAI's <c>function.arguments</c> holds.</summary>
    public static string ArgumentsJson(FunctionCallContent call) =>
        JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), s_compact);

    private static void AddMessage(List<ChatTemplateMessage> rendered, ChatMessage message)
    {
        string role = message.Role.Value;
        var text = new List<string>();
        var reasoning = new List<string>();
        var calls = new List<ChatToolCall>();
        foreach (AIContent content in message.Contents)
        {
            switch (content)
            {
                case TextContent t:
                    text.Add(t.Text);
                    break;
                case TextReasoningContent r:
                    reasoning.Add(r.Text);
                    break;
                case FunctionCallContent call:
                    calls.Add(new ChatToolCall(call.Name, call.CallId, ArgumentsJson(call)));
                    break;
                case FunctionResultContent result:
                    // Each result is a tool message of its own, as OpenAI's API and the templates expect.
                    rendered.Add(new ChatTemplateMessage("tool", ResultText(result)) { ToolCallId = result.CallId });
                    break;
                case UsageContent:
                    break;
                default:
                    throw new LlmPqRequestException($"A {role} message holds {content.GetType().Name}; LlmPq renders text, reasoning, function calls and function results only.");
            }
        }

        if (text.Count == 0 && calls.Count == 0 && reasoning.Count == 0 && message.Contents.Count > 0)
        {
            return; // only results (already added) or usage
        }

        rendered.Add(new ChatTemplateMessage(role, text.Count == 0 && calls.Count > 0 ? null : string.Concat(text))
        {
            ToolCalls = calls,
            Name = message.AuthorName,
            ReasoningContent = reasoning.Count > 0 ? string.Concat(reasoning) : null,
        });
    }

    private static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null => result.Exception is { } error ? $"Error: {error.Message}" : string.Empty,
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } s => s.GetString()!,
        var other => JsonSerializer.Serialize(other, s_compact),
    };

    private static List<ChatTemplateTool> ToTools(IList<AITool>? tools) =>
        tools is null ? [] : [.. tools.OfType<AIFunctionDeclaration>().Select(t => new ChatTemplateTool(t.Name, t.Description, t.JsonSchema.GetRawText()))];

    private static ChatToolChoice ToChoice(ChatToolMode? mode, List<ChatTemplateTool> tools) => mode switch
    {
        NoneChatToolMode => ChatToolChoice.None,
        RequiredChatToolMode { RequiredFunctionName: { } name } when tools.Any(t => t.Name == name) => ChatToolChoice.Function(name),
        RequiredChatToolMode { RequiredFunctionName: { } name } =>
            throw new LlmPqRequestException($"The tool mode requires the function '{name}', which is not among the {tools.Count} tools given."),
        RequiredChatToolMode when tools.Count == 0 => throw new LlmPqRequestException("The tool mode requires a function call, but no tools were given."),
        RequiredChatToolMode => ChatToolChoice.Required,
        _ => ChatToolChoice.Auto,
    };
}
