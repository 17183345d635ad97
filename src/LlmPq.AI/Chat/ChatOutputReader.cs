using System.Globalization;
using System.Text;
using System.Text.Json;
using LlmPq.Native;
using Microsoft.Extensions.AI;

namespace LlmPq.Chat;

/// <summary>
/// Reads one answer as it streams with llama.cpp's parser for the prompt's format: answer text and reasoning go out
/// as they grow, and each tool call once it is complete (a later call has begun, or the answer has ended).
/// </summary>
/// <param name="syntax">The parser state of the rendered prompt.</param>
/// <param name="maxCalls">The most calls sent (1 when parallel calls are off); later ones are dropped.</param>
internal sealed class ChatOutputReader(ChatSyntax syntax, int maxCalls)
{
    private readonly StringBuilder _text = new();
    private string _content = string.Empty;
    private string _reasoning = string.Empty;
    private int _calls;

    /// <summary>Gets llama.cpp's reason when the finished answer did not follow the format (it was sent as text), or null.</summary>
    public string? FormatError { get; private set; }

    /// <summary>Gets a value indicating whether a tool call was emitted.</summary>
    public bool CalledTools => _calls > 0;

    /// <summary>Adds generated text; returns what can be sent now.</summary>
    public List<AIContent> Push(string delta)
    {
        _text.Append(delta);
        ParsedMessage parsed;
        try
        {
            parsed = ChatTemplates.Parse(_text.ToString(), partial: true, syntax);
        }
        catch (LlamaException)
        {
            return []; // not readable yet; the final parse decides
        }

        return Diff(parsed, completeCalls: parsed.ToolCalls.Count - 1);
    }

    /// <summary>
    /// Ends the answer; returns the rest, with every call. Text the format cannot read is sent as text; a last call cut
    /// by the output limit (<paramref name="truncated"/>) whose arguments are unfinished is dropped.
    /// </summary>
    public List<AIContent> Finish(bool truncated)
    {
        ParsedMessage parsed;
        try
        {
            parsed = ChatTemplates.Parse(_text.ToString(), partial: false, syntax);
        }
        catch (LlamaException ex)
        {
            FormatError = ex.Message;
            parsed = new ParsedMessage(_text.ToString(), _reasoning, []);
        }

        int complete = parsed.ToolCalls.Count;
        if (truncated && complete > 0 && !IsJsonObject(parsed.ToolCalls[^1].Arguments))
        {
            complete--;
        }

        return Diff(parsed, complete);
    }

    private static bool IsJsonObject(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private List<AIContent> Diff(ParsedMessage parsed, int completeCalls)
    {
        var contents = new List<AIContent>();
        if (parsed.ReasoningContent.Length > _reasoning.Length && parsed.ReasoningContent.StartsWith(_reasoning, StringComparison.Ordinal))
        {
            contents.Add(new TextReasoningContent(parsed.ReasoningContent[_reasoning.Length..]));
            _reasoning = parsed.ReasoningContent;
        }

        // A partial parse may hold back text that could start a call; text already sent is never taken back.
        if (parsed.Content.Length > _content.Length && parsed.Content.StartsWith(_content, StringComparison.Ordinal))
        {
            contents.Add(new TextContent(parsed.Content[_content.Length..]));
            _content = parsed.Content;
        }

        for (; _calls < Math.Min(completeCalls, maxCalls); _calls++)
        {
            ChatToolCall call = parsed.ToolCalls[_calls];
            string id = call.Id.Length > 0 ? call.Id : string.Create(CultureInfo.InvariantCulture, $"call_{Guid.NewGuid():N}")[..29];
            contents.Add(FunctionCallContent.CreateFromParsedArguments(
                call.Arguments.Length == 0 ? "{}" : call.Arguments,
                id,
                call.Name,
                arguments => JsonSerializer.Deserialize<Dictionary<string, object?>>(arguments, AIJsonUtilities.DefaultOptions)));
        }

        return contents;
    }
}
