using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace LlmPq.Gguf;

/// <summary>
/// Builds a GGUF version 3 file: metadata, then a tensor table, then the tensor data, each tensor aligned.
/// </summary>
/// <remarks>
/// Output is deterministic: entries and tensors keep the order they were added in, and padding is zeros.
/// Tensor data can come from a callback, so a large model never needs to be in memory at once.
/// </remarks>
public sealed class GgufWriter
{
    private const uint DefaultAlignment = 32;
    private const int MaxNameBytes = 63; // ggml's GGML_MAX_NAME less the terminating zero

    private readonly List<GgufMetadata> _metadata = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly List<Tensor> _tensors = [];
    private readonly HashSet<string> _tensorNames = new(StringComparer.Ordinal);

    /// <summary>Gets the alignment of tensor data: <c>general.alignment</c> when added, else 32.</summary>
    public int Alignment { get; private set; } = (int)DefaultAlignment;

    /// <summary>Adds a metadata entry.</summary>
    /// <param name="key">The key, such as <c>llama.block_count</c>.</param>
    /// <param name="value">The value; its CLR type gives its GGUF type (see <see cref="GgufMetadata"/>).</param>
    /// <exception cref="ArgumentException">The key is empty or already added, or the value has no GGUF type.</exception>
    public void AddMetadata(string key, object value) => AddMetadata(new GgufMetadata(key, value));

    /// <summary>Adds a metadata entry, such as one read from another file.</summary>
    /// <param name="entry">The entry.</param>
    /// <exception cref="ArgumentException">The key is already added, or <c>general.alignment</c> is not a power-of-two <see cref="uint"/>.</exception>
    public void AddMetadata(GgufMetadata entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Key == "general.alignment")
        {
            // Readers accept only a UInt32 power of two (gguf.cpp does the same).
            if (entry.Value is not uint alignment || alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > int.MaxValue)
            {
                throw new ArgumentException("general.alignment must be a UInt32 power of two.", nameof(entry));
            }

            if (_tensors.Count > 0)
            {
                throw new InvalidOperationException("Set general.alignment before adding tensors.");
            }

            Alignment = (int)alignment;
        }

        if (!_keys.Add(entry.Key))
        {
            throw new ArgumentException($"Metadata key '{entry.Key}' is already added.", nameof(entry));
        }

        _metadata.Add(entry);
    }

    /// <summary>Adds a tensor whose data is in memory.</summary>
    /// <param name="name">The name, unique, at most 63 UTF-8 bytes.</param>
    /// <param name="type">The element type.</param>
    /// <param name="shape">The dimensions, the row length first; 1 to 4 of them.</param>
    /// <param name="data">The data, exactly <see cref="GgmlTypes.TensorBytes"/> bytes; kept, not copied, until written.</param>
    /// <exception cref="ArgumentException">The name, shape or data length is invalid.</exception>
    public void AddTensor(string name, GgmlType type, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
    {
        long bytes = CheckTensor(name, type, shape);
        if (data.Length != bytes)
        {
            throw new ArgumentException($"Tensor '{name}' takes {bytes} bytes, but the data is {data.Length} bytes.", nameof(data));
        }

        Add(new Tensor(name, type, [.. shape], bytes, data, null));
    }

    /// <summary>Adds a tensor whose data a callback writes when the file is written.</summary>
    /// <param name="name">The name, unique, at most 63 UTF-8 bytes.</param>
    /// <param name="type">The element type.</param>
    /// <param name="shape">The dimensions, the row length first; 1 to 4 of them.</param>
    /// <param name="writeData">
    /// Writes exactly <see cref="GgmlTypes.TensorBytes"/> bytes to the stream it is given; called once per
    /// <see cref="Write(Stream)"/>, in tensor order.
    /// </param>
    /// <exception cref="ArgumentException">The name or shape is invalid.</exception>
    public void AddTensor(string name, GgmlType type, IReadOnlyList<long> shape, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        long bytes = CheckTensor(name, type, shape);
        Add(new Tensor(name, type, [.. shape], bytes, default, writeData));
    }

    /// <summary>Writes the file to <paramref name="path"/>, through a temporary file in the same folder, so no partial file is left.</summary>
    /// <param name="path">The path of the file; replaced when it exists.</param>
    /// <exception cref="IOException">The file cannot be written.</exception>
    /// <exception cref="InvalidOperationException">A data callback wrote the wrong number of bytes.</exception>
    public void Write(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Write(stream);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception deleteError) when (deleteError is IOException or UnauthorizedAccessException)
            {
                // The original exception says more than this one.
            }

            throw;
        }
    }

    /// <summary>Writes the file to <paramref name="stream"/>, from its current position.</summary>
    /// <param name="stream">A writable stream; left open.</param>
    /// <exception cref="IOException">The stream cannot be written.</exception>
    /// <exception cref="InvalidOperationException">A data callback wrote the wrong number of bytes.</exception>
    public void Write(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new ArrayBufferWriter<byte>(64 * 1024);
        header.Write("GGUF"u8);
        WriteUInt32(header, 3);
        WriteUInt64(header, (ulong)_tensors.Count);
        WriteUInt64(header, (ulong)_metadata.Count);
        foreach (var entry in _metadata)
        {
            WriteString(header, entry.Key);
            WriteUInt32(header, (uint)entry.Type);
            WriteValue(header, entry.Value);
        }

        long offset = 0;
        foreach (var tensor in _tensors)
        {
            WriteString(header, tensor.Name);
            WriteUInt32(header, (uint)tensor.Shape.Length);
            foreach (long dim in tensor.Shape)
            {
                WriteUInt64(header, (ulong)dim);
            }

            WriteUInt32(header, (uint)tensor.Type);
            WriteUInt64(header, (ulong)offset);
            offset += Pad(tensor.Bytes);
        }

        int headerPadding = (int)(Pad(header.WrittenCount) - header.WrittenCount);
        header.GetSpan(headerPadding)[..headerPadding].Clear();
        header.Advance(headerPadding);
        stream.Write(header.WrittenSpan);

        var zeros = new byte[Math.Min(Alignment, 64 * 1024)];
        foreach (var tensor in _tensors)
        {
            if (tensor.WriteData is null)
            {
                stream.Write(tensor.Data.Span);
            }
            else
            {
                var counting = new CountingStream(stream);
                tensor.WriteData(counting);
                if (counting.Written != tensor.Bytes)
                {
                    throw new InvalidOperationException($"The data callback of tensor '{tensor.Name}' wrote {counting.Written} bytes; the tensor takes {tensor.Bytes}.");
                }
            }

            for (long left = Pad(tensor.Bytes) - tensor.Bytes; left > 0; left -= zeros.Length)
            {
                stream.Write(zeros, 0, (int)Math.Min(left, zeros.Length));
            }
        }
    }

    private long Pad(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private long CheckTensor(string name, GgmlType type, IReadOnlyList<long> shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            throw new ArgumentException($"Tensor name '{name}' is longer than {MaxNameBytes} UTF-8 bytes.", nameof(name));
        }

        if (_tensorNames.Contains(name))
        {
            throw new ArgumentException($"Tensor '{name}' is already added.", nameof(name));
        }

        return GgmlTypes.TensorBytes(type, shape);
    }

    private void Add(Tensor tensor)
    {
        _tensorNames.Add(tensor.Name);
        _tensors.Add(tensor);
    }

    private static void WriteValue(ArrayBufferWriter<byte> buffer, object value)
    {
        switch (value)
        {
            case byte v: buffer.Write([v]); break;
            case sbyte v: buffer.Write([(byte)v]); break;
            case ushort v: BinaryPrimitives.WriteUInt16LittleEndian(buffer.GetSpan(2), v); buffer.Advance(2); break;
            case short v: BinaryPrimitives.WriteInt16LittleEndian(buffer.GetSpan(2), v); buffer.Advance(2); break;
            case uint v: WriteUInt32(buffer, v); break;
            case int v: BinaryPrimitives.WriteInt32LittleEndian(buffer.GetSpan(4), v); buffer.Advance(4); break;
            case float v: BinaryPrimitives.WriteSingleLittleEndian(buffer.GetSpan(4), v); buffer.Advance(4); break;
            case bool v: buffer.Write([v ? (byte)1 : (byte)0]); break;
            case string v: WriteString(buffer, v); break;
            case ulong v: WriteUInt64(buffer, v); break;
            case long v: BinaryPrimitives.WriteInt64LittleEndian(buffer.GetSpan(8), v); buffer.Advance(8); break;
            case double v: BinaryPrimitives.WriteDoubleLittleEndian(buffer.GetSpan(8), v); buffer.Advance(8); break;
            case GgufArray v:
                WriteUInt32(buffer, (uint)v.ElementType);
                WriteUInt64(buffer, (ulong)v.Count);
                WriteElements(buffer, v);
                break;
            default:
                throw new InvalidOperationException($"{value.GetType().Name} is not a GGUF value type.");
        }
    }

    private static void WriteElements(ArrayBufferWriter<byte> buffer, GgufArray array)
    {
        var values = array.Values;
        switch (array.ElementType)
        {
            case GgufValueType.UInt8: WritePrimitives<byte>(buffer, (byte[])values); break;
            case GgufValueType.Int8: WritePrimitives<sbyte>(buffer, (sbyte[])values); break;
            case GgufValueType.UInt16: WritePrimitives<ushort>(buffer, (ushort[])values); break;
            case GgufValueType.Int16: WritePrimitives<short>(buffer, (short[])values); break;
            case GgufValueType.UInt32: WritePrimitives<uint>(buffer, (uint[])values); break;
            case GgufValueType.Int32: WritePrimitives<int>(buffer, (int[])values); break;
            case GgufValueType.Float32: WritePrimitives<float>(buffer, (float[])values); break;
            case GgufValueType.UInt64: WritePrimitives<ulong>(buffer, (ulong[])values); break;
            case GgufValueType.Int64: WritePrimitives<long>(buffer, (long[])values); break;
            case GgufValueType.Float64: WritePrimitives<double>(buffer, (double[])values); break;
            default:
                // Strings, bools and nested arrays (each nested array carries its own type and count).
                foreach (object element in values)
                {
                    WriteValue(buffer, element);
                }

                break;
        }
    }

    private static void WritePrimitives<T>(ArrayBufferWriter<byte> buffer, ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var source = MemoryMarshal.AsBytes(values);
        var destination = buffer.GetSpan(source.Length)[..source.Length];
        source.CopyTo(destination);
        if (!BitConverter.IsLittleEndian && values.Length > 0)
        {
            int size = source.Length / values.Length;
            for (int i = 0; i < destination.Length; i += size)
            {
                destination.Slice(i, size).Reverse();
            }
        }

        buffer.Advance(source.Length);
    }

    private static void WriteString(ArrayBufferWriter<byte> buffer, string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        WriteUInt64(buffer, (ulong)length);
        Encoding.UTF8.GetBytes(value, buffer.GetSpan(length));
        buffer.Advance(length);
    }

    private static void WriteUInt32(ArrayBufferWriter<byte> buffer, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.GetSpan(4), value);
        buffer.Advance(4);
    }

    private static void WriteUInt64(ArrayBufferWriter<byte> buffer, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.GetSpan(8), value);
        buffer.Advance(8);
    }

    private sealed record Tensor(string Name, GgmlType Type, long[] Shape, long Bytes, ReadOnlyMemory<byte> Data, Action<Stream>? WriteData);

    // Hands a data callback the output stream, write-only, and counts what it writes.
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Written { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => Written;
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Written += buffer.Length;
        }

        public override void WriteByte(byte value)
        {
            inner.WriteByte(value);
            Written++;
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
