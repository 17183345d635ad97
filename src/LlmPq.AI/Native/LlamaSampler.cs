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
}

/// <summary>A llama.cpp sampler chain built from <see cref="SamplingSettings"/>. Not thread-safe.</summary>
internal sealed class LlamaSampler : IDisposable
{
    private readonly LlamaSamplerHandle _chain;

    /// <summary>Builds the chain: grammar, penalties, then greedy, or top-k, top-p, min-p, temperature and a seeded draw.</summary>
    public LlamaSampler(LlamaModel model, SamplingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        _chain = LlamaNative.llama_sampler_chain_init(LlamaNative.llama_sampler_chain_default_params());
        if (settings.Grammar is not null)
        {
            using LlamaBackend.ErrorCapture errors = LlamaBackend.CaptureErrors();
            IntPtr grammar = LlamaNative.llama_sampler_init_grammar(LlamaNative.llama_model_get_vocab(model.Handle), settings.Grammar, "root");
            if (grammar == IntPtr.Zero)
            {
                _chain.Dispose();
                throw new ArgumentException($"llama.cpp rejected the grammar: {errors.Summary}", nameof(settings));
            }

            Add(grammar);
        }

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

    /// <summary>Samples a token from the logits of batch entry <paramref name="index"/> and accepts it into the chain's state.</summary>
    public int Sample(LlamaContext context, int index)
    {
        ArgumentNullException.ThrowIfNull(context);
        return LlamaNative.llama_sampler_sample(_chain, context.Handle, index);
    }

    /// <summary>Tells the chain about a token it did not sample (a prompt token, for penalties).</summary>
    public void Accept(int token) => LlamaNative.llama_sampler_accept(_chain, token);

    /// <inheritdoc/>
    public void Dispose() => _chain.Dispose();

    private void Add(IntPtr sampler) => LlamaNative.llama_sampler_chain_add(_chain, sampler);
}
