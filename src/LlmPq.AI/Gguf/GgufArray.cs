using System.Collections;
using System.Collections.ObjectModel;

namespace LlmPq.Gguf;

/// <summary>
/// An immutable GGUF metadata array: values of one <see cref="GgufValueType"/>, kept in a typed CLR array
/// (a tokenizer's 32000 tokens are one <see cref="string"/> array, its scores one <see cref="float"/> array).
/// </summary>
public sealed class GgufArray : IEquatable<GgufArray>
{
    private readonly Array _values;

    private GgufArray(GgufValueType elementType, Array values)
    {
        ElementType = elementType;
        _values = values;
    }

    /// <summary>Gets the type of the elements; <see cref="GgufValueType.Array"/> for an array of arrays.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>Gets the number of elements.</summary>
    public int Count => _values.Length;

    /// <summary>Creates an array from a copy of <paramref name="values"/>.</summary>
    /// <typeparam name="T">
    /// The CLR type of a GGUF value: <see cref="byte"/>, <see cref="sbyte"/>, <see cref="ushort"/>, <see cref="short"/>,
    /// <see cref="uint"/>, <see cref="int"/>, <see cref="float"/>, <see cref="bool"/>, <see cref="string"/>,
    /// <see cref="ulong"/>, <see cref="long"/>, <see cref="double"/>, or <see cref="GgufArray"/> for nested arrays.
    /// </typeparam>
    /// <param name="values">The values; strings and nested arrays must not be <see langword="null"/>.</param>
    /// <returns>The array.</returns>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not a GGUF value type, or an element is null.</exception>
    public static GgufArray Create<T>(IEnumerable<T> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var type = GgufMetadata.ValueTypeOf(typeof(T))
            ?? throw new ArgumentException($"{typeof(T).Name} is not a GGUF value type.", nameof(values));
        var array = values.ToArray();
        if (!typeof(T).IsValueType && Array.IndexOf(array, default) >= 0)
        {
            throw new ArgumentException("A GGUF array holds no null element.", nameof(values));
        }

        return new GgufArray(type, array);
    }

    /// <summary>Gets the elements as a read-only list of <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">The CLR type of the elements (see <see cref="Create{T}(IEnumerable{T})"/>).</typeparam>
    /// <returns>A read-only view of the elements; no copy.</returns>
    /// <exception cref="InvalidCastException">The elements are not of type <typeparamref name="T"/>.</exception>
    public IReadOnlyList<T> As<T>() =>
        Holds<T>()
            ? new ReadOnlyCollection<T>((T[])_values)
            : throw new InvalidCastException($"The GGUF array holds {ElementType} values, not {typeof(T).Name}.");

    /// <inheritdoc/>
    public bool Equals(GgufArray? other) =>
        other is not null
        && ElementType == other.ElementType
        && StructuralComparisons.StructuralEqualityComparer.Equals(_values, other._values);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as GgufArray);

    /// <inheritdoc/>
    public override int GetHashCode() =>
        HashCode.Combine(ElementType, StructuralComparisons.StructuralEqualityComparer.GetHashCode(_values));

    /// <inheritdoc/>
    public override string ToString() => $"{ElementType}[{Count}]";

    /// <summary>Wraps an array the reader made, without copying it.</summary>
    internal static GgufArray Wrap(GgufValueType elementType, Array values) => new(elementType, values);

    /// <summary>Gets whether the elements are of type <typeparamref name="T"/>.</summary>
    /// <remarks>Exact: the runtime lets an int[] pass as a uint[], and <c>is</c> would too.</remarks>
    internal bool Holds<T>() => _values.GetType() == typeof(T[]);

    /// <summary>Gets the elements for the writer, without copying them.</summary>
    internal Array Values => _values;
}
