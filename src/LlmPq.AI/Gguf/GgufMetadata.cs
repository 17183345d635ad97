namespace LlmPq.Gguf;

/// <summary>
/// One GGUF metadata entry: a key and a typed value.
/// </summary>
public sealed record GgufMetadata
{
    /// <summary>Initializes a new instance of the <see cref="GgufMetadata"/> class.</summary>
    /// <param name="key">The key, such as <c>general.architecture</c>.</param>
    /// <param name="value">
    /// The value; its CLR type gives <see cref="Type"/>: <see cref="byte"/>, <see cref="sbyte"/>, <see cref="ushort"/>,
    /// <see cref="short"/>, <see cref="uint"/>, <see cref="int"/>, <see cref="float"/>, <see cref="bool"/>,
    /// <see cref="string"/>, <see cref="GgufArray"/>, <see cref="ulong"/>, <see cref="long"/> or <see cref="double"/>.
    /// </param>
    /// <exception cref="ArgumentException"><paramref name="key"/> is empty, or <paramref name="value"/> has no GGUF type.</exception>
    public GgufMetadata(string key, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        Key = key;
        Type = ValueTypeOf(value.GetType())
            ?? throw new ArgumentException($"{value.GetType().Name} is not a GGUF value type.", nameof(value));
        Value = value;
    }

    /// <summary>Gets the key.</summary>
    public string Key { get; }

    /// <summary>Gets the type of <see cref="Value"/>.</summary>
    public GgufValueType Type { get; }

    /// <summary>Gets the value, of the CLR type that <see cref="Type"/> names.</summary>
    public object Value { get; }

    /// <summary>Maps a CLR type to its GGUF value type, or null when it has none.</summary>
    internal static GgufValueType? ValueTypeOf(Type type) =>
        type == typeof(byte) ? GgufValueType.UInt8
        : type == typeof(sbyte) ? GgufValueType.Int8
        : type == typeof(ushort) ? GgufValueType.UInt16
        : type == typeof(short) ? GgufValueType.Int16
        : type == typeof(uint) ? GgufValueType.UInt32
        : type == typeof(int) ? GgufValueType.Int32
        : type == typeof(float) ? GgufValueType.Float32
        : type == typeof(bool) ? GgufValueType.Bool
        : type == typeof(string) ? GgufValueType.String
        : type == typeof(GgufArray) ? GgufValueType.Array
        : type == typeof(ulong) ? GgufValueType.UInt64
        : type == typeof(long) ? GgufValueType.Int64
        : type == typeof(double) ? GgufValueType.Float64
        : null;
}
