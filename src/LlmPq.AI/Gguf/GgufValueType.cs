using System.Diagnostics.CodeAnalysis;

namespace LlmPq.Gguf;

/// <summary>
/// The type of a GGUF metadata value, numbered as <c>enum gguf_type</c> in <c>gguf.h</c>.
/// </summary>
/// <remarks>
/// Each type maps to one CLR type in <see cref="GgufMetadata.Value"/>: <see cref="byte"/>, <see cref="sbyte"/>,
/// <see cref="ushort"/>, <see cref="short"/>, <see cref="uint"/>, <see cref="int"/>, <see cref="float"/>,
/// <see cref="bool"/>, <see cref="string"/>, <see cref="GgufArray"/>, <see cref="ulong"/>, <see cref="long"/>
/// and <see cref="double"/>.
/// </remarks>
[SuppressMessage("Naming", "CA1720:Identifier contains type name", Justification = "The members name the format's value types, as System.TypeCode does.")]
public enum GgufValueType
{
    /// <summary><c>GGUF_TYPE_UINT8</c>, a <see cref="byte"/>.</summary>
    UInt8 = 0,

    /// <summary><c>GGUF_TYPE_INT8</c>, an <see cref="sbyte"/>.</summary>
    Int8 = 1,

    /// <summary><c>GGUF_TYPE_UINT16</c>, a <see cref="ushort"/>.</summary>
    UInt16 = 2,

    /// <summary><c>GGUF_TYPE_INT16</c>, a <see cref="short"/>.</summary>
    Int16 = 3,

    /// <summary><c>GGUF_TYPE_UINT32</c>, a <see cref="uint"/>.</summary>
    UInt32 = 4,

    /// <summary><c>GGUF_TYPE_INT32</c>, an <see cref="int"/>.</summary>
    Int32 = 5,

    /// <summary><c>GGUF_TYPE_FLOAT32</c>, a <see cref="float"/>.</summary>
    Float32 = 6,

    /// <summary><c>GGUF_TYPE_BOOL</c>, a <see cref="bool"/> stored as one byte.</summary>
    Bool = 7,

    /// <summary><c>GGUF_TYPE_STRING</c>, a UTF-8 <see cref="string"/> with a 64-bit length.</summary>
    String = 8,

    /// <summary><c>GGUF_TYPE_ARRAY</c>, a <see cref="GgufArray"/> of values of one type.</summary>
    Array = 9,

    /// <summary><c>GGUF_TYPE_UINT64</c>, a <see cref="ulong"/>.</summary>
    UInt64 = 10,

    /// <summary><c>GGUF_TYPE_INT64</c>, a <see cref="long"/>.</summary>
    Int64 = 11,

    /// <summary><c>GGUF_TYPE_FLOAT64</c>, a <see cref="double"/>.</summary>
    Float64 = 12,
}
