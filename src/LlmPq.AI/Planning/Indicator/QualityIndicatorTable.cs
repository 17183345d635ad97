using System.Text.Json;
using System.Text.Json.Serialization;
using LlmPq.Gguf;

namespace LlmPq.Planning.Indicator;

/// <summary>
/// The quality indicator ω of a model: for every layer and every candidate type, the cost of storing that layer's
/// weights in that type (larger is worse, 0 is lossless), as <see cref="QualityIndicator"/> computes it.
/// </summary>
/// <remarks>
/// The values of one table compare with each other (the planner weighs their sum by θ); values of two tables made
/// by different methods or from different models do not.
/// </remarks>
public sealed record QualityIndicatorTable
{
    /// <summary>Gets the candidate types, the columns of <see cref="Omega"/>.</summary>
    public required IReadOnlyList<GgmlType> Types { get; init; }

    /// <summary>
    /// Gets ω indexed [layer][index of the type in <see cref="Types"/>]: a finite value ≥ 0, or null where the layer
    /// cannot take the type (a row of one of its matrices is not a whole number of the type's blocks).
    /// </summary>
    public required IReadOnlyList<IReadOnlyList<double?>> Omega { get; init; }

    /// <summary>Gets how the values were made: <see cref="QualityIndicator.WeightsMethod"/> or <see cref="QualityIndicator.FallbackMethod"/>.</summary>
    public required string Method { get; init; }

    /// <summary>
    /// Gets the most rows of each matrix that were quantized (evenly spaced, their error scaled to all rows),
    /// or null when no weights were read.
    /// </summary>
    public int? MaxRowsPerMatrix { get; init; }

    /// <summary>Gets the number of layers.</summary>
    [JsonIgnore]
    public int LayerCount => Omega.Count;

    /// <summary>Gets ω of one layer at one type.</summary>
    /// <param name="layer">The layer index.</param>
    /// <param name="type">A type of <see cref="Types"/>.</param>
    /// <returns>The value, or null when the layer cannot take <paramref name="type"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">There is no such layer, or <paramref name="type"/> is not a column.</exception>
    public double? Get(int layer, GgmlType type)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, LayerCount);
        int column = IndexOf(type);
        return column >= 0
            ? Omega[layer][column]
            : throw new ArgumentOutOfRangeException(nameof(type), type, "The table has no column for this type.");
    }

    /// <summary>Writes the table as JSON (<see cref="PlanningJson.Options"/>; types by ggml name, null where not applicable).</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, PlanningJson.Options);

    /// <summary>Reads a table that <see cref="ToJson"/> wrote.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The table.</returns>
    /// <exception cref="JsonException">The text is not such a table, or its values are not all ≥ 0 and one per type.</exception>
    public static QualityIndicatorTable FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var table = JsonSerializer.Deserialize<QualityIndicatorTable>(json, PlanningJson.Options)
            ?? throw new JsonException("The JSON is null, not a quality indicator table.");
        table.Validate();
        return table;
    }

    private int IndexOf(GgmlType type)
    {
        for (int i = 0; i < Types.Count; i++)
        {
            if (Types[i] == type)
            {
                return i;
            }
        }

        return -1;
    }

    private void Validate()
    {
        // The serializer leaves a member null when the JSON says null.
        if (Types is null || Omega is null || Method is null)
        {
            throw new JsonException("The table lacks its types, values or method.");
        }

        if (Types.Distinct().Count() != Types.Count)
        {
            throw new JsonException("The table names a type twice.");
        }

        for (int layer = 0; layer < Omega.Count; layer++)
        {
            var row = Omega[layer] ?? throw new JsonException($"Layer {layer} has no values.");
            if (row.Count != Types.Count)
            {
                throw new JsonException($"Layer {layer} has {row.Count} values for {Types.Count} types.");
            }

            if (row.Any(value => value is double v && !(v >= 0 && double.IsFinite(v))))
            {
                throw new JsonException($"Layer {layer} has a value that is not a finite number ≥ 0.");
            }
        }
    }
}
