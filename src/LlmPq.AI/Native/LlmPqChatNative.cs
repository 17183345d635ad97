using System.Runtime.InteropServices;

namespace LlmPq.Native;

#pragma warning disable SA1300, CA1707, IDE1006 // names follow eng/native/llmpq-chat.cpp so the binding reads against it

/// <summary>
/// Source-generated binding of <c>libllmpq-chat.so</c> (<c>eng/native/llmpq-chat.cpp</c>), LlmPq's C ABI over
/// llama.cpp's chat layer. Requests and results are UTF-8 JSON; every returned string is freed with
/// <see cref="llmpq_chat_free"/>; a failure returns <c>{"error": "..."}</c> with llama.cpp's message.
/// </summary>
internal static partial class LlmPqChatNative
{
    /// <summary>The import name the resolver maps to <c>libllmpq-chat.so</c>.</summary>
    public const string Library = "llmpq-chat";

    /// <summary>The file <c>eng/native/build-chat.sh</c> writes beside <c>libllama.so</c>.</summary>
    public const string FileName = "libllmpq-chat.so";

    static LlmPqChatNative() => NativeLibraryLoader.Register();

    /// <summary>Loads the model's chat templates (or <paramref name="templateOverride"/>); null with the reason in <paramref name="error"/> on failure.</summary>
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial ChatTemplatesHandle llmpq_chat_init(LlamaModelHandle model, string? templateOverride, out IntPtr error);

    [LibraryImport(Library)] public static partial void llmpq_chat_release(IntPtr templates);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr llmpq_chat_apply(ChatTemplatesHandle templates, string requestJson);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr llmpq_chat_parse(string text, int isPartial, string syntaxJson);

    [LibraryImport(Library)] public static partial void llmpq_chat_free(IntPtr text);

    /// <summary>Copies a string the shim returned and frees it.</summary>
    public static string? TakeString(IntPtr text)
    {
        try
        {
            return Marshal.PtrToStringUTF8(text);
        }
        finally
        {
            llmpq_chat_free(text);
        }
    }
}
