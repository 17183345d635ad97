using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Unicode;

namespace LlmPq.Gguf;

/// <summary>
/// Reads the header, metadata and tensor table of a GGUF file (versions 2 and 3, little-endian), never the weights.
/// </summary>
/// <remarks>
/// The file is untrusted input. Every count and length is checked against the bytes the file has left before
/// anything is allocated for it, so a hostile file costs at most a small multiple of its own size in memory, and
/// every problem is a <see cref="GgufFormatException"/> naming the offset.
/// </remarks>
public static class GgufReader
{
    /// <summary>Reads a GGUF file.</summary>
    /// <param name="path">The path of the file.</param>
    /// <returns>The file's header, metadata and tensor table.</returns>
    /// <exception cref="GgufFormatException">The file is not a valid GGUF file.</exception>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static GgufFile Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);

        // No FileStream buffer: the parser reads in large chunks itself.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        return Read(stream);
    }

    /// <summary>Reads a GGUF file from the beginning of a seekable stream.</summary>
    /// <param name="stream">The stream; its length is the file's length.</param>
    /// <returns>The file's header, metadata and tensor table.</returns>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot read or seek.</exception>
    /// <exception cref="GgufFormatException">The stream does not hold a valid GGUF file.</exception>
    /// <exception cref="IOException">The stream cannot be read.</exception>
    public static GgufFile Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanSeek)
        {
            throw new ArgumentException("GGUF is read from a readable, seekable stream.", nameof(stream));
        }

        stream.Position = 0;
        return new Parser(stream, stream.Length).ReadFile();
    }

    private sealed class Parser
    {
        private const int ChunkSize = 64 * 1024;
        private const uint DefaultAlignment = 32;
        private const int MaxNameBytes = 63; // ggml's GGML_MAX_NAME less the terminating zero
        private const int MaxArrayDepth = 16;
        private const long MaxStringBytes = 1L << 30; // as gguf.cpp

        // Smallest encodings, to bound counts by the bytes left: a key-value pair is a non-empty key (8 + 1),
        // a type (4) and a one-byte value; a tensor entry is a non-empty name (8 + 1), a dimension count (4),
        // one dimension (8), a type (4) and an offset (8).
        private const int MinMetadataBytes = 8 + 1 + 4 + 1;
        private const int MinTensorBytes = 8 + 1 + 4 + 8 + 4 + 8;

        private static readonly byte[] s_magic = "GGUF"u8.ToArray();

        private readonly Stream _stream;
        private readonly long _length;
        private readonly byte[] _buffer;
        private long _bufferStart; // file offset of _buffer[0]
        private int _bufferCount;
        private int _bufferPos;

        // What is being read, for messages.
        private string _context = "the header";

        public Parser(Stream stream, long length)
        {
            _stream = stream;
            _length = length;
            _buffer = new byte[(int)Math.Clamp(length, 1, ChunkSize)];
        }

        private long Position => _bufferStart + _bufferPos;

        private long Remaining => _length - Position;

        public GgufFile ReadFile()
        {
            if (_length < 4 || !Take(4).SequenceEqual(s_magic))
            {
                throw new GgufFormatException(0, $"not a GGUF file: it does not start with the magic 'GGUF' ({_length} bytes)");
            }

            uint version = ReadUInt32();
            if (version != 0 && (version & 0xFFFF) == 0)
            {
                throw new GgufFormatException(4, $"version 0x{version:X8} is that of a big-endian GGUF file; only little-endian files are supported");
            }

            if (version is not (2 or 3))
            {
                throw new GgufFormatException(4, $"GGUF version {version} is not supported (versions 2 and 3 are)");
            }

            ulong tensorCount = ReadUInt64();
            ulong metadataCount = ReadUInt64();
            ulong left = (ulong)Remaining;
            if (tensorCount > left / MinTensorBytes || tensorCount > int.MaxValue)
            {
                throw new GgufFormatException(8, $"tensor count {tensorCount} cannot fit in a file of {_length} bytes");
            }

            left -= tensorCount * MinTensorBytes;
            if (metadataCount > left / MinMetadataBytes || metadataCount > int.MaxValue)
            {
                throw new GgufFormatException(16, $"metadata count {metadataCount} cannot fit in a file of {_length} bytes");
            }

            long metadataOffset = Position;
            var (metadata, byKey) = ReadMetadata((int)metadataCount);
            uint alignment = ReadAlignment(byKey);
            var (tensors, offsetFields) = ReadTensorTable((int)tensorCount, alignment);

            long dataOffset = (Position + alignment - 1) / alignment * alignment;
            if (tensors.Count > 0)
            {
                CheckTensorData(tensors, offsetFields, dataOffset);
            }

            return new GgufFile((int)version, (int)alignment, metadata, byKey, metadataOffset, tensors, dataOffset, _length);
        }

        private (List<GgufMetadata>, Dictionary<string, (GgufMetadata, long)>) ReadMetadata(int count)
        {
            var metadata = new List<GgufMetadata>(count);
            var byKey = new Dictionary<string, (GgufMetadata, long)>(count, StringComparer.Ordinal);
            for (int i = 0; i < count; i++)
            {
                long entryOffset = Position;
                _context = $"metadata entry {i}";
                string key = ReadString();
                if (key.Length == 0)
                {
                    throw new GgufFormatException(entryOffset, $"metadata entry {i} has an empty key");
                }

                if (byKey.ContainsKey(key))
                {
                    throw new GgufFormatException(entryOffset, $"duplicate metadata key '{key}'");
                }

                _context = $"metadata '{key}'";
                long typeOffset = Position;
                object value = ReadValue(ReadUInt32(), typeOffset, depth: 0);
                var entry = new GgufMetadata(key, value);
                metadata.Add(entry);
                byKey.Add(key, (entry, entryOffset));
            }

            return (metadata, byKey);
        }

        private static uint ReadAlignment(Dictionary<string, (GgufMetadata Entry, long Offset)> byKey)
        {
            if (!byKey.TryGetValue("general.alignment", out var alignment))
            {
                return DefaultAlignment;
            }

            // gguf.cpp accepts only UInt32 here.
            if (alignment.Entry.Value is not uint value)
            {
                throw new GgufFormatException(alignment.Offset, $"general.alignment is {alignment.Entry.Type}, expected UInt32");
            }

            if (value == 0 || (value & (value - 1)) != 0 || value > int.MaxValue)
            {
                throw new GgufFormatException(alignment.Offset, $"general.alignment {value} is not a power of two");
            }

            return value;
        }

        private (List<GgufTensorInfo>, long[]) ReadTensorTable(int count, uint alignment)
        {
            var tensors = new List<GgufTensorInfo>(count);
            var offsetFields = new long[count];
            var names = new HashSet<string>(count, StringComparer.Ordinal);
            for (int i = 0; i < count; i++)
            {
                long entryOffset = Position;
                _context = $"tensor {i}";
                string name = ReadString();
                if (name.Length == 0)
                {
                    throw new GgufFormatException(entryOffset, $"tensor {i} has an empty name");
                }

                int nameBytes = Encoding.UTF8.GetByteCount(name);
                if (nameBytes > MaxNameBytes)
                {
                    throw new GgufFormatException(entryOffset, $"tensor name '{name}' is {nameBytes} bytes long; ggml allows at most {MaxNameBytes}");
                }

                if (!names.Add(name))
                {
                    throw new GgufFormatException(entryOffset, $"duplicate tensor name '{name}'");
                }

                _context = $"tensor '{name}'";
                long dimsOffset = Position;
                uint dimensionCount = ReadUInt32();
                if (dimensionCount is 0 or > GgmlTypes.MaxDimensions)
                {
                    throw new GgufFormatException(dimsOffset, $"tensor '{name}' has {dimensionCount} dimensions; ggml tensors have 1 to {GgmlTypes.MaxDimensions}");
                }

                var shape = new long[dimensionCount];
                long elementCount = 1;
                for (int d = 0; d < shape.Length; d++)
                {
                    long dimOffset = Position;
                    ulong dim = ReadUInt64();
                    if (dim > long.MaxValue)
                    {
                        throw new GgufFormatException(dimOffset, $"dimension {d} of tensor '{name}' is negative ({(long)dim})");
                    }

                    shape[d] = (long)dim;
                    if (elementCount != 0 && shape[d] != 0 && elementCount > long.MaxValue / shape[d])
                    {
                        throw new GgufFormatException(dimOffset, $"element count of tensor '{name}' overflows 64 bits");
                    }

                    elementCount *= shape[d];
                }

                long typeOffset = Position;
                uint rawType = ReadUInt32();
                if (!GgmlTypes.IsDefined(rawType))
                {
                    throw new GgufFormatException(typeOffset, $"tensor '{name}' has unknown ggml type {rawType}");
                }

                var type = (GgmlType)rawType;
                int blockSize = GgmlTypes.BlockSize(type);
                if (shape[0] % blockSize != 0)
                {
                    throw new GgufFormatException(typeOffset, $"tensor '{name}' has rows of {shape[0]} elements, not a multiple of the {GgmlTypes.Name(type)} block size {blockSize}");
                }

                // elementCount fits in a long, and no type takes more than 8 bytes per element.
                long blocks = elementCount / blockSize;
                int typeSize = GgmlTypes.TypeSize(type);
                if (blocks > long.MaxValue / typeSize)
                {
                    throw new GgufFormatException(typeOffset, $"size of tensor '{name}' overflows 64 bits");
                }

                long offsetField = Position;
                ulong offset = ReadUInt64();
                if (offset % alignment != 0)
                {
                    throw new GgufFormatException(offsetField, $"tensor '{name}' data offset {offset} is not a multiple of the alignment {alignment}");
                }

                if (offset > (ulong)_length)
                {
                    throw new GgufFormatException(offsetField, $"tensor '{name}' data offset {offset} lies beyond the end of the file ({_length} bytes)");
                }

                offsetFields[i] = offsetField;
                tensors.Add(new GgufTensorInfo(name, type, shape, (long)offset, elementCount, blocks * typeSize));
            }

            return (tensors, offsetFields);
        }

        private void CheckTensorData(List<GgufTensorInfo> tensors, long[] offsetFields, long dataOffset)
        {
            if (dataOffset > _length)
            {
                throw new GgufFormatException(Position, $"the data section would start at {dataOffset}, beyond the end of the file ({_length} bytes)");
            }

            long dataBytes = _length - dataOffset;
            for (int i = 0; i < tensors.Count; i++)
            {
                var tensor = tensors[i];
                if (tensor.Offset > dataBytes || tensor.Bytes > dataBytes - tensor.Offset)
                {
                    throw new GgufFormatException(
                        offsetFields[i],
                        $"tensor '{tensor.Name}' data ({tensor.Bytes} bytes at {dataOffset} + {tensor.Offset}) extends beyond the end of the file ({_length} bytes)");
                }
            }

            var order = Enumerable.Range(0, tensors.Count)
                .Where(i => tensors[i].Bytes > 0)
                .OrderBy(i => tensors[i].Offset)
                .ToArray();
            for (int k = 1; k < order.Length; k++)
            {
                var previous = tensors[order[k - 1]];
                var current = tensors[order[k]];
                if (current.Offset < previous.Offset + previous.Bytes)
                {
                    throw new GgufFormatException(
                        offsetFields[order[k]],
                        $"tensor '{current.Name}' data at {current.Offset} overlaps tensor '{previous.Name}' ({previous.Offset} to {previous.Offset + previous.Bytes})");
                }
            }
        }

        private object ReadValue(uint type, long typeOffset, int depth) => (GgufValueType)type switch
        {
            GgufValueType.UInt8 => Take(1)[0],
            GgufValueType.Int8 => (sbyte)Take(1)[0],
            GgufValueType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(Take(2)),
            GgufValueType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(Take(2)),
            GgufValueType.UInt32 => ReadUInt32(),
            GgufValueType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Take(4)),
            GgufValueType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(Take(4)),
            GgufValueType.Bool => Take(1)[0] != 0, // nonzero is true, as in gguf.cpp
            GgufValueType.String => ReadString(),
            GgufValueType.Array => ReadArray(depth),
            GgufValueType.UInt64 => ReadUInt64(),
            GgufValueType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(Take(8)),
            GgufValueType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(Take(8)),
            _ => throw new GgufFormatException(typeOffset, $"{_context} has invalid value type {type}"),
        };

        private GgufArray ReadArray(int depth)
        {
            long typeOffset = Position;
            uint rawType = ReadUInt32();
            long countOffset = Position;
            ulong count = ReadUInt64();
            var type = (GgufValueType)rawType;
            int minElementBytes = type switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
                GgufValueType.String => 8, // the length
                GgufValueType.Array => 12, // element type and count
                _ => throw new GgufFormatException(typeOffset, $"{_context} is an array of invalid value type {rawType}"),
            };

            if (type == GgufValueType.Array && depth + 1 >= MaxArrayDepth)
            {
                throw new GgufFormatException(typeOffset, $"{_context} nests arrays deeper than {MaxArrayDepth} levels");
            }

            if (count > (ulong)Remaining / (ulong)minElementBytes || count > (ulong)Array.MaxLength)
            {
                throw new GgufFormatException(countOffset, $"{_context} claims {count} {type} elements, more than the {Remaining} bytes left in the file can hold");
            }

            int n = (int)count;
            Array values = type switch
            {
                GgufValueType.UInt8 => ReadPrimitives<byte>(n),
                GgufValueType.Int8 => ReadPrimitives<sbyte>(n),
                GgufValueType.UInt16 => ReadPrimitives<ushort>(n),
                GgufValueType.Int16 => ReadPrimitives<short>(n),
                GgufValueType.UInt32 => ReadPrimitives<uint>(n),
                GgufValueType.Int32 => ReadPrimitives<int>(n),
                GgufValueType.Float32 => ReadPrimitives<float>(n),
                GgufValueType.Bool => Array.ConvertAll(ReadPrimitives<byte>(n), b => b != 0),
                GgufValueType.UInt64 => ReadPrimitives<ulong>(n),
                GgufValueType.Int64 => ReadPrimitives<long>(n),
                GgufValueType.Float64 => ReadPrimitives<double>(n),
                GgufValueType.String => ReadStrings(n),
                _ => ReadArrays(n, depth + 1),
            };
            return GgufArray.Wrap(type, values);
        }

        private string[] ReadStrings(int count)
        {
            var strings = new string[count];
            for (int i = 0; i < strings.Length; i++)
            {
                strings[i] = ReadString();
            }

            return strings;
        }

        private GgufArray[] ReadArrays(int count, int depth)
        {
            var arrays = new GgufArray[count];
            for (int i = 0; i < arrays.Length; i++)
            {
                arrays[i] = ReadArray(depth);
            }

            return arrays;
        }

        private T[] ReadPrimitives<T>(int count)
            where T : unmanaged
        {
            if (count == 0)
            {
                return [];
            }

            var values = new T[count];
            var bytes = MemoryMarshal.AsBytes(values.AsSpan());
            ReadExactly(bytes);
            if (!BitConverter.IsLittleEndian)
            {
                int size = bytes.Length / count;
                for (int i = 0; i < bytes.Length; i += size)
                {
                    bytes.Slice(i, size).Reverse();
                }
            }

            return values;
        }

        private string ReadString()
        {
            long lengthOffset = Position;
            ulong length = ReadUInt64();
            if (length > (ulong)Remaining)
            {
                throw new GgufFormatException(lengthOffset, $"{_context}: string length {length} exceeds the {Remaining} bytes left in the file");
            }

            if (length > MaxStringBytes)
            {
                throw new GgufFormatException(lengthOffset, $"{_context}: string length {length} exceeds the limit of {MaxStringBytes}");
            }

            if (length == 0)
            {
                return string.Empty;
            }

            ReadOnlySpan<byte> bytes;
            if (length <= (ulong)_buffer.Length)
            {
                bytes = Take((int)length);
            }
            else
            {
                var large = new byte[length];
                ReadExactly(large);
                bytes = large;
            }

            if (!Utf8.IsValid(bytes))
            {
                throw new GgufFormatException(lengthOffset + 8, $"{_context}: a string of {length} bytes is not valid UTF-8");
            }

            return Encoding.UTF8.GetString(bytes);
        }

        private uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        // Returns the next count bytes (count <= the buffer size) and moves past them.
        private ReadOnlySpan<byte> Take(int count)
        {
            if (_bufferCount - _bufferPos < count)
            {
                Fill(count);
            }

            var span = new ReadOnlySpan<byte>(_buffer, _bufferPos, count);
            _bufferPos += count;
            return span;
        }

        private void ReadExactly(Span<byte> destination)
        {
            if (destination.Length > Remaining)
            {
                throw Truncated(destination.Length);
            }

            while (!destination.IsEmpty)
            {
                if (_bufferPos == _bufferCount)
                {
                    Fill(Math.Min(destination.Length, _buffer.Length));
                }

                int n = Math.Min(destination.Length, _bufferCount - _bufferPos);
                _buffer.AsSpan(_bufferPos, n).CopyTo(destination);
                _bufferPos += n;
                destination = destination[n..];
            }
        }

        // Makes at least count bytes available at _bufferPos.
        private void Fill(int count)
        {
            if (Remaining < count)
            {
                throw Truncated(count);
            }

            int kept = _bufferCount - _bufferPos;
            Buffer.BlockCopy(_buffer, _bufferPos, _buffer, 0, kept);
            _bufferStart += _bufferPos;
            _bufferPos = 0;
            _bufferCount = kept;
            while (_bufferCount < count)
            {
                int wanted = (int)Math.Min(_buffer.Length - _bufferCount, _length - _bufferStart - _bufferCount);
                int read = _stream.Read(_buffer, _bufferCount, wanted);
                if (read == 0)
                {
                    // The stream ended before the length it reported.
                    throw new GgufFormatException(_bufferStart + _bufferCount, $"unexpected end of file in {_context}: the file is shorter than its reported length {_length}");
                }

                _bufferCount += read;
            }
        }

        private GgufFormatException Truncated(int needed) =>
            new(Position, $"unexpected end of file in {_context}: {needed} bytes needed, {Remaining} left");
    }
}
