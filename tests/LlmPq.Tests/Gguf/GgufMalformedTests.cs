using LlmPq.Gguf;

namespace LlmPq.Tests.Gguf;

/// <summary>Each way a GGUF file can be broken gives a <see cref="GgufFormatException"/> that says what and where.</summary>
public class GgufMalformedTests
{
    private const uint U32 = 4;
    private const uint I32 = 5;
    private const uint Str = 8;
    private const uint Arr = 9;
    private const uint F32 = (uint)GgmlType.F32;

    [Fact]
    public void Wrong_magic() => AssertFails(new RawGguf(magic: "GGML").ToArray(), 0, "not a GGUF file");

    [Fact]
    public void Too_short_for_the_magic() => AssertFails("GG"u8.ToArray(), 0, "not a GGUF file");

    [Theory]
    [InlineData(1u, "version 1 is not supported")]
    [InlineData(4u, "version 4 is not supported")]
    [InlineData(0u, "version 0")]
    [InlineData(0x03000000u, "big-endian")]
    public void Unsupported_version(uint version, string message) => AssertFails(new RawGguf(version).ToArray(), 4, message);

    [Fact]
    public void Header_cut_short() => AssertFails(new RawGguf().ToArray()[..20], 16, "unexpected end of file");

    [Fact]
    public void Every_truncation_of_a_valid_file_fails()
    {
        var writer = new GgufWriter();
        foreach (var entry in GgufRoundTripTests.EveryValueType())
        {
            writer.AddMetadata(entry);
        }

        writer.AddTensor("a", GgmlType.F32, [3], new byte[12]);
        writer.AddTensor("b", GgmlType.Q8_0, [32], new byte[34]);
        var stream = new MemoryStream();
        writer.Write(stream);
        byte[] file = stream.ToArray();
        GgufReader.Read(new MemoryStream(file));

        // The last tensor's data ends 30 bytes before the padded end, so cutting into the padding still reads.
        int lastDataEnd = file.Length - 30;
        for (int length = 0; length < lastDataEnd; length++)
        {
            var error = Assert.Throws<GgufFormatException>(() => GgufReader.Read(new MemoryStream(file[..length])));
            Assert.InRange(error.Offset, 0, length);
        }
    }

    [Fact]
    public void Tensor_count_beyond_the_file() =>
        AssertFails(new RawGguf(tensors: 1234567890123).Zeros(4000).ToArray(), 8, "tensor count 1234567890123 cannot fit in a file of 4024 bytes");

    [Fact]
    public void Metadata_count_beyond_the_file() =>
        AssertFails(new RawGguf(metadata: ulong.MaxValue).Zeros(100).ToArray(), 16, "metadata count 18446744073709551615 cannot fit");

    [Fact]
    public void Huge_array_count_fails_without_allocating()
    {
        var raw = new RawGguf(metadata: 1).Str("big").U32(Arr).U32(0);
        long countOffset = raw.Position;
        byte[] file = raw.U64(1UL << 62).Zeros(1000).ToArray();
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertFails(file, countOffset, "metadata 'big' claims 4611686018427387904 UInt8 elements");
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 256 * 1024);
    }

    [Theory]
    [InlineData(Str, 8u)]
    [InlineData(Arr, 12u)]
    [InlineData(10u, 8u)]
    public void Array_count_just_beyond_the_file(uint elementType, uint elementBytes)
    {
        var raw = new RawGguf(metadata: 1).Str("a").U32(Arr).U32(elementType);
        long countOffset = raw.Position;
        byte[] file = raw.U64(100).Zeros((int)(99 * elementBytes)).ToArray();
        AssertFails(file, countOffset, "claims 100");
    }

    [Fact]
    public void String_length_beyond_the_file()
    {
        var raw = new RawGguf(metadata: 1).Str("s").U32(Str);
        long lengthOffset = raw.Position;
        AssertFails(raw.U64(5000).Zeros(100).ToArray(), lengthOffset, "string length 5000 exceeds the 100 bytes left");
    }

    [Fact]
    public void Key_length_beyond_the_file() =>
        AssertFails(new RawGguf(metadata: 1).U64(ulong.MaxValue).Zeros(40).ToArray(), 24, "string length 18446744073709551615 exceeds");

    [Theory]
    [InlineData(13u)]
    [InlineData(uint.MaxValue)]
    public void Invalid_value_type(uint type)
    {
        var raw = new RawGguf(metadata: 1).Str("k");
        long typeOffset = raw.Position;
        AssertFails(raw.U32(type).Zeros(16).ToArray(), typeOffset, $"metadata 'k' has invalid value type {type}");
    }

    [Fact]
    public void Invalid_array_element_type()
    {
        var raw = new RawGguf(metadata: 1).Str("k").U32(Arr);
        long typeOffset = raw.Position;
        AssertFails(raw.U32(77).U64(1).Zeros(16).ToArray(), typeOffset, "array of invalid value type 77");
    }

    [Fact]
    public void Arrays_nested_too_deep()
    {
        var raw = new RawGguf(metadata: 1).Str("k").U32(Arr);
        for (int i = 0; i < 40; i++)
        {
            raw.U32(Arr).U64(1);
        }

        AssertFails(raw.Zeros(64).ToArray(), -1, "nests arrays deeper than 16");
    }

    [Fact]
    public void Non_utf8_key() =>
        AssertFails(new RawGguf(metadata: 1).StrBytes([0x61, 0xFF, 0x62]).U32(U32).U32(1).ToArray(), 32, "not valid UTF-8");

    [Fact]
    public void Non_utf8_value()
    {
        var raw = new RawGguf(metadata: 1).Str("k").U32(Str);
        long valueOffset = raw.Position + 8;
        AssertFails(raw.StrBytes([0xC3, 0x28]).ToArray(), valueOffset, "metadata 'k': a string of 2 bytes is not valid UTF-8");
    }

    [Fact]
    public void Empty_key() => AssertFails(new RawGguf(metadata: 1).Str("").U32(U32).U32(1).ToArray(), 24, "empty key");

    [Fact]
    public void Duplicate_key()
    {
        var raw = new RawGguf(metadata: 2).KvU32("k", 1);
        long second = raw.Position;
        AssertFails(raw.KvU32("k", 2).ToArray(), second, "duplicate metadata key 'k'");
    }

    [Theory]
    [InlineData(48u, "general.alignment 48 is not a power of two")]
    [InlineData(0u, "general.alignment 0 is not a power of two")]
    public void Alignment_not_a_power_of_two(uint alignment, string message) =>
        AssertFails(new RawGguf(metadata: 1).KvU32("general.alignment", alignment).ToArray(), 24, message);

    [Fact]
    public void Alignment_of_the_wrong_type() =>
        AssertFails(new RawGguf(metadata: 1).Str("general.alignment").U32(I32).U32(64).ToArray(), 24, "general.alignment is Int32, expected UInt32");

    [Fact]
    public void Duplicate_tensor_name()
    {
        var raw = new RawGguf(tensors: 2).Tensor("t", F32, 0, 8);
        long second = raw.Position;
        AssertFails(raw.Tensor("t", F32, 32, 8).Align().Zeros(64).ToArray(), second, "duplicate tensor name 't'");
    }

    [Fact]
    public void Empty_tensor_name() => AssertFails(new RawGguf(tensors: 1).Tensor("", F32, 0, 8).Align().Zeros(32).ToArray(), 24, "empty name");

    [Fact]
    public void Tensor_name_too_long_for_ggml() =>
        AssertFails(new RawGguf(tensors: 1).Tensor(new string('n', 64), F32, 0, 8).Align().Zeros(32).ToArray(), 24, "is 64 bytes long; ggml allows at most 63");

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void Wrong_number_of_dimensions(int dimensions)
    {
        var raw = new RawGguf(tensors: 1).Str("t");
        long dimsOffset = raw.Position;
        raw.U32((uint)dimensions).Bytes(new byte[8 * dimensions]).U32(F32).U64(0).Align().Zeros(32);
        AssertFails(raw.ToArray(), dimsOffset, $"tensor 't' has {dimensions} dimensions; ggml tensors have 1 to 4");
    }

    [Fact]
    public void Negative_dimension()
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(2).U64(4);
        long dimOffset = raw.Position;
        AssertFails(raw.U64(unchecked((ulong)-3L)).U32(F32).U64(0).Align().Zeros(32).ToArray(), dimOffset, "dimension 1 of tensor 't' is negative (-3)");
    }

    [Fact]
    public void Element_count_overflow()
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(3).U64(1UL << 32).U64(1UL << 30);
        long dimOffset = raw.Position;
        AssertFails(raw.U64(4).U32(F32).U64(0).Align().Zeros(32).ToArray(), dimOffset, "element count of tensor 't' overflows 64 bits");
    }

    [Fact]
    public void Size_overflow() =>
        AssertFails(new RawGguf(tensors: 1).Tensor("t", (uint)GgmlType.F64, 0, 1UL << 31, 1UL << 30).Align().Zeros(32).ToArray(), 53, "size of tensor 't' overflows 64 bits");

    [Theory]
    [InlineData(4u)]
    [InlineData(31u)]
    [InlineData(43u)]
    [InlineData(uint.MaxValue)]
    public void Unknown_ggml_type(uint type)
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(1).U64(32);
        long typeOffset = raw.Position;
        AssertFails(raw.U32(type).U64(0).Align().Zeros(256).ToArray(), typeOffset, $"tensor 't' has unknown ggml type {type}");
    }

    [Fact]
    public void Row_not_a_multiple_of_the_block_size()
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(2).U64(100).U64(2);
        long typeOffset = raw.Position;
        AssertFails(raw.U32((uint)GgmlType.Q4_K).U64(0).Align().Zeros(1024).ToArray(), typeOffset, "rows of 100 elements, not a multiple of the q4_K block size 256");
    }

    [Fact]
    public void Tensor_offset_not_aligned()
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(1).U64(8).U32(F32);
        long offsetField = raw.Position;
        AssertFails(raw.U64(16).Align().Zeros(64).ToArray(), offsetField, "tensor 't' data offset 16 is not a multiple of the alignment 32");
    }

    [Fact]
    public void Custom_alignment_applies_to_offsets()
    {
        var raw = new RawGguf(tensors: 1, metadata: 1).KvU32("general.alignment", 64).Str("t").U32(1).U64(8).U32(F32);
        long offsetField = raw.Position;
        AssertFails(raw.U64(32).Align(64).Zeros(128).ToArray(), offsetField, "not a multiple of the alignment 64");
    }

    [Fact]
    public void Tensor_data_beyond_the_end_of_the_file()
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(1).U64(16).U32(F32);
        long offsetField = raw.Position;
        byte[] file = raw.U64(0).Align().Zeros(60).ToArray();
        AssertFails(file, offsetField, $"tensor 't' data (64 bytes at 64 + 0) extends beyond the end of the file ({file.Length} bytes)");
    }

    [Fact]
    public void Tensor_offset_far_beyond_the_end()
    {
        var raw = new RawGguf(tensors: 1).Str("t").U32(1).U64(8).U32(F32);
        long offsetField = raw.Position;
        AssertFails(raw.U64(1UL << 63).Align().Zeros(32).ToArray(), offsetField, "lies beyond the end of the file");
    }

    [Fact]
    public void Data_section_beyond_the_end_of_the_file()
    {
        // 24 + 8 + 1 + 4 + 8 + 4 + 8 = 57 bytes of header and table; the data section would start at 64.
        byte[] file = new RawGguf(tensors: 1).Tensor("t", F32, 0, 0).ToArray();
        AssertFails(file, 57, "the data section would start at 64, beyond the end of the file (57 bytes)");
    }

    [Fact]
    public void Overlapping_tensor_data()
    {
        var raw = new RawGguf(tensors: 3).Tensor("a", F32, 0, 8).Tensor("b", F32, 64, 40);
        long offsetField = raw.Position + 8 + 1 + 4 + 8 + 4;
        AssertFails(raw.Tensor("c", F32, 128, 16).Align().Zeros(256).ToArray(), offsetField, "tensor 'c' data at 128 overlaps tensor 'b' (64 to 224)");
    }

    [Fact]
    public void Zero_size_tensors_overlap_nothing()
    {
        var file = GgufReader.Read(new MemoryStream(new RawGguf(tensors: 2).Tensor("a", F32, 0, 8).Tensor("b", F32, 0, 8, 0).Align().Zeros(32).ToArray()));
        Assert.Equal(0, file.Tensors[1].Bytes);
    }

    [Fact]
    public void Stream_that_is_shorter_than_it_says()
    {
        byte[] file = new RawGguf(metadata: 1).KvU32("k", 1).ToArray();
        var error = Assert.Throws<GgufFormatException>(() => GgufReader.Read(new LyingStream(file[..^2], file.Length)));
        Assert.Contains("shorter than its reported length", error.Message);
    }

    [Fact]
    public void Arguments_and_io_errors_are_not_format_errors()
    {
        Assert.Throws<FileNotFoundException>(() => GgufReader.Read(Path.Combine(Path.GetTempPath(), $"{Guid.NewGuid():N}.gguf")));
        Assert.Throws<ArgumentException>(() => GgufReader.Read(new LyingStream([], 0, canSeek: false)));
    }

    private static void AssertFails(byte[] file, long offset, string message)
    {
        var error = Assert.Throws<GgufFormatException>(() => GgufReader.Read(new MemoryStream(file)));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        if (offset >= 0)
        {
            Assert.Equal(offset, error.Offset);
            Assert.StartsWith($"GGUF: at offset {offset}: ", error.Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.InRange(error.Offset, 0, file.Length);
        }
    }

    // Reports a length it does not have, or no seeking.
    private sealed class LyingStream(byte[] data, long length, bool canSeek = true) : MemoryStream(data)
    {
        public override long Length => length;

        public override bool CanSeek => canSeek;
    }
}
