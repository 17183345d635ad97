namespace LlmPq.Planning;

/// <summary>
/// Named model shapes for planning without a file: the models LLM-PQ evaluated (OPT-13B/30B/66B, BLOOM-176B) and
/// current open ones. The numbers are those of each model's Hugging Face <c>config.json</c>; the tensors are the ones
/// llama.cpp's converter writes for the architecture.
/// </summary>
public static class ModelPresets
{
    // Family layouts:
    //   opt:   LayerNorm (weight + bias), q/k/v/out and fc1/fc2 with biases, learned positions (2048 + 2 rows), tied output.
    //   bloom: LayerNorm, fused qkv, biases everywhere, a norm after the embedding, ALiBi (no position table), tied output.
    //   llama: RMSNorm, gated FFN (gate/up/down), no biases, separate output; qwen2 adds q/k/v biases.
    private static readonly Shape[] s_shapes =
    [
        new("opt-13b", Family.Opt, Embd: 5120, Ff: 20480, Layers: 40, Heads: 40, KvHeads: 40, Vocab: 50272, Context: 2048),
        new("opt-30b", Family.Opt, Embd: 7168, Ff: 28672, Layers: 48, Heads: 56, KvHeads: 56, Vocab: 50272, Context: 2048),
        new("opt-66b", Family.Opt, Embd: 9216, Ff: 36864, Layers: 64, Heads: 72, KvHeads: 72, Vocab: 50272, Context: 2048),
        new("bloom-176b", Family.Bloom, Embd: 14336, Ff: 57344, Layers: 70, Heads: 112, KvHeads: 112, Vocab: 250880, Context: 2048),
        new("llama-3.1-8b", Family.Llama, Embd: 4096, Ff: 14336, Layers: 32, Heads: 32, KvHeads: 8, Vocab: 128256, Context: 131072),
        new("llama-3.1-70b", Family.Llama, Embd: 8192, Ff: 28672, Layers: 80, Heads: 64, KvHeads: 8, Vocab: 128256, Context: 131072),
        new("qwen2.5-72b", Family.Qwen2, Embd: 8192, Ff: 29568, Layers: 80, Heads: 64, KvHeads: 8, Vocab: 152064, Context: 32768),
        new("mistral-7b", Family.Llama, Embd: 4096, Ff: 14336, Layers: 32, Heads: 32, KvHeads: 8, Vocab: 32000, Context: 32768),
    ];

    private enum Family
    {
        Opt,
        Bloom,
        Llama,
        Qwen2,
    }

    /// <summary>Gets the names <see cref="ModelSpec.Preset"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. s_shapes.Select(s => s.Name)];

    internal static ModelSpec Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var shape = s_shapes.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"There is no model preset '{name}'. Known presets: {string.Join(", ", Names)}.", nameof(name));
        return Build(shape);
    }

    private static ModelSpec Build(Shape s)
    {
        long e = s.Embd;
        int headDim = (int)(e / s.Heads);
        long kv = (long)s.KvHeads * headDim;
        bool layerNorm = s.Family is Family.Opt or Family.Bloom;
        long norm = layerNorm ? 2 * e : e; // LayerNorm has a bias, RMSNorm has not

        IReadOnlyList<MatrixSpec> matrices;
        long other;
        switch (s.Family)
        {
            case Family.Opt:
                matrices = [new("attn_q", e, e), new("attn_k", e, kv), new("attn_v", e, kv), new("attn_output", e, e), new("ffn_up", e, s.Ff), new("ffn_down", s.Ff, e)];
                other = (2 * norm) + e + kv + kv + e + s.Ff + e;
                break;
            case Family.Bloom:
                matrices = [new("attn_qkv", e, e + (2 * kv)), new("attn_output", e, e), new("ffn_up", e, s.Ff), new("ffn_down", s.Ff, e)];
                other = (2 * norm) + e + (2 * kv) + e + s.Ff + e;
                break;
            default:
                matrices = [new("attn_q", e, e), new("attn_k", e, kv), new("attn_v", e, kv), new("attn_output", e, e), new("ffn_gate", e, s.Ff), new("ffn_up", e, s.Ff), new("ffn_down", s.Ff, e)];
                other = (2 * norm) + (s.Family == Family.Qwen2 ? e + (2 * kv) : 0);
                break;
        }

        var layers = new LayerSpec[s.Layers];
        for (int i = 0; i < layers.Length; i++)
        {
            layers[i] = new LayerSpec(i, matrices, other, s.Heads, s.KvHeads, headDim);
        }

        bool tied = s.Family is Family.Opt or Family.Bloom;
        var embedding = new MatrixSpec("token_embd", e, s.Vocab);
        long input = s.Family switch
        {
            Family.Opt => e * (s.Context + 2), // position_embd: OPT offsets positions by 2
            Family.Bloom => norm, // token_embd_norm
            _ => 0,
        };
        return new ModelSpec
        {
            Name = s.Name,
            Architecture = s.Family switch { Family.Opt => "opt", Family.Bloom => "bloom", Family.Qwen2 => "qwen2", _ => "llama" },
            EmbeddingLength = e,
            FeedForwardLength = s.Ff,
            HeadCount = s.Heads,
            KvHeadCount = s.KvHeads,
            HeadDim = headDim,
            VocabularySize = s.Vocab,
            ContextLength = s.Context,
            Layers = Array.AsReadOnly(layers),
            TokenEmbedding = embedding,
            Output = new LayerSpec(s.Layers, [tied ? embedding with { Name = "output" } : new MatrixSpec("output", e, s.Vocab)], norm, 0, 0, 0),
            OutputTied = tied,
            InputParameters = input,
        };
    }

    private sealed record Shape(string Name, Family Family, long Embd, long Ff, int Layers, int Heads, int KvHeads, long Vocab, long Context);
}
