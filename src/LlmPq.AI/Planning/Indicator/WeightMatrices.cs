using LlmPq.Gguf;

namespace LlmPq.Planning.Indicator;

/// <summary>Which tensors of a GGUF file are the layers' weight matrices, the ones a quantization type applies to.</summary>
internal static class WeightMatrices
{
    private const string WeightSuffix = ".weight";

    /// <summary>Gets the layers' weight matrices: tensors of <c>blk.N.</c>, named <c>*.weight</c>, of 2 or more dimensions, that llama.cpp quantizes.</summary>
    public static List<GgufTensorInfo> Of(GgufFile file) =>
        [.. file.Tensors.Where(t => t.Layer is not null && GgufModelReader.IsQuantized(t))];

    /// <summary>Gets the number of layers: <c>{arch}.block_count</c>, or one past the highest <c>blk.N</c> when that is more.</summary>
    public static int LayerCount(GgufFile file)
    {
        int fromTensors = file.Tensors.Select(t => t.Layer + 1 ?? 0).DefaultIfEmpty(0).Max();
        return file.Architecture is { } architecture && file.TryGetInteger(architecture + ".block_count", out long blocks) && blocks is > 0 and <= int.MaxValue
            ? Math.Max((int)blocks, fromTensors)
            : fromTensors;
    }

    /// <summary>Gets what a matrix does in its layer: its name between <c>blk.N.</c> and <c>.weight</c>, such as <c>ffn_down_exps</c>.</summary>
    public static string Role(GgufTensorInfo tensor)
    {
        string name = tensor.Name;
        int start = name.IndexOf('.', "blk.".Length) + 1;
        return name[start..^WeightSuffix.Length];
    }
}
