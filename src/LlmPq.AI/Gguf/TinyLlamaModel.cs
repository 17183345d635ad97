using System.Buffers.Binary;

namespace LlmPq.Gguf;

/// <summary>
/// The shape of a small random-weight llama model (see <see cref="TinyLlamaModel"/>).
/// </summary>
public sealed record TinyLlamaModelOptions
{
    /// <summary>
    /// Gets the path of a GGUF file to copy the tokenizer from (all <c>tokenizer.*</c> keys); by default llama.cpp's
    /// <c>ggml-vocab-llama-spm.gguf</c> (a 32000-token SentencePiece vocabulary) from the native build.
    /// </summary>
    public string? VocabularyPath { get; init; }

    /// <summary>Gets the number of layers (<c>llama.block_count</c>).</summary>
    public int Layers { get; init; } = 8;

    /// <summary>Gets the width of the residual stream (<c>llama.embedding_length</c>).</summary>
    public int EmbeddingLength { get; init; } = 256;

    /// <summary>Gets the hidden width of the feed-forward blocks (<c>llama.feed_forward_length</c>).</summary>
    public int FeedForwardLength { get; init; } = 768;

    /// <summary>Gets the number of attention heads; it divides <see cref="EmbeddingLength"/> into heads of even size.</summary>
    public int HeadCount { get; init; } = 4;

    /// <summary>Gets the number of key/value heads; it divides <see cref="HeadCount"/>.</summary>
    public int KvHeadCount { get; init; } = 4;

    /// <summary>Gets the context length the model claims to be trained for.</summary>
    public int ContextLength { get; init; } = 2048;

    /// <summary>Gets the type of the weight matrices: <see cref="GgmlType.F16"/> or <see cref="GgmlType.F32"/>; norms are always F32.</summary>
    public GgmlType WeightType { get; init; } = GgmlType.F16;

    /// <summary>Gets the seed of the weights; the same options give a byte-identical file.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Gets the Jinja chat template written as <c>tokenizer.chat_template</c>; see <see cref="ChatTemplateLibrary"/>.</summary>
    public string ChatTemplate { get; init; } = ChatTemplateLibrary.ChatML;
}

/// <summary>
/// Writes a deterministic random-weight model of llama.cpp's <c>llama</c> architecture, for tests and benchmarks
/// where real weights cannot be downloaded.
/// </summary>
public static class TinyLlamaModel
{
    /// <summary>Writes the model to <paramref name="path"/>.</summary>
    /// <param name="path">The path of the GGUF file; replaced when it exists.</param>
    /// <param name="options">The model's shape and seed.</param>
    /// <exception cref="ArgumentException">The options do not describe a valid model.</exception>
    /// <exception cref="GgufFormatException">The vocabulary file is not a GGUF file with a tokenizer.</exception>
    public static void Write(string path, TinyLlamaModelOptions options) => CreateWriter(options).Write(path);

    /// <summary>Prepares the model: reads the vocabulary now; the weights are made while the writer writes.</summary>
    /// <param name="options">The model's shape and seed.</param>
    /// <returns>A writer holding the model's metadata and tensors, to which more can be added.</returns>
    /// <exception cref="ArgumentException">The options do not describe a valid model.</exception>
    /// <exception cref="GgufFormatException">The vocabulary file is not a GGUF file with a tokenizer.</exception>
    public static GgufWriter CreateWriter(TinyLlamaModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);

        var vocabulary = GgufReader.Read(options.VocabularyPath ?? DefaultVocabularyPath());
        int vocabularySize = vocabulary.GetArray<string>("tokenizer.ggml.tokens").Count;

        int embd = options.EmbeddingLength;
        int headDim = embd / options.HeadCount;
        int embdKv = headDim * options.KvHeadCount;
        int ff = options.FeedForwardLength;
        var weightType = options.WeightType;
        string typeName = GgmlTypes.Name(weightType);

        var writer = new GgufWriter();
        writer.AddMetadata("general.architecture", "llama");
        writer.AddMetadata("general.name", $"llmpq-tiny-{options.Layers}L-{embd}d-{typeName}-s{options.Seed}");
        writer.AddMetadata("general.file_type", weightType == GgmlType.F32 ? 0u : 1u); // LLAMA_FTYPE_ALL_F32, LLAMA_FTYPE_MOSTLY_F16
        writer.AddMetadata("llama.context_length", (uint)options.ContextLength);
        writer.AddMetadata("llama.embedding_length", (uint)embd);
        writer.AddMetadata("llama.block_count", (uint)options.Layers);
        writer.AddMetadata("llama.feed_forward_length", (uint)ff);
        writer.AddMetadata("llama.attention.head_count", (uint)options.HeadCount);
        writer.AddMetadata("llama.attention.head_count_kv", (uint)options.KvHeadCount);
        writer.AddMetadata("llama.rope.dimension_count", (uint)headDim);
        writer.AddMetadata("llama.rope.freq_base", 10000f);
        writer.AddMetadata("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        writer.AddMetadata("llama.vocab_size", (uint)vocabularySize);
        foreach (var entry in vocabulary.Metadata)
        {
            if (entry.Key.StartsWith("tokenizer.", StringComparison.Ordinal) && entry.Key != "tokenizer.chat_template")
            {
                writer.AddMetadata(entry);
            }
        }

        writer.AddMetadata("tokenizer.chat_template", options.ChatTemplate);

        void AddNorm(string name) => AddTensor(writer, options.Seed, name, GgmlType.F32, [embd], scale: null);

        // Matrices are scaled by 1/sqrt(fan-in), so each keeps activations near unit size.
        void AddWeight(string name, long inputs, long outputs) => AddTensor(writer, options.Seed, name, weightType, [inputs, outputs], 1f / MathF.Sqrt(inputs));

        // Unit-scale embeddings keep the current token visible in the residual stream next to the layers' outputs,
        // so greedy output follows the input instead of settling on one token.
        AddTensor(writer, options.Seed, "token_embd.weight", weightType, [embd, vocabularySize], scale: 1f);
        AddNorm("output_norm.weight");
        AddWeight("output.weight", embd, vocabularySize);
        for (int layer = 0; layer < options.Layers; layer++)
        {
            string prefix = $"blk.{layer}.";
            AddNorm(prefix + "attn_norm.weight");
            AddWeight(prefix + "attn_q.weight", embd, embd);
            AddWeight(prefix + "attn_k.weight", embd, embdKv);
            AddWeight(prefix + "attn_v.weight", embd, embdKv);
            AddWeight(prefix + "attn_output.weight", embd, embd);
            AddNorm(prefix + "ffn_norm.weight");
            AddWeight(prefix + "ffn_gate.weight", embd, ff);
            AddWeight(prefix + "ffn_up.weight", embd, ff);
            AddWeight(prefix + "ffn_down.weight", ff, embd);
        }

        return writer;
    }

    private static string DefaultVocabularyPath()
    {
        string path = Path.Combine(Native.NativeLibraryLoader.Directory, "ggml-vocab-llama-spm.gguf");
        return File.Exists(path)
            ? path
            : throw new FileNotFoundException($"The llama.cpp build in '{Native.NativeLibraryLoader.Directory}' has no ggml-vocab-llama-spm.gguf; pass a vocabulary GGUF (make-model --vocab).", path);
    }

    private static void Validate(TinyLlamaModelOptions options)
    {
        Check(options.VocabularyPath is null || options.VocabularyPath.Length > 0, "VocabularyPath names the GGUF file to take the tokenizer from (null: the native build's).");
        Check(options.Layers >= 1, "Layers is at least 1.");
        Check(options.EmbeddingLength >= 2, "EmbeddingLength is at least 2.");
        Check(options.FeedForwardLength >= 1, "FeedForwardLength is at least 1.");
        Check(options.ContextLength >= 1, "ContextLength is at least 1.");
        Check(options.HeadCount >= 1 && options.EmbeddingLength % (2 * options.HeadCount) == 0, "HeadCount divides EmbeddingLength into heads of even size (RoPE rotates pairs).");
        Check(options.KvHeadCount >= 1 && options.HeadCount % options.KvHeadCount == 0, "KvHeadCount divides HeadCount.");
        Check(options.WeightType is GgmlType.F16 or GgmlType.F32, "WeightType is F16 or F32.");
        Check(!string.IsNullOrEmpty(options.ChatTemplate), "ChatTemplate is a Jinja template (see ChatTemplateLibrary).");

        static void Check(bool condition, string message)
        {
            if (!condition)
            {
                throw new ArgumentException(message, nameof(options));
            }
        }
    }

    // A null scale makes a norm weight: all ones.
    private static void AddTensor(GgufWriter writer, ulong seed, string name, GgmlType type, long[] shape, float? scale)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        writer.AddTensor(name, type, shape, stream => WriteValues(stream, type, count, scale, SplitMix64.ForTensor(seed, name)));
    }

    private static void WriteValues(Stream stream, GgmlType type, long count, float? scale, SplitMix64 random)
    {
        int elementSize = GgmlTypes.TypeSize(type);
        var chunk = new byte[64 * 1024];
        int perChunk = chunk.Length / elementSize;
        for (long done = 0; done < count; done += perChunk)
        {
            int n = (int)Math.Min(perChunk, count - done);
            for (int i = 0; i < n; i++)
            {
                float value = scale is float s ? random.NextGaussian() * s : 1f;
                if (type == GgmlType.F16)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(chunk.AsSpan(i * 2), (Half)value);
                }
                else
                {
                    BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(i * 4), value);
                }
            }

            stream.Write(chunk, 0, n * elementSize);
        }
    }

    // SplitMix64 (Steele, Lea, Flood 2014): specified bit for bit, unlike System.Random, so seeds stay stable.
    private struct SplitMix64(ulong state)
    {
        private ulong _state = state;

        // Each tensor gets its own stream, seeded from the model seed and an FNV-1a hash of its name,
        // so a tensor's values do not depend on the tensors written before it.
        public static SplitMix64 ForTensor(ulong seed, string name)
        {
            ulong hash = 14695981039346656037;
            foreach (char c in name)
            {
                hash = (hash ^ c) * 1099511628211;
            }

            var mixer = new SplitMix64(seed ^ hash);
            return new SplitMix64(mixer.Next());
        }

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31);
        }

        // Irwin–Hall with four 16-bit uniforms from one draw: mean 0, variance 1, within ±3.46; close enough to normal.
        public float NextGaussian()
        {
            ulong bits = Next();
            int sum = (int)(bits & 0xFFFF) + (int)((bits >> 16) & 0xFFFF) + (int)((bits >> 32) & 0xFFFF) + (int)(bits >> 48);
            const float Mean = 2 * 65535f;
            const float Scale = 1.7320508f / 65536f; // four unit uniforms sum to a standard deviation of 1/sqrt(3)
            return (sum - Mean) * Scale;
        }
    }
}
