using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>Builds a <see cref="ModelSpec"/> from a GGUF file's metadata and tensor table.</summary>
internal static class GgufModelReader
{
    private const string TokenEmbedding = "token_embd.weight";

    // Far above any real model (hundreds of layers, thousands of heads), low enough that a hostile file cannot make
    // the reader allocate or overflow.
    private const long MaxLayers = 1 << 14;
    private const long MaxHeads = 1 << 16;

    // Name fragments of 2-D weights that llama_model_quantize leaves at their type (tensor_allows_quantization in the
    // pinned llama.cpp's src/llama-quant.cpp); a plan gives them no type, so they are "other" parameters.
    private static readonly string[] s_keptAsIs =
    [
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "position_embd", "token_types", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
        "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight",
    ];

    public static ModelSpec Read(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string arch = file.Architecture ?? throw new InvalidDataException("The GGUF has no general.architecture; it is not a model file.");
        if (!file.TryGetTensor(TokenEmbedding, out var embedding) || embedding.Shape.Count != 2)
        {
            throw new InvalidDataException($"The GGUF has no 2-D {TokenEmbedding}; LlmPq plans models of token-embedding, blk.N layers and an output layer.");
        }

        long embd = Integer(file, $"{arch}.embedding_length") ?? embedding.Shape[0];
        var byLayer = new SortedDictionary<int, List<GgufTensorInfo>>();
        var output = new List<GgufTensorInfo>();
        long inputParameters = 0;
        foreach (var tensor in file.Tensors)
        {
            if (tensor.Layer is int layer)
            {
                if (!byLayer.TryGetValue(layer, out var list))
                {
                    byLayer[layer] = list = [];
                }

                list.Add(tensor);
            }
            else if (tensor.Name.StartsWith("output", StringComparison.Ordinal))
            {
                output.Add(tensor);
            }
            else if (tensor.Name != TokenEmbedding)
            {
                inputParameters += tensor.ElementCount;
            }
        }

        long blocks = Math.Max(Integer(file, $"{arch}.block_count") ?? 0, byLayer.Count == 0 ? 0 : byLayer.Keys.Max() + 1L);
        if (blocks is <= 0 or > MaxLayers)
        {
            throw new InvalidDataException(blocks <= 0 ? "The GGUF has no blk.N layers." : $"The GGUF claims {blocks} layers; LlmPq plans at most {MaxLayers}.");
        }

        int layerCount = (int)blocks;

        long? expertsUsed = Integer(file, $"{arch}.expert_used_count");
        var layers = new LayerSpec[layerCount];
        for (int i = 0; i < layerCount; i++)
        {
            int heads = Bounded(PerLayer(file, $"{arch}.attention.head_count", i) ?? 0, "attention.head_count");
            int kvHeads = Bounded(PerLayer(file, $"{arch}.attention.head_count_kv", i) ?? heads, "attention.head_count_kv");
            int headDim = Bounded(Integer(file, $"{arch}.attention.key_length") ?? (heads > 0 ? embd / heads : 0), "attention.key_length");
            var (matrices, other) = Split(byLayer.GetValueOrDefault(i) ?? [], $"blk.{i}.", expertsUsed);
            layers[i] = new LayerSpec(i, matrices, other, heads, kvHeads, headDim);
        }

        bool tied = !output.Any(t => t.Name == "output.weight");
        var (outputMatrices, outputOther) = Split(output, string.Empty, expertsUsed);
        if (tied)
        {
            outputMatrices = [Matrix(embedding, "output", expertsUsed: null)];
        }

        long feedForward = Enumerable.Range(0, layerCount).Max(i => PerLayer(file, $"{arch}.feed_forward_length", i) ?? 0);
        return new ModelSpec
        {
            Name = file.TryGetString("general.name", out string? name) ? name : arch,
            Architecture = arch,
            EmbeddingLength = embd,
            FeedForwardLength = feedForward,
            HeadCount = layers[0].HeadCount,
            KvHeadCount = layers[0].KvHeadCount,
            HeadDim = layers[0].HeadDim,
            VocabularySize = embedding.Shape[1],
            ContextLength = Integer(file, $"{arch}.context_length") ?? 0,
            Layers = Array.AsReadOnly(layers),
            TokenEmbedding = Matrix(embedding, "token_embd", expertsUsed: null),
            Output = new LayerSpec(layerCount, outputMatrices, outputOther, 0, 0, 0),
            OutputTied = tied,
            InputParameters = inputParameters,
        };
    }

    private static (IReadOnlyList<MatrixSpec> Matrices, long Other) Split(List<GgufTensorInfo> tensors, string prefix, long? expertsUsed)
    {
        var matrices = new List<MatrixSpec>();
        long other = 0;
        foreach (var tensor in tensors)
        {
            if (IsQuantized(tensor))
            {
                string name = tensor.Name[prefix.Length..^".weight".Length];
                matrices.Add(Matrix(tensor, name, expertsUsed));
            }
            else
            {
                other += tensor.ElementCount;
            }
        }

        return ([.. matrices], other);
    }

    private static MatrixSpec Matrix(GgufTensorInfo tensor, string name, long? expertsUsed)
    {
        long rows = tensor.ElementCount / tensor.Shape[0];

        // Expert tensors are [ne0, rows per expert, experts]; a token only multiplies with the experts it is routed to.
        long? active = tensor.Shape.Count == 3 && expertsUsed is long used && used < tensor.Shape[2] ? tensor.Shape[1] * used : null;
        return new MatrixSpec(name, tensor.Shape[0], rows) { ActiveRows = active };
    }

    // llama_model_quantize quantizes tensors of 2 or more dimensions (ggml_n_dims: trailing 1s do not count) whose
    // names end in "weight", except the ones above.
    internal static bool IsQuantized(GgufTensorInfo tensor) =>
        tensor.Shape.Skip(1).Any(d => d > 1)
        && tensor.Name.EndsWith(".weight", StringComparison.Ordinal)
        && !s_keptAsIs.Any(fragment => tensor.Name.Contains(fragment, StringComparison.Ordinal));

    private static int Bounded(long value, string key) =>
        value is >= 0 and <= MaxHeads ? (int)value : throw new InvalidDataException($"The GGUF's {key} is {value}; expected 0 to {MaxHeads}.");

    private static long? Integer(GgufFile file, string key) => file.TryGetInteger(key, out long value) ? value : null;

    // Hybrid and pruned models store some hyperparameters as one value per layer.
    private static long? PerLayer(GgufFile file, string key, int layer)
    {
        if (file.TryGetInteger(key, out long value))
        {
            return value;
        }

        if (!file.TryGetMetadata(key, out var entry) || entry.Value is not GgufArray array || layer >= array.Count)
        {
            return null;
        }

        return array.ElementType switch
        {
            GgufValueType.UInt32 => array.As<uint>()[layer],
            GgufValueType.Int32 => array.As<int>()[layer],
            GgufValueType.UInt64 => (long)array.As<ulong>()[layer],
            GgufValueType.Int64 => array.As<long>()[layer],
            GgufValueType.UInt16 => array.As<ushort>()[layer],
            GgufValueType.Int16 => array.As<short>()[layer],
            GgufValueType.UInt8 => array.As<byte>()[layer],
            GgufValueType.Int8 => array.As<sbyte>()[layer],
            _ => null,
        };
    }
}
