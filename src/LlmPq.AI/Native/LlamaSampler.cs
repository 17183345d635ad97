using System.Runtime.InteropServices;

namespace LlmPq.Native;

/// <summary>The sampling settings of one sequence, in llama.cpp's terms.</summary>
internal sealed record SamplingSettings
{
    /// <summary>Gets the temperature; 0 or less samples greedily.</summary>
    public float Temperature { get; init; }

    /// <summary>Gets top-k (0 disables).</summary>
    public int TopK { get; init; }

    /// <summary>Gets top-p (1 disables).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Gets min-p (0 disables).</summary>
    public float MinP { get; init; }

    /// <summary>Gets the seed of the random draw.</summary>
    public uint Seed { get; init; } = 0xFFFFFFFF;

    /// <summary>Gets the repetition penalty (1 disables).</summary>
    public float RepeatPenalty { get; init; } = 1f;

    /// <summary>Gets the frequency penalty (0 disables).</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Gets the presence penalty (0 disables).</summary>
    public float PresencePenalty { get; init; }

    /// <summary>Gets how many recent tokens the penalties look at.</summary>
    public int PenaltyLastN { get; init; } = 64;

    /// <summary>Gets a GBNF grammar the output must follow, or null.</summary>
    public string? Grammar { get; init; }

    /// <summary>
    /// Gets a value indicating whether <see cref="Grammar"/> only applies once the output matches a trigger
    /// (<see cref="GrammarTriggerPatterns"/> or <see cref="GrammarTriggerTokens"/>), as for tool calls the model may or may not make.
    /// </summary>
    public bool GrammarLazy { get; init; }

    /// <summary>Gets the regular expressions that start a lazy grammar (<see cref="ChatPrompt.TriggerPatterns"/>).</summary>
    public IReadOnlyList<string> GrammarTriggerPatterns { get; init; } = [];

    /// <summary>Gets the tokens that start a lazy grammar (<see cref="ChatPrompt.TriggerTokens"/>).</summary>
    public IReadOnlyList<int> GrammarTriggerTokens { get; init; } = [];

    /// <summary>Gets tokens the grammar accepts before the first sample: text it expects that the prompt already holds (<see cref="ChatPrompt.GrammarPrefill"/>).</summary>
    public IReadOnlyList<int> GrammarPrefill { get; init; } = [];
}

/// <summary>
/// A llama.cpp sampler chain built from <see cref="SamplingSettings"/>. Not thread-safe.
/// A grammar is kept out of the chain and checked lazily, as llama.cpp's own <c>common_sampler</c> does: the chain
/// samples first and the grammar only vetoes, which spares evaluating it against the whole vocabulary for every
/// token; only a vetoed token makes it filter all candidates and sample again.
/// </summary>
internal sealed unsafe class LlamaSampler : IDisposable
{
    private readonly LlamaSamplerHandle _chain;
    private readonly LlamaSamplerHandle? _grammar;
    private LlamaTokenData[] _candidates = [];

    /// <summary>Builds the chain: penalties, then greedy, or top-k, top-p, min-p, temperature and a seeded draw; and the grammar beside it.</summary>
    public LlamaSampler(LlamaModel model, SamplingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Grammar is not null)
        {
            using LlamaBackend.ErrorCapture errors = LlamaBackend.CaptureErrors();
            _grammar = InitGrammar(LlamaNative.llama_model_get_vocab(model.Handle), settings);
            if (_grammar.IsInvalid)
            {
                _grammar.Dispose();
                throw new ArgumentException($"llama.cpp rejected the grammar: {errors.Summary}", nameof(settings));
            }

            foreach (int token in settings.GrammarPrefill)
            {
                // llama_sampler_accept throws a C++ exception for a token the grammar rejects; it must not get one.
                if (!GrammarAllows(token))
                {
                    _grammar.Dispose();
                    throw new ArgumentException($"The grammar rejects token {token} of its prefill.", nameof(settings));
                }

                LlamaNative.llama_sampler_accept(_grammar, token);
            }
        }

        _chain = LlamaNative.llama_sampler_chain_init(LlamaNative.llama_sampler_chain_default_params());

        if (settings.RepeatPenalty != 1f || settings.FrequencyPenalty != 0f || settings.PresencePenalty != 0f)
        {
            Add(LlamaNative.llama_sampler_init_penalties(settings.PenaltyLastN, settings.RepeatPenalty, settings.FrequencyPenalty, settings.PresencePenalty));
        }

        if (settings.Temperature <= 0f)
        {
            Add(LlamaNative.llama_sampler_init_greedy());
            return;
        }

        if (settings.TopK > 0)
        {
            Add(LlamaNative.llama_sampler_init_top_k(settings.TopK));
        }

        if (settings.TopP < 1f)
        {
            Add(LlamaNative.llama_sampler_init_top_p(settings.TopP, 1));
        }

        if (settings.MinP > 0f)
        {
            Add(LlamaNative.llama_sampler_init_min_p(settings.MinP, 1));
        }

        Add(LlamaNative.llama_sampler_init_temp(settings.Temperature));
        Add(LlamaNative.llama_sampler_init_dist(settings.Seed));
    }

    /// <summary>Samples a token from the logits of batch entry <paramref name="index"/> and accepts it into the samplers' state.</summary>
    public int Sample(LlamaContext context, int index)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_grammar is null)
        {
            return LlamaNative.llama_sampler_sample(_chain, context.Handle, index);
        }

        ReadOnlySpan<float> logits = context.Logits(index);
        int token = Apply(logits, grammarFirst: false);
        if (!GrammarAllows(token))
        {
            token = Apply(logits, grammarFirst: true);
        }

        LlamaNative.llama_sampler_accept(_grammar, token);
        LlamaNative.llama_sampler_accept(_chain, token);
        return token;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _chain.Dispose();
        _grammar?.Dispose();
    }

    private static LlamaSamplerHandle InitGrammar(IntPtr vocab, SamplingSettings settings)
    {
        if (!settings.GrammarLazy)
        {
            return LlamaNative.llama_sampler_init_grammar_handle(vocab, settings.Grammar!, "root");
        }

        IntPtr[] patterns = [.. settings.GrammarTriggerPatterns.Select(Marshal.StringToCoTaskMemUTF8)];
        int[] tokens = [.. settings.GrammarTriggerTokens];
        try
        {
            fixed (IntPtr* p = patterns)
            fixed (int* t = tokens)
            {
                return LlamaNative.llama_sampler_init_grammar_lazy_patterns_handle(vocab, settings.Grammar!, "root", p, (nuint)patterns.Length, t, (nuint)tokens.Length);
            }
        }
        finally
        {
            foreach (IntPtr pattern in patterns)
            {
                Marshal.FreeCoTaskMem(pattern);
            }
        }
    }

    /// <summary>Asks the grammar about one token without changing its state.</summary>
    private bool GrammarAllows(int token)
    {
        var single = new LlamaTokenData { Id = token, Logit = 1f };
        var one = new LlamaTokenDataArray { Data = &single, Size = 1, Selected = -1 };
        LlamaNative.llama_sampler_apply(_grammar!, &one);
        return !float.IsNegativeInfinity(single.Logit);
    }

    /// <summary>Runs the chain (after the grammar when asked) over all candidates and returns the selected token.</summary>
    private int Apply(ReadOnlySpan<float> logits, bool grammarFirst)
    {
        if (_candidates.Length != logits.Length)
        {
            _candidates = new LlamaTokenData[logits.Length];
        }

        for (int i = 0; i < logits.Length; i++)
        {
            _candidates[i] = new LlamaTokenData { Id = i, Logit = logits[i] };
        }

        fixed (LlamaTokenData* data = _candidates)
        {
            var array = new LlamaTokenDataArray { Data = data, Size = (nuint)logits.Length, Selected = -1 };
            if (grammarFirst)
            {
                LlamaNative.llama_sampler_apply(_grammar!, &array);
            }

            LlamaNative.llama_sampler_apply(_chain, &array);
            return array.Selected >= 0 && array.Selected < (long)array.Size
                ? array.Data[array.Selected].Id
                : throw new LlamaException("The sampler chain selected no token.");
        }
    }

    private void Add(IntPtr sampler) => LlamaNative.llama_sampler_chain_add(_chain, sampler);
}
