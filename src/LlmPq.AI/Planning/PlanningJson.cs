using System.Text.Json;
using System.Text.Json.Serialization;
using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// The JSON forms of the planning records (<see cref="ModelSpec"/>, <see cref="ClusterSpec"/>, <see cref="Workload"/>, …):
/// camelCase names, ggml type names such as <c>"q4_K"</c>, indented.
/// </summary>
public static class PlanningJson
{
    /// <summary>Gets the serializer options every planning record is written and read with.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = true,
            ReadCommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            NumberHandling = JsonNumberHandling.Strict,
        };
        options.Converters.Add(new GgmlTypeNameConverter());
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

/// <summary>Writes a <see cref="GgmlType"/> as ggml names it (<c>"q4_K"</c>) and reads any case of that name.</summary>
public sealed class GgmlTypeNameConverter : JsonConverter<GgmlType>
{
    /// <inheritdoc/>
    public override GgmlType Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? name = reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName ? reader.GetString() : null;
        return GgmlTypes.TryParse(name, out var type)
            ? type
            : throw new JsonException($"'{name ?? reader.TokenType.ToString()}' is not a ggml type name such as \"f16\", \"q8_0\" or \"q4_K\".");
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, GgmlType value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(GgmlTypes.Name(value));
    }

    /// <inheritdoc/>
    public override GgmlType ReadAsPropertyName(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        Read(ref reader, typeToConvert, options);

    /// <inheritdoc/>
    public override void WriteAsPropertyName(Utf8JsonWriter writer, GgmlType value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WritePropertyName(GgmlTypes.Name(value));
    }
}
