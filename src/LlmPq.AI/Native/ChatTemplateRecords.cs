using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmPq.Native;

/// <summary>One message of a chat, in the OpenAI chat-completions shape llama.cpp's chat layer reads.</summary>
/// <param name="Role">system, user, assistant or tool.</param>
/// <param name="Content">The text; null for an assistant message that only calls tools.</param>
internal sealed record ChatTemplateMessage(string Role, string? Content)
{
    /// <summary>Gets the tool calls of an assistant message.</summary>
    public IReadOnlyList<ChatToolCall> ToolCalls { get; init; } = [];

    /// <summary>Gets the id of the call a tool message answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>Gets the name of the tool a tool message comes from.</summary>
    public string? Name { get; init; }

    /// <summary>Gets the reasoning of an assistant message, for templates that render it.</summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>A function call, in a request's history or parsed from output.</summary>
/// <param name="Name">The function's name.</param>
/// <param name="Id">The call's id (may be empty in parsed output: not every format carries one).</param>
/// <param name="Arguments">The arguments as JSON text.</param>
internal sealed record ChatToolCall(string Name, string Id, string Arguments);

/// <summary>A function the model may call.</summary>
/// <param name="Name">The function's name.</param>
/// <param name="Description">What it does, for the prompt.</param>
/// <param name="ParametersJson">The JSON schema of its arguments, as JSON text.</param>
internal sealed record ChatTemplateTool(string Name, string? Description, string ParametersJson);

/// <summary>Whether and which tool the model must call (OpenAI's <c>tool_choice</c>).</summary>
internal sealed record ChatToolChoice
{
    private ChatToolChoice(string mode, string? functionName)
    {
        Mode = mode;
        FunctionName = functionName;
    }

    /// <summary>Gets the model's choice: text or calls, the grammar applied lazily once a call starts.</summary>
    public static ChatToolChoice Auto { get; } = new("auto", null);

    /// <summary>Gets no calls: tools are described but not parsed or constrained.</summary>
    public static ChatToolChoice None { get; } = new("none", null);

    /// <summary>Gets at least one call: the grammar constrains the output from its first token.</summary>
    public static ChatToolChoice Required { get; } = new("required", null);

    /// <summary>Gets auto, none or required; "function" for <see cref="Function"/>.</summary>
    public string Mode { get; }

    /// <summary>Gets the function a <see cref="Function"/> choice forces.</summary>
    public string? FunctionName { get; }

    /// <summary>A call of this function: the shim narrows the tools to it and requires a call.</summary>
    public static ChatToolChoice Function(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new("function", name);
    }
}

/// <summary>What to render: a chat, its tools, and the output constraints.</summary>
internal sealed record ChatTemplateRequest
{
    /// <summary>Gets the chat so far.</summary>
    public required IReadOnlyList<ChatTemplateMessage> Messages { get; init; }

    /// <summary>Gets the tools the model may call.</summary>
    public IReadOnlyList<ChatTemplateTool> Tools { get; init; } = [];

    /// <summary>Gets whether and which tool must be called.</summary>
    public ChatToolChoice ToolChoice { get; init; } = ChatToolChoice.Auto;

    /// <summary>Gets whether several calls may come in one turn; null takes what the template supports, as llama-server does.</summary>
    public bool? ParallelToolCalls { get; init; }

    /// <summary>Gets a JSON schema (JSON text) the answer must follow, or null.</summary>
    public string? JsonSchema { get; init; }

    /// <summary>Gets a value indicating whether a reasoning model may think first.</summary>
    public bool EnableThinking { get; init; } = true;

    /// <summary>Gets a value indicating whether the prompt ends with the assistant's turn opened.</summary>
    public bool AddGenerationPrompt { get; init; } = true;
}

/// <summary>A grammar trigger: once generated, the lazy grammar starts constraining.</summary>
/// <param name="Type">token, word, pattern or pattern_full.</param>
/// <param name="Value">The word or regular expression (for a token, its text).</param>
/// <param name="Token">The token id of a token trigger.</param>
internal sealed record ChatGrammarTrigger(string Type, string Value, int? Token);

/// <summary>The state <see cref="ChatTemplates.Parse"/> needs to read output of one rendered prompt (llama.cpp's parser and format), as opaque JSON.</summary>
/// <param name="Json">The JSON text the shim returned.</param>
[JsonConverter(typeof(ChatSyntaxConverter))]
internal sealed record ChatSyntax(string Json);

/// <summary>A rendered prompt and how to constrain and parse what the model answers.</summary>
internal sealed record ChatPrompt
{
    /// <summary>Gets the prompt text, ending with the generation prompt when one was asked for.</summary>
    public required string Prompt { get; init; }

    /// <summary>Gets llama.cpp's name of the output format (for example <c>peg-native</c>).</summary>
    public required string Format { get; init; }

    /// <summary>Gets the GBNF grammar of the output, or empty when none applies.</summary>
    public required string Grammar { get; init; }

    /// <summary>Gets a value indicating whether the grammar only applies from a trigger on.</summary>
    public required bool GrammarLazy { get; init; }

    /// <summary>Gets the triggers of a lazy grammar, as llama-server would pass them (single preserved tokens as token triggers).</summary>
    public required IReadOnlyList<ChatGrammarTrigger> GrammarTriggers { get; init; }

    /// <summary>Gets the trigger patterns for <c>llama_sampler_init_grammar_lazy_patterns</c>.</summary>
    public required IReadOnlyList<string> TriggerPatterns { get; init; }

    /// <summary>Gets the trigger tokens for <c>llama_sampler_init_grammar_lazy_patterns</c>.</summary>
    public required IReadOnlyList<int> TriggerTokens { get; init; }

    /// <summary>Gets the tokens a non-lazy grammar must accept before sampling (the generation prompt it starts with).</summary>
    public required IReadOnlyList<int> GrammarPrefill { get; init; }

    /// <summary>
    /// Gets llama.cpp's complaint when its grammar sampler cannot be built from <see cref="Grammar"/>, the triggers and
    /// the prefill (the check behind llama-server's "Failed to initialize samplers"), or empty when it can.
    /// </summary>
    public required string GrammarError { get; init; }

    /// <summary>Gets the texts the tokenizer must keep as single tokens.</summary>
    public required IReadOnlyList<string> PreservedTokens { get; init; }

    /// <summary>Gets the ids of the preserved texts that are single tokens of this vocabulary.</summary>
    public required IReadOnlyList<int> PreservedTokenIds { get; init; }

    /// <summary>Gets stop strings beyond the end-of-generation tokens.</summary>
    public required IReadOnlyList<string> AdditionalStops { get; init; }

    /// <summary>Gets the text that opens the assistant's turn (llama.cpp's replacement of <c>thinking_forced_open</c>: it ends with the thinking tag when thinking is forced).</summary>
    public required string GenerationPrompt { get; init; }

    /// <summary>Gets a value indicating whether the template has a reasoning section.</summary>
    public required bool SupportsThinking { get; init; }

    /// <summary>Gets the tag that opens reasoning, or empty.</summary>
    public required string ThinkingStartTag { get; init; }

    /// <summary>Gets the tags that close reasoning.</summary>
    public required IReadOnlyList<string> ThinkingEndTags { get; init; }

    /// <summary>Gets what <see cref="ChatTemplates.Parse"/> needs for this prompt's output.</summary>
    public required ChatSyntax Syntax { get; init; }
}

/// <summary>Model output split by llama.cpp's parser.</summary>
/// <param name="Content">The answer text.</param>
/// <param name="ReasoningContent">The extracted reasoning, or empty.</param>
/// <param name="ToolCalls">The calls, in order.</param>
internal sealed record ParsedMessage(string Content, string ReasoningContent, IReadOnlyList<ChatToolCall> ToolCalls);

/// <summary>Keeps the syntax JSON as the raw text the shim wrote, so it goes back unchanged.</summary>
internal sealed class ChatSyntaxConverter : JsonConverter<ChatSyntax>
{
    public override ChatSyntax Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var document = JsonDocument.ParseValue(ref reader);
        return new ChatSyntax(document.RootElement.GetRawText());
    }

    public override void Write(Utf8JsonWriter writer, ChatSyntax value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteRawValue(value.Json);
    }
}

/// <summary>Reads the shim's results without reflection.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ChatPrompt))]
[JsonSerializable(typeof(ParsedMessage))]
internal sealed partial class ChatShimJsonContext : JsonSerializerContext
{
}
