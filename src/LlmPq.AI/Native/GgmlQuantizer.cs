using System.Runtime.InteropServices;
using LlmPq.Gguf;

namespace LlmPq.Native;

/// <summary>
/// Quantizes float rows with ggml's own routine (<c>ggml_quantize_chunk</c>, as <c>llama_model_quantize</c> does
/// without an importance matrix) and turns ggml data back into floats with the type's <c>to_float</c>.
/// </summary>
/// <remarks>Thread-safe: ggml builds the tables of the i-quants once, under its own lock, and keeps no other state.</remarks>
internal static unsafe class GgmlQuantizer
{
    // The types ggml_quantize_chunk's switch handles in the pinned ggml; any other type makes it abort the process.
    private static readonly HashSet<GgmlType> s_quantizable =
    [
        GgmlType.F32, GgmlType.F16, GgmlType.BF16,
        GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0, GgmlType.Q1_0, GgmlType.Q2_0,
        GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
        GgmlType.TQ1_0, GgmlType.TQ2_0, GgmlType.MXFP4, GgmlType.NVFP4,
        GgmlType.IQ2_XXS, GgmlType.IQ2_XS, GgmlType.IQ2_S, GgmlType.IQ3_XXS, GgmlType.IQ3_S,
        GgmlType.IQ1_S, GgmlType.IQ1_M, GgmlType.IQ4_NL, GgmlType.IQ4_XS,
    ];

    /// <summary>
    /// Gets whether rows of <paramref name="rowLength"/> floats can be quantized to <paramref name="type"/>: ggml
    /// quantizes to it without an importance matrix, and the row is a whole number of its blocks.
    /// </summary>
    public static bool CanQuantize(GgmlType type, long rowLength) =>
        rowLength > 0
        && s_quantizable.Contains(type)
        && rowLength % GgmlTypes.BlockSize(type) == 0
        && !GgmlNative.ggml_quantize_requires_imatrix((int)type);

    /// <summary>Gets whether <see cref="ToFloat"/> reads <paramref name="type"/>.</summary>
    public static bool CanConvertToFloat(GgmlType type) =>
        GgmlTypes.IsDefined((long)type) && (type == GgmlType.F32 || GgmlNative.ggml_get_type_traits((int)type)->ToFloat != null);

    /// <summary>Quantizes whole rows of <paramref name="rowLength"/> floats into <paramref name="destination"/>.</summary>
    /// <returns>The number of bytes written: the rows times <see cref="GgmlTypes.RowBytes"/>.</returns>
    /// <exception cref="NotSupportedException">The type cannot take rows of this length (see <see cref="CanQuantize"/>).</exception>
    /// <exception cref="ArgumentException">The source is not whole rows, or the destination is too small.</exception>
    public static int Quantize(GgmlType type, ReadOnlySpan<float> source, int rowLength, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowLength);
        if (!CanQuantize(type, rowLength))
        {
            throw new NotSupportedException(
                $"ggml cannot quantize rows of {rowLength} to {GgmlTypes.Name(type)} without an importance matrix (blocks of {GgmlTypes.BlockSize(type)}).");
        }

        if (source.Length % rowLength != 0)
        {
            throw new ArgumentException($"{source.Length} floats are not whole rows of {rowLength}.", nameof(source));
        }

        int rows = source.Length / rowLength;
        long bytes = rows * GgmlTypes.RowBytes(type, rowLength);
        if (destination.Length < bytes)
        {
            throw new ArgumentException($"{rows} rows of {GgmlTypes.Name(type)} take {bytes} bytes; the destination has {destination.Length}.", nameof(destination));
        }

        // ggml reads nrows * n_per_row floats and writes exactly `bytes`, both checked above.
        fixed (float* src = source)
        fixed (byte* dst = destination)
        {
            nuint written = GgmlNative.ggml_quantize_chunk((int)type, src, dst, 0, rows, rowLength, null);
            return checked((int)written);
        }
    }

    /// <summary>Converts ggml data of <paramref name="type"/> (whole blocks) to floats.</summary>
    /// <returns>The number of floats written.</returns>
    /// <exception cref="NotSupportedException">ggml has no conversion from <paramref name="type"/> to float.</exception>
    /// <exception cref="ArgumentException">The source is not whole blocks, or the destination is too small.</exception>
    public static int ToFloat(GgmlType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (!CanConvertToFloat(type))
        {
            throw new NotSupportedException($"ggml has no conversion from {type} to float.");
        }

        int typeSize = GgmlTypes.TypeSize(type);
        if (source.Length % typeSize != 0)
        {
            throw new ArgumentException($"{source.Length} bytes are not whole {GgmlTypes.Name(type)} blocks of {typeSize} bytes.", nameof(source));
        }

        long count = (long)source.Length / typeSize * GgmlTypes.BlockSize(type);
        if (destination.Length < count)
        {
            throw new ArgumentException($"The data holds {count} values; the destination has room for {destination.Length}.", nameof(destination));
        }

        // ggml_type_traits has no to_float for f32 itself.
        if (type == GgmlType.F32)
        {
            MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
            return (int)count;
        }

        var toFloat = GgmlNative.ggml_get_type_traits((int)type)->ToFloat;
        fixed (byte* src = source)
        fixed (float* dst = destination)
        {
            toFloat(src, dst, count);
        }

        return (int)count;
    }
}
