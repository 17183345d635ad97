namespace LlmPq.Gguf;

/// <summary>
/// The block layout of each <see cref="GgmlType"/>, as ggml's <c>type_traits</c> table defines it.
/// </summary>
public static class GgmlTypes
{
    // Indexed by the type number; a null name marks a number ggml retired.
    private static readonly (string? Name, int BlockSize, int TypeSize)[] s_traits = BuildTraits();

    /// <summary>Gets the number of elements in one block of <paramref name="type"/>.</summary>
    /// <param name="type">The type.</param>
    /// <returns>1 for plain types, 32, 64, 128 or 256 for quantized ones.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static int BlockSize(GgmlType type) => Traits(type).BlockSize;

    /// <summary>Gets the number of bytes one block of <paramref name="type"/> takes.</summary>
    /// <param name="type">The type.</param>
    /// <returns>The size of ggml's block struct.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static int TypeSize(GgmlType type) => Traits(type).TypeSize;

    /// <summary>Gets ggml's name of <paramref name="type"/>, such as <c>f16</c>, <c>q8_0</c> or <c>q4_K</c>.</summary>
    /// <param name="type">The type.</param>
    /// <returns>The name <c>ggml_type_name</c> returns.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static string Name(GgmlType type) => Traits(type).Name!;

    /// <summary>Gets the average number of bits one element of <paramref name="type"/> takes, scales included.</summary>
    /// <param name="type">The type.</param>
    /// <returns>For example 16 for F16, 8.5 for Q8_0 and 4.5 for Q4_K.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static double BitsPerWeight(GgmlType type)
    {
        var traits = Traits(type);
        return traits.TypeSize * 8.0 / traits.BlockSize;
    }

    /// <summary>Finds the type that ggml names <paramref name="name"/>, ignoring case.</summary>
    /// <param name="name">A name such as <c>q4_k</c> or <c>F16</c>.</param>
    /// <param name="type">The type, when found.</param>
    /// <returns><see langword="true"/> when <paramref name="name"/> names a type.</returns>
    public static bool TryParse(string? name, out GgmlType type)
    {
        for (int i = 0; i < s_traits.Length; i++)
        {
            if (s_traits[i].Name is { } candidate && string.Equals(candidate, name, StringComparison.OrdinalIgnoreCase))
            {
                type = (GgmlType)i;
                return true;
            }
        }

        type = default;
        return false;
    }

    /// <summary>Gets the number of bytes one row of <paramref name="elementsInRow"/> elements takes.</summary>
    /// <param name="type">The type.</param>
    /// <param name="elementsInRow">The number of elements in the row (a tensor's first dimension).</param>
    /// <returns>The size of the row in bytes.</returns>
    /// <exception cref="ArgumentException">The row is not a whole number of blocks, or is negative.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static long RowBytes(GgmlType type, long elementsInRow)
    {
        var traits = Traits(type);
        if (elementsInRow < 0 || elementsInRow % traits.BlockSize != 0)
        {
            throw new ArgumentException(
                $"A row of {elementsInRow} elements is not a whole number of {Name(type)} blocks of {traits.BlockSize}.",
                nameof(elementsInRow));
        }

        long blocks = elementsInRow / traits.BlockSize;
        if (blocks > long.MaxValue / traits.TypeSize)
        {
            throw new ArgumentException($"A row of {elementsInRow} {Name(type)} elements does not fit in 2^63 bytes.", nameof(elementsInRow));
        }

        return blocks * traits.TypeSize;
    }

    /// <summary>Gets the number of bytes a tensor of <paramref name="shape"/> takes.</summary>
    /// <param name="type">The type.</param>
    /// <param name="shape">The dimensions, the row length first, as GGUF stores them; 1 to 4 of them.</param>
    /// <returns>The size of the tensor's data in bytes.</returns>
    /// <exception cref="ArgumentException">
    /// The shape has no dimension or more than 4, a negative dimension, a row that is not a whole number of blocks,
    /// or a size beyond 2^63 bytes.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static long TensorBytes(GgmlType type, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Count is < 1 or > MaxDimensions)
        {
            throw new ArgumentException($"A tensor has 1 to {MaxDimensions} dimensions, not {shape.Count}.", nameof(shape));
        }

        long bytes = RowBytes(type, shape[0]);
        for (int i = 1; i < shape.Count; i++)
        {
            long dim = shape[i];
            if (dim < 0)
            {
                throw new ArgumentException($"Dimension {i} is negative ({dim}).", nameof(shape));
            }

            if (dim != 0 && bytes > long.MaxValue / dim)
            {
                throw new ArgumentException($"A {Name(type)} tensor of shape [{string.Join(", ", shape)}] does not fit in 2^63 bytes.", nameof(shape));
            }

            bytes *= dim;
        }

        return bytes;
    }

    /// <summary>The most dimensions a ggml tensor has.</summary>
    internal const int MaxDimensions = 4;

    /// <summary>Gets whether <paramref name="value"/> numbers a type ggml still supports.</summary>
    internal static bool IsDefined(long value) => value >= 0 && value < s_traits.Length && s_traits[value].Name is not null;

    private static (string? Name, int BlockSize, int TypeSize) Traits(GgmlType type)
    {
        int index = (int)type;
        if (index < 0 || index >= s_traits.Length || s_traits[index].Name is null)
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a ggml type.");
        }

        return s_traits[index];
    }

    private static (string?, int, int)[] BuildTraits()
    {
        const int SuperBlock = 256;
        const int Half = 2;
        var traits = new (string?, int, int)[43];

        // Sizes are those of ggml-common.h's block structs.
        traits[(int)GgmlType.F32] = ("f32", 1, 4);
        traits[(int)GgmlType.F16] = ("f16", 1, Half);
        traits[(int)GgmlType.Q4_0] = ("q4_0", 32, Half + 16);
        traits[(int)GgmlType.Q4_1] = ("q4_1", 32, (2 * Half) + 16);
        traits[(int)GgmlType.Q5_0] = ("q5_0", 32, Half + 4 + 16);
        traits[(int)GgmlType.Q5_1] = ("q5_1", 32, (2 * Half) + 4 + 16);
        traits[(int)GgmlType.Q8_0] = ("q8_0", 32, Half + 32);
        traits[(int)GgmlType.Q8_1] = ("q8_1", 32, (2 * Half) + 32);
        traits[(int)GgmlType.Q2_K] = ("q2_K", SuperBlock, (2 * Half) + (SuperBlock / 16) + (SuperBlock / 4));
        traits[(int)GgmlType.Q3_K] = ("q3_K", SuperBlock, Half + (SuperBlock / 4) + (SuperBlock / 8) + 12);
        traits[(int)GgmlType.Q4_K] = ("q4_K", SuperBlock, (2 * Half) + 12 + (SuperBlock / 2));
        traits[(int)GgmlType.Q5_K] = ("q5_K", SuperBlock, (2 * Half) + 12 + (SuperBlock / 2) + (SuperBlock / 8));
        traits[(int)GgmlType.Q6_K] = ("q6_K", SuperBlock, Half + (SuperBlock / 16) + (3 * SuperBlock / 4));
        traits[(int)GgmlType.Q8_K] = ("q8_K", SuperBlock, 4 + SuperBlock + (SuperBlock / 16 * 2));
        traits[(int)GgmlType.IQ2_XXS] = ("iq2_xxs", SuperBlock, Half + (SuperBlock / 8 * 2));
        traits[(int)GgmlType.IQ2_XS] = ("iq2_xs", SuperBlock, Half + (SuperBlock / 8 * 2) + (SuperBlock / 32));
        traits[(int)GgmlType.IQ3_XXS] = ("iq3_xxs", SuperBlock, Half + (3 * (SuperBlock / 8)));
        traits[(int)GgmlType.IQ1_S] = ("iq1_s", SuperBlock, Half + (SuperBlock / 8) + (SuperBlock / 16));
        traits[(int)GgmlType.IQ4_NL] = ("iq4_nl", 32, Half + 16);
        traits[(int)GgmlType.IQ3_S] = ("iq3_s", SuperBlock, Half + (13 * (SuperBlock / 32)) + (SuperBlock / 64));
        traits[(int)GgmlType.IQ2_S] = ("iq2_s", SuperBlock, Half + (SuperBlock / 4) + (SuperBlock / 16));
        traits[(int)GgmlType.IQ4_XS] = ("iq4_xs", SuperBlock, Half + 2 + (SuperBlock / 64) + (SuperBlock / 2));
        traits[(int)GgmlType.I8] = ("i8", 1, 1);
        traits[(int)GgmlType.I16] = ("i16", 1, 2);
        traits[(int)GgmlType.I32] = ("i32", 1, 4);
        traits[(int)GgmlType.I64] = ("i64", 1, 8);
        traits[(int)GgmlType.F64] = ("f64", 1, 8);
        traits[(int)GgmlType.IQ1_M] = ("iq1_m", SuperBlock, (SuperBlock / 8) + (SuperBlock / 16) + (SuperBlock / 32));
        traits[(int)GgmlType.BF16] = ("bf16", 1, 2);
        traits[(int)GgmlType.TQ1_0] = ("tq1_0", SuperBlock, ((SuperBlock - (4 * SuperBlock / 64)) / 5) + (SuperBlock / 64) + Half);
        traits[(int)GgmlType.TQ2_0] = ("tq2_0", SuperBlock, (SuperBlock / 4) + Half);
        traits[(int)GgmlType.MXFP4] = ("mxfp4", 32, 1 + 16);
        traits[(int)GgmlType.NVFP4] = ("nvfp4", 64, (64 / 16) + (64 / 2));
        traits[(int)GgmlType.Q1_0] = ("q1_0", 128, Half + (128 / 8));
        traits[(int)GgmlType.Q2_0] = ("q2_0", 64, Half + (64 / 4));
        return traits;
    }
}
