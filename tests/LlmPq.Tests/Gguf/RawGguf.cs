using System.Buffers.Binary;
using System.Text;

namespace LlmPq.Tests.Gguf;

/// <summary>Writes GGUF bytes field by field, valid or not, and tells where the next field goes.</summary>
internal sealed class RawGguf
{
    private readonly List<byte> _bytes = [];

    public RawGguf(uint version = 3, ulong tensors = 0, ulong metadata = 0, string magic = "GGUF")
    {
        Bytes(Encoding.ASCII.GetBytes(magic)).U32(version).U64(tensors).U64(metadata);
    }

    public long Position => _bytes.Count;

    public RawGguf U32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return Bytes(bytes);
    }

    public RawGguf U64(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return Bytes(bytes);
    }

    public RawGguf Bytes(params byte[] value)
    {
        _bytes.AddRange(value);
        return this;
    }

    public RawGguf Str(string value) => StrBytes(Encoding.UTF8.GetBytes(value));

    public RawGguf StrBytes(byte[] value) => U64((ulong)value.Length).Bytes(value);

    /// <summary>A key and a UInt32 value.</summary>
    public RawGguf KvU32(string key, uint value) => Str(key).U32(4).U32(value);

    /// <summary>A tensor table entry.</summary>
    public RawGguf Tensor(string name, uint type, ulong offset, params ulong[] shape)
    {
        Str(name).U32((uint)shape.Length);
        foreach (ulong dim in shape)
        {
            U64(dim);
        }

        return U32(type).U64(offset);
    }

    /// <summary>Zeros up to the next multiple of <paramref name="alignment"/>.</summary>
    public RawGguf Align(int alignment = 32) => Zeros((alignment - (_bytes.Count % alignment)) % alignment);

    public RawGguf Zeros(int count) => Bytes(new byte[count]);

    public byte[] ToArray() => [.. _bytes];
}
