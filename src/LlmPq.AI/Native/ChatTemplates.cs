using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace LlmPq.Native;

/// <summary>
/// A model's chat templates, through llama.cpp's own chat layer (<c>common/chat.h</c>, via <c>libllmpq-chat.so</c>):
/// its Jinja engine renders prompts with tools and tool history, and its per-template parser and grammar read and
/// constrain the answer. Apply and Parse keep no state between calls.
/// </summary>
internal sealed class ChatTemplates : IDisposable
{
    private readonly ChatTemplatesHandle _handle;

    private ChatTemplates(ChatTemplatesHandle handle) => _handle = handle;

    /// <summary>
    /// Loads the templates of <paramref name="model"/>, or <paramref name="templateOverride"/> (Jinja source) instead.
    /// A model without a template gets ChatML, as llama.cpp does.
    /// </summary>
    /// <exception cref="DllNotFoundException">The llama.cpp build has no chat shim.</exception>
    /// <exception cref="LlamaException">llama.cpp refused the template; the message is its own.</exception>
    public static ChatTemplates Create(LlamaModel model, string? templateOverride = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        string shim = Path.Combine(NativeLibraryLoader.Directory, LlmPqChatNative.FileName);
        if (!File.Exists(shim))
        {
            throw new DllNotFoundException(
                $"The llama.cpp build in '{NativeLibraryLoader.Directory}' has no {LlmPqChatNative.FileName}. " +
                "Run 'bash eng/build-native.sh' (it builds the chat shim from eng/native/llmpq-chat.cpp), " +
                "or run eng/native/build-chat.sh against the LLMPQ_LLAMA_DIR build.");
        }

        ChatTemplatesHandle handle = LlmPqChatNative.llmpq_chat_init(model.Handle, templateOverride, out IntPtr error);
        if (handle.IsInvalid)
        {
            handle.Dispose();
            throw new LlamaException($"llama.cpp could not load the chat template of '{model.Path}': {LlmPqChatNative.TakeString(error)}");
        }

        handle.Retain(model.Handle);
        return new ChatTemplates(handle);
    }

    /// <summary>Parses model output (the text after the prompt) into content, reasoning and tool calls.</summary>
    /// <param name="text">The generated text so far.</param>
    /// <param name="partial">True while generation goes on: an unfinished call or tag is not an error then.</param>
    /// <param name="syntax">The <see cref="ChatPrompt.Syntax"/> of the prompt the text answers.</param>
    /// <exception cref="LlamaException">The final text does not match the format; the message is llama.cpp's.</exception>
    public static ParsedMessage Parse(string text, bool partial, ChatSyntax syntax)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(syntax);
        string json = LlmPqChatNative.TakeString(LlmPqChatNative.llmpq_chat_parse(text, partial ? 1 : 0, syntax.Json))!;
        return Read(json, ChatShimJsonContext.Default.ParsedMessage, "parse the model output");
    }

    /// <summary>Renders a request with the template: the prompt, and the grammar, triggers and parser for the answer.</summary>
    /// <exception cref="LlamaException">llama.cpp refused the request or the template failed; the message is llama.cpp's.</exception>
    public ChatPrompt Apply(ChatTemplateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        string json = LlmPqChatNative.TakeString(LlmPqChatNative.llmpq_chat_apply(_handle, WriteRequest(request)))!;
        return Read(json, ChatShimJsonContext.Default.ChatPrompt, "apply the chat template");
    }

    /// <inheritdoc/>
    public void Dispose() => _handle.Dispose();

    private static T Read<T>(string json, JsonTypeInfo<T> type, string what)
    {
        // The shim's errors are objects whose only member is "error"; results never start with it.
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
        if (reader.Read() && reader.Read() && reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("error"u8))
        {
            reader.Read();
            throw new LlamaException($"llama.cpp could not {what}: {reader.GetString()}");
        }

        return JsonSerializer.Deserialize(json, type) ?? throw new LlamaException($"llama.cpp could not {what}: the shim returned null.");
    }

    // The OpenAI chat-completions shape common_chat_msgs_parse_oaicompat and common_chat_tools_parse_oaicompat read.
    private static string WriteRequest(ChatTemplateRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("messages");
            foreach (ChatTemplateMessage message in request.Messages)
            {
                WriteMessage(w, message);
            }

            w.WriteEndArray();
            if (request.Tools.Count > 0)
            {
                w.WriteStartArray("tools");
                foreach (ChatTemplateTool tool in request.Tools)
                {
                    w.WriteStartObject();
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", tool.Name);
                    if (tool.Description is not null)
                    {
                        w.WriteString("description", tool.Description);
                    }

                    w.WritePropertyName("parameters");
                    w.WriteRawValue(tool.ParametersJson);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            if (request.ToolChoice.FunctionName is string function)
            {
                w.WriteStartObject("tool_choice");
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", function);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            else
            {
                w.WriteString("tool_choice", request.ToolChoice.Mode);
            }

            if (request.ParallelToolCalls is bool parallel)
            {
                w.WriteBoolean("parallel_tool_calls", parallel);
            }

            if (request.JsonSchema is not null)
            {
                w.WritePropertyName("json_schema");
                w.WriteRawValue(request.JsonSchema);
            }

            w.WriteBoolean("enable_thinking", request.EnableThinking);
            w.WriteBoolean("add_generation_prompt", request.AddGenerationPrompt);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteMessage(Utf8JsonWriter w, ChatTemplateMessage message)
    {
        w.WriteStartObject();
        w.WriteString("role", message.Role);
        if (message.Content is not null || message.ToolCalls.Count == 0)
        {
            w.WriteString("content", message.Content);
        }

        if (message.ToolCalls.Count > 0)
        {
            w.WriteStartArray("tool_calls");
            foreach (ChatToolCall call in message.ToolCalls)
            {
                w.WriteStartObject();
                w.WriteString("id", call.Id);
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", call.Name);
                w.WriteString("arguments", call.Arguments);
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        if (message.ToolCallId is not null)
        {
            w.WriteString("tool_call_id", message.ToolCallId);
        }

        if (message.Name is not null)
        {
            w.WriteString("name", message.Name);
        }

        if (message.ReasoningContent is not null)
        {
            w.WriteString("reasoning_content", message.ReasoningContent);
        }

        w.WriteEndObject();
    }
}
