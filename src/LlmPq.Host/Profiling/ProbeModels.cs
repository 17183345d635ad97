using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Planning;

namespace LlmPq.Host.Profiling;

/// <summary>
/// The models a profile times: llama models of the profiled model's widths with <see cref="Short"/> and
/// <see cref="Long"/> layers, whose repeating layers are all of one type. The difference of their times is
/// <see cref="Long"/> − <see cref="Short"/> layers, with the embedding, the output head and the fixed cost of a
/// <c>llama_decode</c> call cancelled.
/// </summary>
internal static class ProbeModels
{
    /// <summary>The layers of the short model.</summary>
    public const int Short = 1;

    /// <summary>The layers of the long model: 8 layers' difference stands out of a stage server's round-trip jitter in decode (with 4, two profiles of one device differed by up to 4× in a type's decode time).</summary>
    public const int Long = 9;

    /// <summary>Gets the generated shape of <paramref name="model"/>'s layers (llama: attention and a gated feed-forward block).</summary>
    /// <param name="model">The profiled model.</param>
    /// <param name="layers">The layer count.</param>
    /// <returns>The options of the generated model.</returns>
    public static TinyLlamaModelOptions Shape(ModelSpec model, int layers) => new()
    {
        Layers = layers,
        EmbeddingLength = checked((int)model.EmbeddingLength),
        FeedForwardLength = checked((int)model.FeedForwardLength),
        HeadCount = model.HeadCount,
        KvHeadCount = model.KvHeadCount,
        ContextLength = (int)Math.Min(int.MaxValue, model.ContextLength),
    };

    /// <summary>
    /// Writes the F16 model of <paramref name="layers"/> layers, then a copy whose repeating layers' matrices are
    /// quantized to <paramref name="type"/> with ggml's own quantizer (the embedding and the output stay F16: they
    /// cancel out).
    /// </summary>
    /// <param name="model">The profiled model.</param>
    /// <param name="layers">The layer count.</param>
    /// <param name="type">The layers' type.</param>
    /// <param name="folder">Where to write.</param>
    /// <param name="output">The output head's type (F16 unless given: in the layer probes it cancels out).</param>
    /// <returns>The path of the model of that type.</returns>
    public static string Write(ModelSpec model, int layers, GgmlType type, string folder, GgmlType output = GgmlType.F16)
    {
        string f16 = Path.Combine(folder, $"probe-{layers}L-f16.gguf");
        if (!File.Exists(f16))
        {
            TinyLlamaModel.Write(f16, Shape(model, layers));
        }

        if (type == GgmlType.F16 && output == GgmlType.F16)
        {
            return f16;
        }

        string head = output == GgmlType.F16 ? string.Empty : $"-head-{GgmlTypes.Name(output)}";
        string path = Path.Combine(folder, $"probe-{layers}L-{GgmlTypes.Name(type)}{head}.gguf");
        GgufFile source = GgufReader.Read(f16);
        using GgufTensorData data = GgufTensorData.Open(f16, source);
        var writer = new GgufWriter();
        foreach (GgufMetadata entry in source.Metadata)
        {
            writer.AddMetadata(entry);
        }

        foreach (GgufTensorInfo tensor in source.Tensors)
        {
            bool matrix = tensor.Layer is not null && tensor.Shape.Count == 2;
            GgmlType target = matrix ? type : tensor.Name == "output.weight" ? output : tensor.Type;
            writer.AddTensor(tensor.Name, target, tensor.Shape, stream => Convert(data, tensor, target, stream));
        }

        writer.Write(path);
        return path;
    }

    // Row by row: F16 to float to the target type.
    private static void Convert(GgufTensorData data, GgufTensorInfo tensor, GgmlType target, Stream output)
    {
        int rowLength = (int)tensor.Shape[0];
        byte[] row = new byte[GgufTensorData.RowBytes(tensor)];
        float[] floats = new float[rowLength];
        byte[] converted = new byte[GgmlTypes.RowBytes(target, rowLength)];
        for (long r = 0; r < GgufTensorData.RowCount(tensor); r++)
        {
            data.ReadRows(tensor, r, row);
            if (target == tensor.Type)
            {
                output.Write(row);
                continue;
            }

            GgmlQuantizer.ToFloat(tensor.Type, row, floats);
            int written = GgmlQuantizer.Quantize(target, floats, rowLength, converted);
            output.Write(converted, 0, written);
        }
    }
}
