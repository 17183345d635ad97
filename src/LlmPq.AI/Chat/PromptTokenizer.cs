using System.Buffers;
using System.Text;
using LlmPq.Native;
using Microsoft.Extensions.Logging;

namespace LlmPq.Chat;

/// <summary>
/// Turns a rendered chat prompt into tokens, prompting earlier answers as the tokens that produced them (remembered by
/// their text in <see cref="AnswerTokens"/>), so that a conversation's next turn starts with the cells its previous turn
/// left in the KV cache. Thread-safe.
/// </summary>
internal sealed partial class PromptTokenizer
{
    /// <summary>The most answers whose tokens are remembered (see <see cref="AnswerTokens"/>).</summary>
    private const int MaxRememberedAnswers = 4096;

    /// <summary>
    /// Put before a piece of the prompt that follows an answer's tokens, then dropped with its tokens: a character no
    /// vocabulary merges with its neighbours, so that the piece is tokenized as the continuation of a text (a
    /// SentencePiece tokenizer would otherwise put a space before its first word).
    /// </summary>
    private const string Continuation = "\u0001";

    private static readonly byte[] s_continuation = Encoding.UTF8.GetBytes(Continuation);

    private readonly AnswerTokens _answers;
    private readonly ILogger _logger;

    /// <summary>Initializes a new instance of the <see cref="PromptTokenizer"/> class.</summary>
    /// <param name="maxTokens">The most answer tokens remembered: what the KV cache can hold.</param>
    /// <param name="logger">Where substitutions are logged (Debug).</param>
    public PromptTokenizer(long maxTokens, ILogger logger)
    {
        _answers = new AnswerTokens(MaxRememberedAnswers, maxTokens);
        _logger = logger;
    }

    /// <summary>
    /// Remembers an answer's tokens when they render exactly the text its caller got (not when a stop sequence cut it,
    /// or a reader took tool calls or reasoning out of it), so that the answer, sent back, is prompted as these tokens.
    /// A byte that is no UTF-8 character on its own (a character cut by the output limit, or a model sampling bytes)
    /// reached the caller as U+FFFD, and is compared so: sent back, the answer is prompted as what the model produced.
    /// </summary>
    public void Remember(LlamaModel model, string text, IReadOnlyList<int> output)
    {
        if (text.Length > 0 && output.Count > 0 && string.Equals(Render(model, output), text, StringComparison.Ordinal))
        {
            _answers.Add(text, [.. output]);
        }
    }

    /// <summary>
    /// Tokenizes a rendered prompt. An earlier answer whose tokens are remembered is prompted as those tokens, not as its
    /// text tokenized again: they are what the KV cache holds after the turn that produced them, and the tokenizer's own
    /// split of their text can differ, which would leave that cache a few tokens into the answer. The text before the
    /// first such answer is tokenized as a whole prompt is, so it gives the earlier turn's prompt tokens; each later
    /// piece as the continuation of a text. Where that would not render the text an ordinary tokenization renders, the
    /// prompt is tokenized as a whole.
    /// </summary>
    public int[] Tokenize(LlamaModel model, string prompt, IReadOnlyList<ChatTemplateMessage> messages)
    {
        bool addSpecial = !StartsWithBos(model, prompt);
        int[] whole = model.Tokenize(prompt, addSpecial, parseSpecial: true);
        List<(int Start, int Length, int[] Tokens)> answers = FindAnswers(prompt, messages);
        if (answers.Count == 0)
        {
            return whole;
        }

        var tokens = new List<int>(whole.Length);
        int at = 0;
        int answerTokens = 0;
        foreach ((int start, int length, int[] ids) in answers)
        {
            answerTokens += ids.Length;
            tokens.AddRange(at == 0 ? model.Tokenize(prompt[..start], addSpecial, parseSpecial: true) : TokenizeContinuation(model, prompt[at..start]));
            tokens.AddRange(ids);
            at = start + length;
        }

        tokens.AddRange(TokenizeContinuation(model, prompt[at..]));
        if (!string.Equals(Render(model, tokens), Render(model, whole), StringComparison.Ordinal))
        {
            LogAnswerTokensNotUsed(_logger, answers.Count);
            return whole;
        }

        LogAnswerTokensUsed(_logger, answers.Count, answerTokens);
        return [.. tokens];
    }

    /// <summary>
    /// Finds, in order, the remembered answers of a conversation in its rendered prompt: each message's text is looked
    /// for after the previous one found (a template that changes a text leaves it unfound, and that answer tokenized
    /// with the rest).
    /// </summary>
    private List<(int Start, int Length, int[] Tokens)> FindAnswers(string prompt, IReadOnlyList<ChatTemplateMessage> messages)
    {
        var found = new List<(int, int, int[])>();
        int at = 0;
        foreach (ChatTemplateMessage message in messages)
        {
            if (string.IsNullOrEmpty(message.Content) || prompt.IndexOf(message.Content, at, StringComparison.Ordinal) is not (>= 0 and int start))
            {
                continue;
            }

            if (message.Role == "assistant" && _answers.TryGet(message.Content, out int[] ids))
            {
                found.Add((start, message.Content.Length, ids));
            }

            at = start + message.Content.Length;
        }

        return found;
    }

    /// <summary>
    /// Tokenizes a piece of the prompt that follows other tokens as the whole prompt's tokenization would continue there:
    /// behind <see cref="Continuation"/>, whose tokens are dropped, where they are a piece of their own.
    /// </summary>
    private static int[] TokenizeContinuation(LlamaModel model, string text)
    {
        if (text.Length == 0)
        {
            return [];
        }

        int[] tokens = model.Tokenize(Continuation + text, addSpecial: false, parseSpecial: true);
        var rendered = new ArrayBufferWriter<byte>();
        for (int i = 0; i < tokens.Length; i++)
        {
            model.AppendPiece(tokens[i], rendered, special: true);
            ReadOnlySpan<byte> head = rendered.WrittenSpan.TrimStart((byte)' ');
            if (head.Length > 0)
            {
                return head.SequenceEqual(s_continuation) ? tokens[(i + 1)..] : model.Tokenize(text, addSpecial: false, parseSpecial: true);
            }
        }

        return model.Tokenize(text, addSpecial: false, parseSpecial: true);
    }

    /// <summary>
    /// Gets the text that tokens stand for, special tokens as their text, and U+FFFD for bytes that are no character
    /// (as the engine streams them).
    /// </summary>
    private static string Render(LlamaModel model, IEnumerable<int> tokens)
    {
        var rendered = new ArrayBufferWriter<byte>();
        foreach (int token in tokens)
        {
            model.AppendPiece(token, rendered, special: true);
        }

        return Encoding.UTF8.GetString(rendered.WrittenSpan);
    }

    private static bool StartsWithBos(LlamaModel model, string prompt)
    {
        string bos = model.Detokenize([model.BosToken], removeSpecial: false, unparseSpecial: true);
        return bos.Length > 0 && prompt.StartsWith(bos, StringComparison.Ordinal);
    }

    [LoggerMessage(EventId = 21, Level = LogLevel.Debug, Message = "The prompt holds {Answers} earlier answers as the {Tokens} tokens that produced them")]
    private static partial void LogAnswerTokensUsed(ILogger logger, int answers, int tokens);

    [LoggerMessage(EventId = 22, Level = LogLevel.Debug, Message = "The prompt's {Answers} earlier answers are tokenized as text: their tokens, with the text around them, would not render the prompt as its own tokenization does")]
    private static partial void LogAnswerTokensNotUsed(ILogger logger, int answers);
}
