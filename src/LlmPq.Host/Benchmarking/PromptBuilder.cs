using LlmPq.Native;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// Builds the text of a message: a head, then seeded words, as many as make the counted text exactly the requested
/// length where the words allow it. The head makes texts differ from their start, so two share no prefix a server could cache.
/// </summary>
internal sealed class PromptBuilder(Func<string, int> countTokens)
{
    // Short common words: one token each in most vocabularies, so the length can be met exactly.
    private static readonly string[] s_words =
    [
        "the", "river", "carries", "light", "across", "old", "stones", "while", "birds", "count", "hours", "a",
        "small", "town", "near", "green", "hills", "keeps", "its", "bread", "warm", "and", "every", "door",
        "opens", "to", "wind", "from", "sea", "people", "walk", "slowly", "past", "quiet", "gardens", "at", "night",
    ];

    /// <summary>
    /// Builds <paramref name="before"/>, then <paramref name="head"/> and words drawn from <paramref name="seed"/>, so
    /// that the whole counts (as near as the words allow) <paramref name="tokens"/> tokens.
    /// </summary>
    public string Build(string head, int seed, int tokens, string before = "")
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens);
        var random = new Random(seed);
        string[] words = [.. Enumerable.Range(0, tokens).Select(_ => s_words[random.Next(s_words.Length)])];
        string start = before + head;
        string Text(int count) => count == 0 ? start : start + " " + string.Join(' ', words, 0, count);

        // Every word is at least one token, so at most `tokens` words fit; the count grows with the words.
        int lo = 0, hi = tokens;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (countTokens(Text(mid)) <= tokens)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        // A word of several tokens can leave a gap of a few: close it with one-token words.
        string prompt = Text(lo);
        for (int gap = tokens - countTokens(prompt); gap > 0; gap--)
        {
            string longer = prompt + " a";
            if (countTokens(longer) > tokens)
            {
                break;
            }

            prompt = longer;
        }

        return prompt;
    }
}

/// <summary>
/// Counts the tokens a chat server of this model prefills for one user message: the model's chat template (ChatML
/// when it has none), tokenized with special tokens, as <c>LlmPqChatClient</c> and llama-server do. Loads only the vocabulary.
/// </summary>
internal sealed class PromptTokenCounter : IDisposable
{
    private readonly LlamaModel _model;
    private readonly string _bos;

    public PromptTokenCounter(string modelPath)
    {
        _model = LlamaModel.Load(modelPath, new LlamaModelLoadOptions { VocabularyOnly = true });
        _bos = _model.BosToken >= 0 ? _model.Detokenize([_model.BosToken], removeSpecial: false, unparseSpecial: true) : string.Empty;
    }

    public int Count(string userMessage)
    {
        (string, string)[] turns = [("user", userMessage)];
        string text = _model.ApplyChatTemplate(turns, addAssistantPrefix: true)
            ?? _model.ApplyChatTemplate(turns, addAssistantPrefix: true, template: "chatml")
            ?? userMessage;

        // A template that writes the BOS text itself gets no second one.
        bool bosWritten = _bos.Length > 0 && text.StartsWith(_bos, StringComparison.Ordinal);
        return _model.Tokenize(text, addSpecial: !bosWritten, parseSpecial: true).Length;
    }

    public void Dispose() => _model.Dispose();
}
