using LlmPq.Gguf;

namespace LlmPq.Planning.Indicator;

/// <summary>Which tensors of a GGUF file are the layers' weight matrices, the ones a quantization type applies to.</summary>
internal static class WeightMatrices
{
    private const string WeightSuffix = ".weight";

    // The names llama-quant.cpp's tensor_allows_quantization never quantizes, of those that occur inside blk.N.
    private static readonly string[] s_keptAsIs =
    [
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "attn_rel_b.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
        "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
    ];

    /// <summary>Gets the layers' weight matrices: tensors of <c>blk.N.</c>, named <c>*.weight</c>, of 2 or more dimensions, that llama.cpp quantizes.</summary>
    public static List<GgufTensorInfo> Of(GgufFile file) =>
        [.. file.Tensors.Where(t => t.Layer is not null && t.Name.EndsWith(WeightSuffix, StringComparison.Ordinal) && Dimensions(t) >= 2
            && !s_keptAsIs.Any(name => t.Name.Contains(name, StringComparison.Ordinal)))];

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

    // ggml_n_dims: trailing dimensions of 1 do not count.
    private static int Dimensions(GgufTensorInfo tensor)
    {
        int dims = tensor.Shape.Count;
        while (dims > 1 && tensor.Shape[dims - 1] == 1)
        {
            dims--;
        }

        return dims;
    }
}
