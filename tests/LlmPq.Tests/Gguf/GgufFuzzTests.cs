using System.Buffers.Binary;
using LlmPq.Gguf;

namespace LlmPq.Tests.Gguf;

/// <summary>
/// Mutates valid files thousands of times: every read either succeeds or throws <see cref="GgufFormatException"/>,
/// ends, and allocates no more than a small multiple of the file's size.
/// </summary>
public sealed class GgufFuzzTests : IDisposable
{
    private const int PerKind = 3000;

    private readonly string _folder = Directory.CreateTempSubdirectory("llmpq-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Mutated_tiny_model()
    {
        string vocab = Path.Combine(_folder, "vocab.gguf");
        TinyLlamaModelTests.WriteSyntheticVocab(vocab, 300);
        string model = Path.Combine(_folder, "model.gguf");
        TinyLlamaModel.Write(model, new TinyLlamaModelOptions { VocabularyPath = vocab, Layers = 1, EmbeddingLength = 16, FeedForwardLength = 32, HeadCount = 2, KvHeadCount = 1 });
        Fuzz(File.ReadAllBytes(model), seed: 1);
    }

    [Fact]
    public void Mutated_file_with_every_value_type()
    {
        var writer = new GgufWriter();
        foreach (var entry in GgufRoundTripTests.EveryValueType())
        {
            writer.AddMetadata(entry);
        }

        var tensors = GgufRoundTripTests.SomeTensors();
        for (int i = 0; i < tensors.Length; i++)
        {
            var (name, type, shape) = tensors[i];
            writer.AddTensor(name, type, shape, GgufRoundTripTests.Data(i, GgmlTypes.TensorBytes(type, shape)));
        }

        var stream = new MemoryStream();
        writer.Write(stream);
        Fuzz(stream.ToArray(), seed: 2);
    }

    private static void Fuzz(byte[] original, int seed)
    {
        // Mutations aim mostly at the part the reader parses: header, metadata and tensor table.
        int parsed = (int)Math.Min(original.Length, GgufReader.Read(new MemoryStream(original)).DataOffset + 64);
        var random = new Random(seed);
        var outcomes = new int[4, 2];
        for (int kind = 0; kind < 4; kind++)
        {
            for (int i = 0; i < PerKind; i++)
            {
                int target = random.Next(8) == 0 ? original.Length : parsed;
                byte[] mutated = kind switch
                {
                    0 => original[..random.Next(target)],
                    1 => Flip(original, target, random),
                    2 => WriteHuge(original, target, random),
                    _ => Splice(original, target, random),
                };

                long before = GC.GetAllocatedBytesForCurrentThread();
                try
                {
                    GgufReader.Read(new MemoryStream(mutated, writable: false));
                    outcomes[kind, 0]++;
                }
                catch (GgufFormatException error)
                {
                    Assert.InRange(error.Offset, 0, mutated.Length);
                    Assert.StartsWith($"GGUF: at offset {error.Offset}: ", error.Message, StringComparison.Ordinal);
                    outcomes[kind, 1]++;
                }

                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.True(allocated < (64L * mutated.Length) + 1_000_000, $"mutation {kind}/{i} allocated {allocated} bytes for a file of {mutated.Length}");
            }
        }

        // Every kind of mutation both breaks files and, except truncation, leaves some readable.
        for (int kind = 0; kind < 4; kind++)
        {
            Assert.True(outcomes[kind, 1] > PerKind / 10, $"kind {kind}: only {outcomes[kind, 1]} failures");
            Assert.True(kind == 0 || outcomes[kind, 0] > 0, $"kind {kind}: no read succeeded");
        }
    }

    private static byte[] Flip(byte[] original, int target, Random random)
    {
        byte[] mutated = (byte[])original.Clone();
        for (int n = random.Next(1, 5); n > 0; n--)
        {
            mutated[random.Next(target)] ^= (byte)random.Next(1, 256);
        }

        return mutated;
    }

    private static byte[] WriteHuge(byte[] original, int target, Random random)
    {
        ulong[] huge = [ulong.MaxValue, 1UL << 62, 1UL << 63, long.MaxValue, uint.MaxValue, 1UL << 32, 0, 13, (ulong)random.NextInt64()];
        ulong value = huge[random.Next(huge.Length)];
        byte[] mutated = (byte[])original.Clone();
        if (random.Next(2) == 0)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(mutated.AsSpan(random.Next(target - 8)), value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(mutated.AsSpan(random.Next(target - 4)), (uint)(random.Next(2) == 0 ? value : value >> 32));
        }

        return mutated;
    }

    private static byte[] Splice(byte[] original, int target, Random random)
    {
        int length = random.Next(1, 65);
        int from = random.Next(target - length);
        int to = random.Next(target - length);
        switch (random.Next(3))
        {
            case 0: // overwrite
                byte[] mutated = (byte[])original.Clone();
                Array.Copy(original, from, mutated, to, length);
                return mutated;
            case 1: // delete
                return [.. original.AsSpan(0, from), .. original.AsSpan(from + length)];
            default: // insert a copy
                return [.. original.AsSpan(0, to), .. original.AsSpan(from, length), .. original.AsSpan(to)];
        }
    }
}
