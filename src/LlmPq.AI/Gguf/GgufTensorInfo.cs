using System.Collections.ObjectModel;

namespace LlmPq.Gguf;

/// <summary>
/// One entry of a GGUF file's tensor table: where a tensor's data lies and what it holds.
/// </summary>
public sealed record GgufTensorInfo
{
    internal GgufTensorInfo(string name, GgmlType type, long[] shape, long offset, long elementCount, long bytes)
    {
        Name = name;
        Type = type;
        Shape = new ReadOnlyCollection<long>(shape);
        Offset = offset;
        ElementCount = elementCount;
        Bytes = bytes;
    }

    /// <summary>Gets the tensor's name, such as <c>blk.0.attn_q.weight</c>.</summary>
    public string Name { get; }

    /// <summary>Gets the element type.</summary>
    public GgmlType Type { get; }

    /// <summary>Gets the dimensions, the row length (ggml's <c>ne0</c>) first, as GGUF stores them.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Gets the offset of the tensor's data from the start of the data section (<see cref="GgufFile.DataOffset"/>).</summary>
    public long Offset { get; }

    /// <summary>Gets the number of elements.</summary>
    public long ElementCount { get; }

    /// <summary>Gets the size of the tensor's data in bytes.</summary>
    public long Bytes { get; }

    /// <summary>Gets the layer the tensor belongs to (the N of <c>blk.N.</c>), or null for tensors outside the layers.</summary>
    public int? Layer => GgufFile.LayerOf(Name);

    /// <inheritdoc/>
    public bool Equals(GgufTensorInfo? other) =>
        other is not null
        && Name == other.Name
        && Type == other.Type
        && Offset == other.Offset
        && Shape.SequenceEqual(other.Shape);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Type, Offset, Shape.Count);

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"Name = {Name}, Type = {Type}, Shape = [{string.Join(", ", Shape)}], Offset = {Offset}, Bytes = {Bytes}");
        return true;
    }
}
