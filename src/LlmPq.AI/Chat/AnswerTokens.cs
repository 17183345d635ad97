namespace LlmPq.Chat;

/// <summary>
/// The token ids of recent answers, by their exact text, so that a conversation that sends an answer back is prompted
/// with the tokens that produced it: the tokenizer's own split of the text can differ from the sampled tokens, and the
/// prompt would then leave the cells the answer left in the KV cache a few tokens into it. Least recently used
/// answers go first when either bound is reached. Thread-safe.
/// </summary>
internal sealed class AnswerTokens
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _byText = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recent = new();
    private long _tokens;

    /// <summary>Initializes a new instance of the <see cref="AnswerTokens"/> class.</summary>
    /// <param name="maxAnswers">The most answers remembered.</param>
    /// <param name="maxTokens">The most tokens remembered over all answers.</param>
    public AnswerTokens(int maxAnswers, long maxTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxAnswers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTokens);
        MaxAnswers = maxAnswers;
        MaxTokens = maxTokens;
    }

    /// <summary>Gets the most answers remembered.</summary>
    public int MaxAnswers { get; }

    /// <summary>Gets the most tokens remembered over all answers.</summary>
    public long MaxTokens { get; }

    /// <summary>Gets how many answers are remembered.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byText.Count;
            }
        }
    }

    /// <summary>Gets how many tokens are remembered over all answers.</summary>
    public long TokenCount
    {
        get
        {
            lock (_lock)
            {
                return _tokens;
            }
        }
    }

    /// <summary>
    /// Remembers an answer's tokens; the caller has checked that they render exactly <paramref name="text"/>. An answer
    /// longer than <see cref="MaxTokens"/> is not remembered; a text remembered already takes the new tokens.
    /// </summary>
    public void Add(string text, int[] tokens)
    {
        if (text.Length == 0 || tokens.Length == 0 || tokens.Length > MaxTokens)
        {
            return;
        }

        lock (_lock)
        {
            if (_byText.Remove(text, out LinkedListNode<Entry>? old))
            {
                Remove(old);
            }

            _byText[text] = _recent.AddFirst(new Entry(text, tokens));
            _tokens += tokens.Length;
            while (_byText.Count > MaxAnswers || _tokens > MaxTokens)
            {
                LinkedListNode<Entry> last = _recent.Last!;
                _byText.Remove(last.Value.Text);
                Remove(last);
            }
        }
    }

    /// <summary>Gets the tokens of an answer remembered by its exact text, and makes it the most recently used.</summary>
    public bool TryGet(string text, out int[] tokens)
    {
        lock (_lock)
        {
            if (_byText.TryGetValue(text, out LinkedListNode<Entry>? node))
            {
                _recent.Remove(node);
                _recent.AddFirst(node);
                tokens = node.Value.Tokens;
                return true;
            }
        }

        tokens = [];
        return false;
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _recent.Remove(node);
        _tokens -= node.Value.Tokens.Length;
    }

    private sealed record Entry(string Text, int[] Tokens);
}
