using LlmPq.Gguf;

namespace LlmPq.Tests.Gguf;

public sealed class GgufRoundTripTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("llmpq-gguf-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    internal static GgufMetadata[] EveryValueType() =>
    [
        new("t.u8", (byte)200),
        new("t.i8", (sbyte)-100),
        new("t.u16", (ushort)60000),
        new("t.i16", (short)-30000),
        new("t.u32", 4_000_000_000u),
        new("t.i32", -2_000_000_000),
        new("t.f32", 3.25f),
        new("t.nan", float.NaN),
        new("t.true", true),
        new("t.false", false),
        new("t.str", "héllo ✓ 𝄞"),
        new("t.empty", ""),
        new("t.u64", ulong.MaxValue),
        new("t.i64", long.MinValue),
        new("t.f64", Math.PI),
        new("a.u8", GgufArray.Create<byte>([0, 1, 255])),
        new("a.i8", GgufArray.Create<sbyte>([-128, 0, 127])),
        new("a.u16", GgufArray.Create<ushort>([0, 65535])),
        new("a.i16", GgufArray.Create<short>([-32768, 32767])),
        new("a.u32", GgufArray.Create<uint>([1, uint.MaxValue])),
        new("a.i32", GgufArray.Create<int>([int.MinValue, 7])),
        new("a.f32", GgufArray.Create<float>([-0.5f, float.PositiveInfinity, 1e-30f])),
        new("a.bool", GgufArray.Create<bool>([true, false, true])),
        new("a.str", GgufArray.Create<string>(["<s>", "", "▁the", "日本"])),
        new("a.u64", GgufArray.Create<ulong>([ulong.MaxValue, 0UL])),
        new("a.i64", GgufArray.Create<long>([long.MinValue, long.MaxValue])),
        new("a.f64", GgufArray.Create<double>([double.Epsilon, -1.0])),
        new("a.empty", GgufArray.Create(Array.Empty<int>())),
        new("a.nested", GgufArray.Create<GgufArray>(
        [
            GgufArray.Create<int>([1, 2, 3]),
            GgufArray.Create<string>(["x"]),
            GgufArray.Create<GgufArray>([GgufArray.Create<double>([2.5])]),
            GgufArray.Create(Array.Empty<GgufArray>()),
        ])),
    ];

    internal static (string Name, GgmlType Type, long[] Shape)[] SomeTensors() =>
    [
        ("f32.vec", GgmlType.F32, [7]),
        ("f16.mat", GgmlType.F16, [16, 3]),
        ("q8.mat", GgmlType.Q8_0, [64, 2]),
        ("blk.3.ffn_up.weight", GgmlType.BF16, [8, 4]),
        ("q4k.4d", GgmlType.Q4_K, [256, 2, 1, 2]),
        ("empty", GgmlType.F32, [4, 0]),
        ("blk.0.attn_q.weight", GgmlType.Q6_K, [512, 1]),
    ];

    internal static byte[] Data(int seed, long length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Theory]
    [InlineData(null)]
    [InlineData(64u)]
    [InlineData(1u)]
    public void Everything_written_reads_back(uint? alignment)
    {
        var writer = new GgufWriter();
        if (alignment is uint a)
        {
            writer.AddMetadata("general.alignment", a);
        }

        var metadata = EveryValueType();
        foreach (var entry in metadata)
        {
            writer.AddMetadata(entry);
        }

        var tensors = SomeTensors();
        var data = new List<byte[]>();
        for (int i = 0; i < tensors.Length; i++)
        {
            var (name, type, shape) = tensors[i];
            data.Add(Data(i, GgmlTypes.TensorBytes(type, shape)));
            if (i % 2 == 0)
            {
                writer.AddTensor(name, type, shape, data[i]);
            }
            else
            {
                var bytes = data[i];
                writer.AddTensor(name, type, shape, stream => stream.Write(bytes));
            }
        }

        var stream = new MemoryStream();
        writer.Write(stream);
        byte[] file = stream.ToArray();
        var read = GgufReader.Read(new MemoryStream(file));

        int expectedAlignment = (int)(alignment ?? 32);
        Assert.Equal(3, read.Version);
        Assert.Equal(expectedAlignment, read.Alignment);
        Assert.Equal(expectedAlignment, writer.Alignment);
        Assert.Equal(file.Length, read.FileLength);
        Assert.Equal(0, read.DataOffset % expectedAlignment);
        Assert.Equal(metadata, alignment is null ? read.Metadata : read.Metadata.Skip(1));
        Assert.Equal(tensors.Length, read.Tensors.Count);
        long expectedOffset = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            var tensor = read.Tensors[i];
            Assert.Equal(tensors[i].Name, tensor.Name);
            Assert.Equal(tensors[i].Type, tensor.Type);
            Assert.Equal(tensors[i].Shape, tensor.Shape);
            Assert.Equal(tensors[i].Shape.Aggregate(1L, (x, y) => x * y), tensor.ElementCount);
            Assert.Equal(data[i].Length, tensor.Bytes);
            Assert.Equal(expectedOffset, tensor.Offset);
            Assert.Equal(data[i], file.AsSpan((int)(read.DataOffset + tensor.Offset), (int)tensor.Bytes).ToArray());
            expectedOffset += (tensor.Bytes + expectedAlignment - 1) / expectedAlignment * expectedAlignment;
        }

        Assert.Equal(read.DataOffset + expectedOffset, file.Length);
        Assert.Equal(3, read.Tensors[3].Layer);
        Assert.Null(read.Tensors[0].Layer);

        // Writing again gives the same bytes.
        var again = new MemoryStream();
        writer.Write(again);
        Assert.Equal(file, again.ToArray());
    }

    [Fact]
    public void Typed_helpers_read_what_they_should()
    {
        var writer = new GgufWriter();
        foreach (var entry in EveryValueType())
        {
            writer.AddMetadata(entry);
        }

        writer.AddMetadata("general.architecture", "llama");
        var file = Read(writer);

        Assert.Equal("llama", file.Architecture);
        Assert.Equal("héllo ✓ 𝄞", file.GetString("t.str"));
        Assert.True(file.TryGetString("t.empty", out string? empty));
        Assert.Equal("", empty);
        Assert.False(file.TryGetString("t.u8", out _));
        Assert.False(file.TryGetString("missing", out _));

        Assert.Equal(200u, file.GetUInt32("t.u8"));
        Assert.Equal(60000u, file.GetUInt32("t.u16"));
        Assert.Equal(4_000_000_000u, file.GetUInt32("t.u32"));
        foreach (var (key, value) in new (string, long)[] { ("t.u8", 200), ("t.i8", -100), ("t.u16", 60000), ("t.i16", -30000), ("t.u32", 4_000_000_000), ("t.i32", -2_000_000_000), ("t.i64", long.MinValue) })
        {
            Assert.True(file.TryGetInteger(key, out long actual), key);
            Assert.Equal(value, actual);
        }

        Assert.False(file.TryGetInteger("t.u64", out _)); // beyond long
        Assert.False(file.TryGetInteger("t.f32", out _));
        Assert.False(file.TryGetInteger("t.true", out _));
        Assert.True(file.TryGetDouble("t.f32", out double f32));
        Assert.Equal(3.25, f32);
        Assert.True(file.TryGetDouble("t.f64", out double f64));
        Assert.Equal(Math.PI, f64);
        Assert.False(file.TryGetDouble("t.i32", out _));

        Assert.Equal(["<s>", "", "▁the", "日本"], file.GetArray<string>("a.str"));
        Assert.Equal([-0.5f, float.PositiveInfinity, 1e-30f], file.GetArray<float>("a.f32"));
        Assert.True(file.TryGetMetadata("a.nested", out var nested));
        var inner = ((GgufArray)nested.Value).As<GgufArray>();
        Assert.Equal([1, 2, 3], inner[0].As<int>());
        Assert.Equal(GgufValueType.Array, inner[2].ElementType);
        Assert.Throws<InvalidCastException>(() => inner[0].As<uint>());

        Assert.Contains("is missing", Assert.Throws<GgufFormatException>(() => file.GetString("missing")).Message);
        Assert.Contains("expected a string", Assert.Throws<GgufFormatException>(() => file.GetString("t.u8")).Message);
        Assert.Contains("t.i8", Assert.Throws<GgufFormatException>(() => file.GetUInt32("t.i8")).Message);
        Assert.Throws<GgufFormatException>(() => file.GetUInt32("t.u64"));
        Assert.Throws<GgufFormatException>(() => file.GetUInt32("t.str"));
        var wrongArray = Assert.Throws<GgufFormatException>(() => file.GetArray<int>("a.str"));
        Assert.Contains("array of Int32", wrongArray.Message);
        Assert.InRange(wrongArray.Offset, 24, file.FileLength);
    }

    [Theory]
    [InlineData("blk.12.ffn_up.weight", 12)]
    [InlineData("blk.0.attn_norm.weight", 0)]
    [InlineData("token_embd.weight", null)]
    [InlineData("blk.12", null)]
    [InlineData("blk..weight", null)]
    [InlineData("blk.-1.weight", null)]
    [InlineData("blk.+1.weight", null)]
    [InlineData("blk.99999999999.weight", null)]
    [InlineData("xblk.1.weight", null)]
    public void LayerOf_reads_blk_names(string name, int? layer) => Assert.Equal(layer, GgufFile.LayerOf(name));

    [Fact]
    public void Version_2_files_read()
    {
        var raw = new RawGguf(version: 2, tensors: 1, metadata: 1).Str("general.architecture").U32(8).Str("llama");
        raw.Tensor("w", (uint)GgmlType.F32, 0, 4, 2).Align().Zeros(32);
        var file = GgufReader.Read(new MemoryStream(raw.ToArray()));
        Assert.Equal(2, file.Version);
        Assert.Equal("llama", file.Architecture);
        Assert.True(file.TryGetTensor("w", out var w));
        Assert.Equal(32, w.Bytes);
        Assert.False(file.TryGetTensor("v", out _));
    }

    [Fact]
    public void Write_to_a_path_replaces_the_file_and_leaves_no_temporary()
    {
        string path = Path.Combine(_folder, "model.gguf");
        File.WriteAllText(path, "old");
        var writer = new GgufWriter();
        writer.AddMetadata("k", 1u);
        writer.AddTensor("t", GgmlType.F32, [8], new byte[32]);
        writer.Write(path);

        Assert.Equal(["model.gguf"], Directory.GetFiles(_folder).Select(Path.GetFileName));
        var file = GgufReader.Read(path);
        Assert.Equal(1u, file.GetUInt32("k"));
        Assert.Equal(file.FileLength, new FileInfo(path).Length);
    }

    [Fact]
    public void A_failed_write_leaves_no_file()
    {
        string path = Path.Combine(_folder, "broken.gguf");
        var writer = new GgufWriter();
        writer.AddTensor("t", GgmlType.F32, [8], stream => stream.Write(new byte[31]));
        var error = Assert.Throws<InvalidOperationException>(() => writer.Write(path));
        Assert.Contains("wrote 31 bytes", error.Message);
        Assert.Empty(Directory.GetFiles(_folder));

        var failing = new GgufWriter();
        failing.AddTensor("t", GgmlType.F32, [8], _ => throw new IOException("disk full"));
        Assert.Throws<IOException>(() => failing.Write(path));
        Assert.Empty(Directory.GetFiles(_folder));
    }

    [Fact]
    public void Writer_rejects_what_readers_would()
    {
        var writer = new GgufWriter();
        writer.AddMetadata("k", 1);
        writer.AddTensor("t", GgmlType.F32, [1], new byte[4]);

        Assert.Throws<ArgumentException>(() => writer.AddMetadata("k", 2));
        Assert.Throws<ArgumentException>(() => writer.AddMetadata("", 2));
        Assert.Throws<ArgumentException>(() => writer.AddMetadata("d", DateTime.Now));
        Assert.Throws<ArgumentException>(() => writer.AddMetadata("general.alignment", 48u));
        Assert.Throws<ArgumentException>(() => writer.AddMetadata("general.alignment", 64));
        Assert.Throws<InvalidOperationException>(() => writer.AddMetadata("general.alignment", 64u));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("t", GgmlType.F32, [1], new byte[4]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor(new string('x', 64), GgmlType.F32, [1], new byte[4]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("u", GgmlType.F32, [2], new byte[4]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("u", GgmlType.Q4_K, [100], new byte[4]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("u", GgmlType.F32, [1, 1, 1, 1, 1], new byte[4]));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.AddTensor("u", (GgmlType)4, [1], new byte[4]));
        Assert.Throws<ArgumentException>(() => GgufArray.Create<DateTime>([DateTime.Now]));
        Assert.Throws<ArgumentException>(() => GgufArray.Create<string>(["a", null!]));

        // A name of 63 bytes is the longest ggml takes.
        writer.AddTensor(new string('x', 63), GgmlType.F32, [1], new byte[4]);
    }

    [Fact]
    public void Arrays_compare_by_value_and_copy_their_input()
    {
        int[] source = [1, 2, 3];
        var array = GgufArray.Create(source);
        source[0] = 9;
        Assert.Equal([1, 2, 3], array.As<int>());
        Assert.Equal(GgufArray.Create<int>([1, 2, 3]), array);
        Assert.Equal(GgufArray.Create<int>([1, 2, 3]).GetHashCode(), array.GetHashCode());
        Assert.NotEqual(GgufArray.Create<uint>([1u, 2u, 3u]), array);
        Assert.NotEqual(GgufArray.Create<int>([1, 2]), array);
        Assert.Equal(new GgufMetadata("k", GgufArray.Create<string>(["a"])), new GgufMetadata("k", GgufArray.Create<string>(["a"])));
    }

    private static GgufFile Read(GgufWriter writer)
    {
        var stream = new MemoryStream();
        writer.Write(stream);
        return GgufReader.Read(stream);
    }
}
