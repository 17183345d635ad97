using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// The weight types a plan chooses from, one per layer for all of its matrices, and the types of the token embedding
/// and the output matrix.
/// </summary>
/// <remarks>
/// Bits per weight come from ggml's block structs (<see cref="GgmlTypes.BitsPerWeight"/>): F16 16, Q8_0 8.5,
/// Q6_K 6.5625, Q5_K 5.5, Q4_K 4.5, Q3_K 3.4375, Q2_K 2.625. A type is offered to a layer only when every matrix's rows
/// are whole blocks of it (256 for the K-quants, 32 for Q8_0), so llama.cpp never substitutes a fallback type and the
/// quantized file has exactly the plan's types.
/// </remarks>
public static class PlanTypes
{
    /// <summary>Gets every candidate type, best quality first; Q2_K last.</summary>
    public static IReadOnlyList<GgmlType> All { get; } =
        [GgmlType.F16, GgmlType.Q8_0, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q4_K, GgmlType.Q3_K, GgmlType.Q2_K];

    /// <summary>
    /// Gets the default candidates: <see cref="All"/> without Q2_K, which loses too much (LLM-PQ dropped 2-bit for the
    /// same reason); ask for it explicitly.
    /// </summary>
    public static IReadOnlyList<GgmlType> Default { get; } = [.. All.Where(t => t != GgmlType.Q2_K)];

    /// <summary>Gets the candidates <paramref name="layer"/> can take.</summary>
    /// <param name="layer">A layer (or the output layer).</param>
    /// <param name="candidates">The candidates, best first; <see cref="Default"/> when null.</param>
    /// <returns>The candidates whose blocks divide every matrix row of the layer, in the given order.</returns>
    public static IReadOnlyList<GgmlType> Allowed(LayerSpec layer, IReadOnlyList<GgmlType>? candidates = null)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return [.. (candidates ?? Default).Where(layer.CanTake)];
    }

    /// <summary>
    /// Gets the type of the token embedding: Q8_0 when its rows allow, else F16. The embedding is only read one row per
    /// token, on the CPU, so its type costs memory, not time; Q8_0 halves it at a quality loss too small to plan around.
    /// A tied output layer uses the same type (it is the same tensor).
    /// </summary>
    /// <param name="model">The model.</param>
    /// <returns>The type.</returns>
    public static GgmlType EmbeddingType(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.TokenEmbedding.CanTake(GgmlType.Q8_0) ? GgmlType.Q8_0 : GgmlType.F16;
    }

    /// <summary>
    /// Gets the type of the output layer's matrix: the embedding's when tied, else Q8_0 when its rows allow, else F16.
    /// The output matrix is one of the model's largest and the most sensitive to quantization (llama.cpp's own presets
    /// keep it at Q6_K or better), so it gets no lower type than Q8_0 and is not a plan variable.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <returns>The type.</returns>
    public static GgmlType OutputType(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.OutputTied ? EmbeddingType(model) : model.Output.CanTake(GgmlType.Q8_0) ? GgmlType.Q8_0 : GgmlType.F16;
    }
}
