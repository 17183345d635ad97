namespace LlmPq.Scheduling;

/// <summary>
/// What the scheduler knows of one request: its tokens (prompt, then generated) and how many of them the KV cache
/// holds. Owned by the engine's loop thread; never shared.
/// </summary>
internal sealed class SequenceState
{
    private readonly List<int> _tokens;

    /// <summary>Creates the state of a new request.</summary>
    public SequenceState(long id, IReadOnlyList<int> prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        Id = id;
        PromptLength = prompt.Count;
        _tokens = [.. prompt];
    }

    /// <summary>Gets the arrival order: lower ids arrived first.</summary>
    public long Id { get; }

    /// <summary>Gets the prompt length in tokens.</summary>
    public int PromptLength { get; }

    /// <summary>Gets every token of the sequence so far: the prompt, then what was generated.</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Gets the generated token count.</summary>
    public int Generated => _tokens.Count - PromptLength;

    /// <summary>Gets how many leading tokens the KV cache holds for this sequence.</summary>
    public int Cached { get; private set; }

    /// <summary>Gets a value indicating whether the sequence may start from cells a finished one left in its slot (prefix reuse).</summary>
    public bool ReusesPrefix { get; init; } = true;

    /// <summary>Gets how many leading tokens the last admission found in its slot's cache instead of computing them.</summary>
    public int Reused { get; private set; }

    /// <summary>Gets the KV sequence slot while resident, or -1.</summary>
    public int Slot { get; private set; } = -1;

    /// <summary>Gets a value indicating whether the sequence holds a slot (admitted and not preempted).</summary>
    public bool IsResident => Slot >= 0;

    /// <summary>Gets the tokens still to be fed to the model before it can sample again.</summary>
    public int Pending => _tokens.Count - Cached;

    /// <summary>
    /// Gets a value indicating whether the sequence is in its decode phase: resident, fully prefilled, and waiting
    /// to feed back its last sampled token.
    /// </summary>
    public bool IsDecoding => IsResident && Generated > 0 && Pending == 1;

    /// <summary>Gets how many times the sequence was preempted and recomputed.</summary>
    public int Preemptions { get; private set; }

    /// <summary>Gives the sequence a slot whose cache already holds its first <paramref name="reused"/> tokens.</summary>
    public void Admit(int slot, int reused = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfNegative(reused);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(reused, _tokens.Count);
        Slot = slot;
        Cached = reused;
        Reused = reused;
    }

    /// <summary>Forgets the reused cells (the engine could not keep them): every token is computed.</summary>
    public void Recompute()
    {
        Cached = 0;
        Reused = 0;
    }

    /// <summary>Records that <paramref name="count"/> more tokens are now in the KV cache.</summary>
    public void MarkCached(int count) => Cached = Math.Min(_tokens.Count, Cached + count);

    /// <summary>Appends a sampled token (not yet in the cache).</summary>
    public void Append(int token) => _tokens.Add(token);

    /// <summary>Takes the slot away; the whole sequence (prompt and generated tokens) is recomputed on readmission.</summary>
    public void Evict()
    {
        Slot = -1;
        Cached = 0;
        Preemptions++;
    }

    /// <summary>Releases the slot for good.</summary>
    public void Release()
    {
        Slot = -1;
        Cached = 0;
    }
}
