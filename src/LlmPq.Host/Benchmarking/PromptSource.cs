using System.Globalization;

namespace LlmPq.Host.Benchmarking;

/// <summary>The shape of every request of a workload: its turns, and the prefix all requests of a round share.</summary>
/// <param name="Turns">User messages per conversation: each turn sends the earlier turns and their answers, then a new message.</param>
/// <param name="SharedPrefixTokens">Tokens of a text that starts every request's first message.</param>
internal sealed record ConversationShape(int Turns, int SharedPrefixTokens)
{
    /// <summary>Gets the shape of one message with no shared prefix.</summary>
    public static ConversationShape Single { get; } = new(1, 0);

    /// <summary>Gets the tokens a conversation of <paramref name="request"/>'s lengths holds at its last answer (about: each turn's template counts in its prompt).</summary>
    public long TokensAtLastAnswer(BenchRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SharedPrefixTokens + ((long)Turns * (request.PromptTokens + request.OutputTokens));
    }
}

/// <summary>
/// Writes the texts of a workload's requests afresh for every round (a warm-up request, an idle TTFT try, a run, each
/// capacity probe), so no round resends another's prompts and a target's prompt cache reuses only what the workload
/// repeats on purpose: the shared prefix within a round, and each conversation's earlier turns.
/// </summary>
/// <remarks>
/// A request's first message counts <see cref="ConversationShape.SharedPrefixTokens"/> plus its prompt length, with
/// the model's chat template; every later message counts its prompt length as a message alone, so a turn adds about
/// that many tokens (the template of one turn is about the template of a message alone).
/// </remarks>
internal sealed class PromptSource
{
    private readonly Func<string, int> _countTokens;
    private readonly PromptBuilder _builder;
    private readonly int _seed;
    private int _round;

    /// <summary>Initializes a source of the texts of <paramref name="workload"/>.</summary>
    /// <param name="countTokens">Counts the tokens a server prefills for one user message.</param>
    /// <param name="workload">The requests: their arrivals and lengths.</param>
    /// <param name="shape">Turns and shared prefix.</param>
    /// <param name="seed">The seed of the words; a seed and a round always give the same texts.</param>
    public PromptSource(Func<string, int> countTokens, IReadOnlyList<BenchRequest> workload, ConversationShape shape, int seed)
    {
        ArgumentNullException.ThrowIfNull(countTokens);
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(shape);
        _countTokens = countTokens;
        _builder = new PromptBuilder(countTokens);
        Workload = workload;
        Shape = shape;
        _seed = seed;
    }

    /// <summary>Gets the requests.</summary>
    public IReadOnlyList<BenchRequest> Workload { get; }

    /// <summary>Gets the turns and shared prefix of every request.</summary>
    public ConversationShape Shape { get; }

    /// <summary>The whole workload in texts no earlier round had.</summary>
    public BenchPrompt[] Next() => Round(Workload, Shape.Turns);

    /// <summary>One request alone, its first turn only, in texts no earlier round had.</summary>
    public BenchPrompt Alone(BenchRequest request) => Round([request], 1)[0];

    private BenchPrompt[] Round(IReadOnlyList<BenchRequest> requests, int turns)
    {
        int round = ++_round;
        var c = CultureInfo.InvariantCulture;
        string prefix = string.Empty;
        int prefixTokens = 0;
        if (Shape.SharedPrefixTokens > 0)
        {
            // The prefix's own tokens: the message it makes, less the template of an empty message.
            int template = _countTokens(string.Empty);
            prefix = _builder.Build(string.Create(c, $"Context {round}:"), Seed(round, -1, 0), template + Shape.SharedPrefixTokens);
            prefixTokens = _countTokens(prefix) - template;
            prefix += "\n";
        }

        return [.. requests.Select(r => new BenchPrompt(r, _builder.Build(string.Create(c, $"Request {round}.{r.Index}:"), Seed(round, r.Index, 1), prefixTokens + r.PromptTokens, prefix))
        {
            FollowUps = [.. Enumerable.Range(2, turns - 1).Select(turn => _builder.Build(string.Create(c, $"Turn {turn} of request {round}.{r.Index}:"), Seed(round, r.Index, turn), r.PromptTokens))],
            SharedPrefixTokens = prefixTokens,
        })];
    }

    private int Seed(int round, int index, int turn) => unchecked((((((_seed * 1_000_003) + round) * 1_000_003) + index) * 131) + turn);
}
