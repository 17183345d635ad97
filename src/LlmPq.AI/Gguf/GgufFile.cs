using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace LlmPq.Gguf;

/// <summary>
/// What a GGUF file holds besides the weights: its header, metadata and tensor table.
/// </summary>
/// <remarks>Made by <see cref="GgufReader"/>, which has checked it; immutable.</remarks>
public sealed class GgufFile
{
    private readonly Dictionary<string, (GgufMetadata Entry, long Offset)> _metadataByKey;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;
    private readonly long _metadataOffset;

    internal GgufFile(
        int version,
        int alignment,
        IReadOnlyList<GgufMetadata> metadata,
        Dictionary<string, (GgufMetadata Entry, long Offset)> metadataByKey,
        long metadataOffset,
        IReadOnlyList<GgufTensorInfo> tensors,
        long dataOffset,
        long fileLength)
    {
        Version = version;
        Alignment = alignment;
        Metadata = metadata;
        _metadataByKey = metadataByKey;
        _metadataOffset = metadataOffset;
        Tensors = tensors;
        _tensorsByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        DataOffset = dataOffset;
        FileLength = fileLength;
    }

    /// <summary>Gets the GGUF version (2 or 3).</summary>
    public int Version { get; }

    /// <summary>Gets the alignment of tensor data in bytes (<c>general.alignment</c>, 32 when absent).</summary>
    public int Alignment { get; }

    /// <summary>Gets the metadata entries, in file order.</summary>
    public IReadOnlyList<GgufMetadata> Metadata { get; }

    /// <summary>Gets the tensor table, in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Gets the absolute file offset of the data section, which tensor offsets are relative to.</summary>
    public long DataOffset { get; }

    /// <summary>Gets the length of the file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>Gets the model architecture (<c>general.architecture</c>), or null when absent or not a string.</summary>
    public string? Architecture => TryGetString("general.architecture", out var value) ? value : null;

    /// <summary>Gets the layer a tensor name belongs to: the N of a name starting with <c>blk.N.</c>.</summary>
    /// <param name="tensorName">A tensor name, such as <c>blk.12.ffn_up.weight</c>.</param>
    /// <returns>The layer index, or null for names outside the layers (<c>token_embd.weight</c>, <c>output.weight</c>).</returns>
    public static int? LayerOf(string tensorName)
    {
        ArgumentNullException.ThrowIfNull(tensorName);
        const string Prefix = "blk.";
        if (!tensorName.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = tensorName.AsSpan(Prefix.Length);
        int dot = rest.IndexOf('.');
        return dot > 0 && int.TryParse(rest[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out int layer) ? layer : null;
    }

    /// <summary>Finds a metadata entry.</summary>
    /// <param name="key">The key.</param>
    /// <param name="entry">The entry, when found.</param>
    /// <returns><see langword="true"/> when the file has <paramref name="key"/>.</returns>
    public bool TryGetMetadata(string key, [NotNullWhen(true)] out GgufMetadata? entry)
    {
        ArgumentNullException.ThrowIfNull(key);
        bool found = _metadataByKey.TryGetValue(key, out var item);
        entry = item.Entry;
        return found;
    }

    /// <summary>Finds a tensor by name.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="tensor">The tensor, when found.</param>
    /// <returns><see langword="true"/> when the file has a tensor named <paramref name="name"/>.</returns>
    public bool TryGetTensor(string name, [NotNullWhen(true)] out GgufTensorInfo? tensor)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _tensorsByName.TryGetValue(name, out tensor);
    }

    /// <summary>Gets a string value.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value, when <paramref name="key"/> holds a string.</param>
    /// <returns><see langword="true"/> when <paramref name="key"/> is present and holds a string.</returns>
    public bool TryGetString(string key, [NotNullWhen(true)] out string? value)
    {
        value = TryGetMetadata(key, out var entry) ? entry.Value as string : null;
        return value is not null;
    }

    /// <summary>Gets a string value.</summary>
    /// <param name="key">The key.</param>
    /// <returns>The value.</returns>
    /// <exception cref="GgufFormatException"><paramref name="key"/> is missing or holds no string.</exception>
    public string GetString(string key) =>
        Get(key).Entry.Value as string ?? throw WrongType(key, "a string");

    /// <summary>Gets an integer value stored as any GGUF integer type.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value, when <paramref name="key"/> holds an integer that fits in a <see cref="long"/>.</param>
    /// <returns><see langword="true"/> when <paramref name="key"/> is present and holds such an integer.</returns>
    public bool TryGetInteger(string key, out long value)
    {
        value = 0;
        return TryGetMetadata(key, out var entry) && TryConvertInteger(entry.Value, out value);
    }

    /// <summary>Gets a 32-bit unsigned value stored as any GGUF integer type (as writers store counts and sizes).</summary>
    /// <param name="key">The key.</param>
    /// <returns>The value.</returns>
    /// <exception cref="GgufFormatException"><paramref name="key"/> is missing, holds no integer, or one outside the range of <see cref="uint"/>.</exception>
    public uint GetUInt32(string key) =>
        TryConvertInteger(Get(key).Entry.Value, out long value) && value is >= 0 and <= uint.MaxValue
            ? (uint)value
            : throw WrongType(key, "an integer from 0 to 4294967295");

    /// <summary>Gets a floating-point value stored as a GGUF float32 or float64.</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value, when <paramref name="key"/> holds a floating-point number.</param>
    /// <returns><see langword="true"/> when <paramref name="key"/> is present and holds a floating-point number.</returns>
    public bool TryGetDouble(string key, out double value)
    {
        value = 0;
        if (!TryGetMetadata(key, out var entry))
        {
            return false;
        }

        switch (entry.Value)
        {
            case float f: value = f; return true;
            case double d: value = d; return true;
            default: return false;
        }
    }

    /// <summary>Gets an array value, such as <c>tokenizer.ggml.tokens</c>.</summary>
    /// <typeparam name="T">The CLR type of the elements, such as <see cref="string"/> or <see cref="float"/>.</typeparam>
    /// <param name="key">The key.</param>
    /// <returns>A read-only view of the elements.</returns>
    /// <exception cref="GgufFormatException"><paramref name="key"/> is missing or holds no array of <typeparamref name="T"/>.</exception>
    public IReadOnlyList<T> GetArray<T>(string key) =>
        Get(key).Entry.Value is GgufArray array && array.Holds<T>()
            ? array.As<T>()
            : throw WrongType(key, $"an array of {typeof(T).Name}");

    private (GgufMetadata Entry, long Offset) Get(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _metadataByKey.TryGetValue(key, out var item)
            ? item
            : throw new GgufFormatException(_metadataOffset, $"metadata key '{key}' is missing");
    }

    private GgufFormatException WrongType(string key, string expected)
    {
        var (entry, offset) = _metadataByKey[key];
        string actual = entry.Value switch
        {
            GgufArray array => $"an array of {array.ElementType}",
            string => "a string",
            _ => $"{entry.Type} {entry.Value}",
        };
        return new GgufFormatException(offset, $"metadata '{key}' is {actual}, expected {expected}");
    }

    private static bool TryConvertInteger(object value, out long result)
    {
        switch (value)
        {
            case byte v: result = v; return true;
            case sbyte v: result = v; return true;
            case ushort v: result = v; return true;
            case short v: result = v; return true;
            case uint v: result = v; return true;
            case int v: result = v; return true;
            case long v: result = v; return true;
            case ulong v when v <= long.MaxValue: result = (long)v; return true;
            default: result = 0; return false;
        }
    }
}
