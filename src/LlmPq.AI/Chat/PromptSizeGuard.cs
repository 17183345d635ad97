using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using LlmPq.Engine;
using LlmPq.Native;
using Microsoft.Extensions.AI;

namespace LlmPq.Chat;

/// <summary>
/// Refuses a prompt too long for the context from its size alone, before the template renders it and the tokenizer
/// reads it: no token covers more bytes than the model's longest piece, so the messages' UTF-8 bytes divided by that
/// length bound the token count from below. A 10 MB message then costs a byte count, not a tokenization.
/// </summary>
internal static class PromptSizeGuard
{
    private static readonly ConditionalWeakTable<LlamaModel, StrongBox<int>> s_longestPiece = [];

    /// <summary>Throws when the text of <paramref name="messages"/> alone needs more tokens than a conversation holds.</summary>
    /// <exception cref="LlmPqRequestException">The prompt cannot fit (<c>context_length_exceeded</c>).</exception>
    public static void Check(LlmPqEngine engine, IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(messages);
        int context = engine.ContextLength;

        // A token is at least one byte, so text no longer than the context can fit whatever the vocabulary; the engine
        // that is not ready yet is reported by the caller.
        long bytes = messages.Sum(m => m.Contents.OfType<TextContent>().Sum(t => (long)Encoding.UTF8.GetByteCount(t.Text)));
        if (bytes <= context || !engine.IsReady)
        {
            return;
        }

        int longest = s_longestPiece.GetValue(engine.Model, model => new StrongBox<int>(LongestPiece(model))).Value;
        if (bytes > (long)context * longest)
        {
            throw new LlmPqRequestException(
                "context_length_exceeded",
                $"The messages hold {bytes} bytes of text, so at least {bytes / longest} tokens (no token of this model covers more than {longest} bytes); "
                + $"a conversation holds at most {context}. Shorten the conversation or raise LlmPq:ContextLength.");
        }
    }

    /// <summary>Gets the length in bytes of the model's longest token piece, special tokens included (the prompt parses them).</summary>
    private static int LongestPiece(LlamaModel model)
    {
        var piece = new ArrayBufferWriter<byte>();
        int longest = 1;
        for (int token = 0; token < model.VocabularySize; token++)
        {
            piece.ResetWrittenCount();
            model.AppendPiece(token, piece, special: true);
            longest = Math.Max(longest, piece.WrittenCount);
        }

        return longest;
    }
}
