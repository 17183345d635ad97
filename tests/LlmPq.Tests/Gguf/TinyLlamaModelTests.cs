using System.Security.Cryptography;
using LlmPq.Gguf;

namespace LlmPq.Tests.Gguf;

public sealed class TinyLlamaModelTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("llmpq-tiny-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Writes a vocab-only GGUF with <paramref name="count"/> SentencePiece-style tokens: specials, 256 bytes, words.</summary>
    internal static void WriteSyntheticVocab(string path, int count)
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        tokens.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        for (int i = 0; tokens.Count < count; i++)
        {
            tokens.Add($"▁w{i}");
        }

        var writer = new GgufWriter();
        writer.AddMetadata("general.architecture", "llama");
        writer.AddMetadata("tokenizer.ggml.model", "llama");
        writer.AddMetadata("tokenizer.ggml.tokens", GgufArray.Create(tokens));
        writer.AddMetadata("tokenizer.ggml.scores", GgufArray.Create(tokens.Select((_, i) => -(float)i)));
        writer.AddMetadata("tokenizer.ggml.token_type", GgufArray.Create(tokens.Select((_, i) => i switch { 0 => 2, < 3 => 3, < 259 => 6, _ => 1 })));
        writer.AddMetadata("tokenizer.ggml.bos_token_id", 1u);
        writer.AddMetadata("tokenizer.ggml.eos_token_id", 2u);
        writer.AddMetadata("tokenizer.ggml.unknown_token_id", 0u);
        writer.AddMetadata("tokenizer.chat_template", "replaced by the model's");
        writer.Write(path);
    }

    [Fact]
    public void Reads_the_vocabulary_llama_cpp_ships()
    {
        var vocab = GgufReader.Read(TestModels.VocabularyPath);
        Assert.Equal(3, vocab.Version);
        Assert.Empty(vocab.Tensors);
        Assert.Equal("llama", vocab.Architecture);
        Assert.Equal("llama", vocab.GetString("tokenizer.ggml.model"));
        var tokens = vocab.GetArray<string>("tokenizer.ggml.tokens");
        Assert.Equal(32000, tokens.Count);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens.Take(4));
        Assert.Equal(32000, vocab.GetArray<float>("tokenizer.ggml.scores").Count);
        Assert.Equal(32000, vocab.GetArray<int>("tokenizer.ggml.token_type").Count);
        Assert.Equal(1u, vocab.GetUInt32("tokenizer.ggml.bos_token_id"));
    }

    [Fact]
    public void Default_model_has_the_llama_layout()
    {
        string path = Path.Combine(_folder, "default.gguf");
        var options = new TinyLlamaModelOptions { VocabularyPath = TestModels.VocabularyPath };
        TinyLlamaModel.Write(path, options);
        var model = GgufReader.Read(path);

        Assert.Equal("llama", model.Architecture);
        Assert.StartsWith("llmpq-tiny-", model.GetString("general.name"), StringComparison.Ordinal);
        Assert.Equal(1u, model.GetUInt32("general.file_type"));
        Assert.Equal(8u, model.GetUInt32("llama.block_count"));
        Assert.Equal(256u, model.GetUInt32("llama.embedding_length"));
        Assert.Equal(768u, model.GetUInt32("llama.feed_forward_length"));
        Assert.Equal(4u, model.GetUInt32("llama.attention.head_count"));
        Assert.Equal(4u, model.GetUInt32("llama.attention.head_count_kv"));
        Assert.Equal(64u, model.GetUInt32("llama.rope.dimension_count"));
        Assert.Equal(2048u, model.GetUInt32("llama.context_length"));
        Assert.Equal(32000u, model.GetUInt32("llama.vocab_size"));
        Assert.True(model.TryGetDouble("llama.rope.freq_base", out double freqBase));
        Assert.Equal(10000, freqBase);
        Assert.True(model.TryGetDouble("llama.attention.layer_norm_rms_epsilon", out double eps));
        Assert.Equal(1e-5, eps, 1e-9);
        Assert.Contains("<|im_start|>", model.GetString("tokenizer.chat_template"), StringComparison.Ordinal);

        // Every tokenizer key of the vocabulary, unchanged.
        var vocab = GgufReader.Read(TestModels.VocabularyPath);
        var tokenizer = vocab.Metadata.Where(m => m.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(tokenizer);
        foreach (var entry in tokenizer)
        {
            Assert.True(model.TryGetMetadata(entry.Key, out var copied), entry.Key);
            Assert.Equal(entry, copied);
        }

        var expected = new List<(string, GgmlType, long[])>
        {
            ("token_embd.weight", GgmlType.F16, [256, 32000]),
            ("output_norm.weight", GgmlType.F32, [256]),
            ("output.weight", GgmlType.F16, [256, 32000]),
        };
        for (int layer = 0; layer < 8; layer++)
        {
            expected.Add(($"blk.{layer}.attn_norm.weight", GgmlType.F32, [256]));
            expected.Add(($"blk.{layer}.attn_q.weight", GgmlType.F16, [256, 256]));
            expected.Add(($"blk.{layer}.attn_k.weight", GgmlType.F16, [256, 256]));
            expected.Add(($"blk.{layer}.attn_v.weight", GgmlType.F16, [256, 256]));
            expected.Add(($"blk.{layer}.attn_output.weight", GgmlType.F16, [256, 256]));
            expected.Add(($"blk.{layer}.ffn_norm.weight", GgmlType.F32, [256]));
            expected.Add(($"blk.{layer}.ffn_gate.weight", GgmlType.F16, [256, 768]));
            expected.Add(($"blk.{layer}.ffn_up.weight", GgmlType.F16, [256, 768]));
            expected.Add(($"blk.{layer}.ffn_down.weight", GgmlType.F16, [768, 256]));
        }

        Assert.Equal(
            expected.Select(e => $"{e.Item1} {e.Item2} [{string.Join(", ", e.Item3)}]"),
            model.Tensors.Select(t => $"{t.Name} {t.Type} [{string.Join(", ", t.Shape)}]"));
        Assert.Equal(Enumerable.Range(0, 8).Cast<int?>(), model.Tensors.Select(t => t.Layer).Where(l => l is not null).Distinct());
        Assert.Equal(model.FileLength, model.Tensors[^1].Offset + model.Tensors[^1].Bytes + model.DataOffset);
    }

    [Fact]
    public void Same_options_give_the_same_bytes_and_another_seed_other_weights()
    {
        string vocab = Path.Combine(_folder, "vocab.gguf");
        WriteSyntheticVocab(vocab, 1000);
        var options = new TinyLlamaModelOptions { VocabularyPath = vocab, Layers = 3, EmbeddingLength = 128, FeedForwardLength = 256, HeadCount = 4, KvHeadCount = 2 };
        string first = Path.Combine(_folder, "a.gguf");
        string second = Path.Combine(_folder, "b.gguf");
        string reseeded = Path.Combine(_folder, "c.gguf");
        TinyLlamaModel.Write(first, options);
        TinyLlamaModel.Write(second, options with { });
        TinyLlamaModel.Write(reseeded, options with { Seed = 43 });

        Assert.Equal(Hash(first), Hash(second));
        var a = GgufReader.Read(first);
        var c = GgufReader.Read(reseeded);
        Assert.Equal(a.Tensors, c.Tensors);
        foreach (string name in new[] { "token_embd.weight", "blk.2.ffn_down.weight" })
        {
            Assert.NotEqual(TensorData(first, a, name), TensorData(reseeded, c, name));
        }

        Assert.Equal(TensorData(first, a, "blk.1.ffn_norm.weight"), TensorData(reseeded, c, "blk.1.ffn_norm.weight"));

        // Grouped-query attention: K and V have 2 heads of 32.
        Assert.True(a.TryGetTensor("blk.0.attn_k.weight", out var k));
        Assert.Equal([128L, 64], k.Shape);
        Assert.Equal(1000u, a.GetUInt32("llama.vocab_size"));
        Assert.Contains("<|im_start|>", a.GetString("tokenizer.chat_template"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    public void Weights_are_roughly_normal_scaled_by_fan_in(GgmlType type)
    {
        string vocab = Path.Combine(_folder, "vocab.gguf");
        WriteSyntheticVocab(vocab, 300);
        string path = Path.Combine(_folder, "m.gguf");
        TinyLlamaModel.Write(path, new TinyLlamaModelOptions { VocabularyPath = vocab, Layers = 1, EmbeddingLength = 64, FeedForwardLength = 400, WeightType = type });
        var model = GgufReader.Read(path);
        Assert.Equal(type == GgmlType.F32 ? 0u : 1u, model.GetUInt32("general.file_type"));

        // Embeddings are unit-scale; matrices scale by 1/sqrt(fan-in).
        foreach (var (name, fanIn) in new[] { ("blk.0.ffn_down.weight", 400), ("blk.0.ffn_up.weight", 64), ("output.weight", 64), ("token_embd.weight", 1) })
        {
            Assert.True(model.TryGetTensor(name, out var tensor));
            Assert.Equal(type, tensor.Type);
            var values = Floats(TensorData(path, model, name), type);
            double mean = values.Average();
            double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
            double expected = 1 / Math.Sqrt(fanIn);
            Assert.InRange(std, 0.95 * expected, 1.05 * expected);
            Assert.InRange(mean, -0.05 * expected, 0.05 * expected);
            Assert.True(values.Distinct().Count() > values.Length / 10, "values vary");
        }

        Assert.All(Floats(TensorData(path, model, "blk.0.attn_norm.weight"), GgmlType.F32), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void Without_a_vocabulary_path_the_native_build_vocabulary_is_used()
    {
        string path = Path.Combine(_folder, "default-vocab.gguf");
        TinyLlamaModel.Write(path, new TinyLlamaModelOptions { Layers = 1, EmbeddingLength = 64, FeedForwardLength = 128 });
        Assert.Equal(
            GgufReader.Read(TestModels.VocabularyPath).GetArray<string>("tokenizer.ggml.tokens"),
            GgufReader.Read(path).GetArray<string>("tokenizer.ggml.tokens"));
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        string vocab = Path.Combine(_folder, "vocab.gguf");
        WriteSyntheticVocab(vocab, 300);
        var valid = new TinyLlamaModelOptions { VocabularyPath = vocab };
        string path = Path.Combine(_folder, "x.gguf");

        Assert.Throws<ArgumentException>(() => TinyLlamaModel.Write(path, valid with { VocabularyPath = string.Empty }));
        Assert.Throws<ArgumentException>(() => TinyLlamaModel.Write(path, valid with { Layers = 0 }));
        Assert.Throws<ArgumentException>(() => TinyLlamaModel.Write(path, valid with { HeadCount = 3 }));
        Assert.Throws<ArgumentException>(() => TinyLlamaModel.Write(path, valid with { EmbeddingLength = 260, HeadCount = 4 }));
        Assert.Throws<ArgumentException>(() => TinyLlamaModel.Write(path, valid with { KvHeadCount = 3 }));
        Assert.Throws<ArgumentException>(() => TinyLlamaModel.Write(path, valid with { WeightType = GgmlType.Q4_K }));
        Assert.Throws<FileNotFoundException>(() => TinyLlamaModel.Write(path, valid with { VocabularyPath = Path.Combine(_folder, "none.gguf") }));

        string notGguf = Path.Combine(_folder, "text.gguf");
        File.WriteAllText(notGguf, "hello");
        Assert.Throws<GgufFormatException>(() => TinyLlamaModel.Write(path, valid with { VocabularyPath = notGguf }));

        var noTokens = new GgufWriter();
        noTokens.AddMetadata("general.architecture", "llama");
        noTokens.Write(notGguf);
        Assert.Contains("tokenizer.ggml.tokens", Assert.Throws<GgufFormatException>(() => TinyLlamaModel.Write(path, valid with { VocabularyPath = notGguf })).Message);
        Assert.False(File.Exists(path));
    }

    private static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    private static byte[] TensorData(string path, GgufFile file, string name)
    {
        Assert.True(file.TryGetTensor(name, out var tensor));
        using var stream = File.OpenRead(path);
        stream.Position = file.DataOffset + tensor.Offset;
        var data = new byte[tensor.Bytes];
        stream.ReadExactly(data);
        return data;
    }

    private static float[] Floats(byte[] data, GgmlType type) => type == GgmlType.F32
        ? [.. System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(data)]
        : [.. System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(data).ToArray().Select(h => (float)h)];
}
