using System.Text.Json;

namespace LlmPq.Grammar;

/// <summary>
/// GBNF grammars for <see cref="Microsoft.Extensions.AI.ChatOptions.ResponseFormat"/>: any JSON object, or the JSON a
/// JSON Schema describes. A port of llama.cpp's own converter (<c>common/json-schema.cpp</c> and
/// <c>common/json-schema-to-grammar.cpp</c>), so that the grammars, rule names included, are the ones llama-server uses.
/// </summary>
/// <remarks>
/// <para>
/// Supported: <c>type</c> (a name or an array of names), <c>nullable</c> (OpenAPI), <c>enum</c>, <c>const</c>,
/// <c>anyOf</c> and <c>oneOf</c> (both as "any of"), <c>allOf</c> (the union of the objects' properties, or the
/// intersection of enums), <c>$ref</c> to a JSON pointer into the same document (<c>#</c>, <c>#/$defs/...</c>,
/// <c>#/definitions/...</c>, ...), recursion included; for objects <c>properties</c> (in schema order),
/// <c>required</c>, <c>additionalProperties</c> (absent or <see langword="false"/> allows no other property when
/// <c>properties</c> is given, a schema or <see langword="true"/> allows other keys); for arrays <c>items</c>
/// (a schema, or an array for a tuple), <c>prefixItems</c>, <c>minItems</c>, <c>maxItems</c>; for strings
/// <c>minLength</c>, <c>maxLength</c> and the formats <c>date</c>, <c>time</c>, <c>date-time</c>, <c>uuid</c>;
/// for integers <c>minimum</c>, <c>maximum</c>, <c>exclusiveMinimum</c>, <c>exclusiveMaximum</c>.
/// </para>
/// <para>
/// Not converted: <c>pattern</c>; <see cref="FromSchema(JsonElement, out string?)"/> says where it stands, so that a caller can hand such a schema to
/// llama.cpp's own converter, which turns the regular expression into rules (or refuses it, saying why).
/// Ignored, so the grammar allows more than the schema: other formats, bounds on <c>number</c>, <c>multipleOf</c>, <c>uniqueItems</c>, <c>contains</c>,
/// <c>minProperties</c>/<c>maxProperties</c>, <c>patternProperties</c>, <c>propertyNames</c>, <c>dependent*</c>,
/// <c>if</c>/<c>then</c>/<c>else</c>, <c>not</c>, and the annotations (<c>title</c>, <c>description</c>,
/// <c>default</c>, <c>examples</c>, ...). As in llama.cpp, a schema with no type and no structural keyword allows
/// any JSON value, and the keys of <c>additionalProperties</c> exclude the declared names only roughly.
/// </para>
/// <para>
/// Departures from llama.cpp, where its grammar is wrong: an integer <c>minimum</c> with zeros after its first digit
/// (101 admitted 11) and a negative <c>maximum</c> (-5 admitted "-04") get exact ranges; a top-level property named
/// "" no longer takes the <c>root</c> rule; the excluded names of <c>additionalProperties</c> are matched as JSON
/// text with the character classes escaped. Additions: <c>nullable</c>, <c>$ref</c> <c>#</c>, and the boolean
/// schemas (<see langword="true"/> anywhere, <see langword="false"/> for a property, <c>items</c> or
/// <c>additionalProperties</c>).
/// </para>
/// <para>
/// Whitespace between tokens is bounded (at most two newlines and twenty spaces or tabs), so that a model
/// cannot spend its whole budget on it; the output never starts or ends with whitespace.
/// </para>
/// </remarks>
internal static partial class JsonGrammar
{
    /// <summary>Gets a grammar for any JSON object, the values in it unconstrained (llama.cpp's <c>{"type": "object"}</c>).</summary>
    public static string AnyJson { get; } = Convert(new ObjectNode([], new AnyNode()), new Dictionary<string, Node>());

    /// <summary>Converts a JSON Schema to a GBNF grammar whose start rule is <c>root</c>.</summary>
    /// <param name="schema">The schema: an object, or <see langword="true"/> for any JSON value.</param>
    /// <returns>The grammar, one rule a line, the rules sorted by name.</returns>
    /// <exception cref="ArgumentException">
    /// The schema is not an object or <see langword="true"/>, a <c>$ref</c> is not local or cannot be resolved, or a
    /// keyword llama.cpp reads has a value of the wrong kind; the message names the place in the schema.
    /// </exception>
    public static string FromSchema(JsonElement schema) => FromSchema(schema, out _);

    /// <summary>Converts a JSON Schema to a GBNF grammar, and says where it has a string <c>pattern</c> the grammar does not enforce.</summary>
    /// <param name="schema">The schema: an object, or <see langword="true"/> for any JSON value.</param>
    /// <param name="patternAt">The JSON pointer of the first pattern met (<c>#/properties/code/pattern</c>), or null when there is none.</param>
    /// <returns>The grammar, one rule a line, the rules sorted by name (any string where a pattern stands).</returns>
    /// <exception cref="ArgumentException">As for <see cref="FromSchema(JsonElement)"/>, and for a pattern not anchored with <c>^</c> and <c>$</c>.</exception>
    public static string FromSchema(JsonElement schema, out string? patternAt)
    {
        var parser = new SchemaParser(schema);
        Node root = parser.Build(schema, "#");
        patternAt = parser.PatternAt;
        return Convert(root, parser.Refs);
    }

    private static string Convert(Node root, IReadOnlyDictionary<string, Node> refs)
    {
        var converter = new Converter(refs);
        converter.Visit(root, "");
        return converter.Format();
    }
}
