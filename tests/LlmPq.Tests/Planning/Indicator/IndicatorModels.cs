using System.Runtime.InteropServices;
using LlmPq.Gguf;
using LlmPq.Tests.Gguf;

namespace LlmPq.Tests.Planning.Indicator;

/// <summary>Small models for the indicator tests, written into the run's temporary folder.</summary>
internal static class IndicatorModels
{
    private static readonly Lazy<string> s_vocabulary = new(() =>
    {
        string path = TestModels.TempPath("vocab-512.gguf");
        TinyLlamaModelTests.WriteSyntheticVocab(path, 512);
        return path;
    });

    /// <summary>Writes a llama model with a 512-token vocabulary, so its embeddings stay small.</summary>
    public static string Llama(string name, int layers, int width, int feedForward, int heads = 4, ulong seed = 42) =>
        TestModels.Write(name, new TinyLlamaModelOptions
        {
            Layers = layers,
            EmbeddingLength = width,
            FeedForwardLength = feedForward,
            HeadCount = heads,
            KvHeadCount = heads,
            Seed = seed,
            VocabularyPath = s_vocabulary.Value,
        });

    /// <summary>Writes F32 layers of given matrices (role → [row length, rows]) with Gaussian weights times <paramref name="scale"/> and norms of <paramref name="norm"/>.</summary>
    public static string Layers(string name, int layers, IReadOnlyDictionary<string, long[]> matrices, float scale, float norm = 1, int seed = 7)
    {
        var writer = new GgufWriter();
        writer.AddMetadata("general.architecture", "llama");
        writer.AddMetadata("llama.block_count", (uint)layers);
        var random = new Random(seed);
        for (int layer = 0; layer < layers; layer++)
        {
            foreach (string normName in new[] { "attn_norm", "ffn_norm" })
            {
                long width = matrices.Values.Min(shape => shape[0]);
                writer.AddTensor($"blk.{layer}.{normName}.weight", GgmlType.F32, [width], Bytes(Enumerable.Repeat(norm, (int)width).ToArray()));
            }

            foreach (var (role, shape) in matrices)
            {
                var values = Gaussian(random, (int)(shape[0] * shape[1]), scale);
                writer.AddTensor($"blk.{layer}.{role}.weight", GgmlType.F32, shape, Bytes(values));
            }
        }

        string path = TestModels.TempPath(name + ".gguf");
        writer.Write(path);
        return path;
    }

    public static float[] Gaussian(Random random, int count, float scale = 1)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Box–Muller.
            double u = 1 - random.NextDouble();
            double v = random.NextDouble();
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v)) * scale;
        }

        return values;
    }

    public static byte[] Bytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
