using System.Globalization;
using System.Text.Json;

namespace LlmPq.Grammar;

// The schema model and its parser: llama.cpp's common_chat_schema and common_chat_schema_from_json.
internal static partial class JsonGrammar
{
    private enum StringFormat
    {
        None,
        Uuid,
        Date,
        Time,
        DateTime,
    }

    private abstract record Node;

    private sealed record AnyNode : Node;

    private sealed record RefNode(string Ref) : Node;

    private sealed record AnyOfNode(IReadOnlyList<Node> Children) : Node;

    private sealed record AllOfNode(IReadOnlyList<Node> Children) : Node;

    private sealed record ConstNode(JsonElement Value) : Node;

    private sealed record EnumNode(IReadOnlyList<JsonElement> Values) : Node;

    private sealed record NullNode : Node;

    private sealed record BooleanNode : Node;

    private sealed record NumberNode : Node;

    /// <summary>Inclusive bounds; <see cref="long.MinValue"/> and <see cref="long.MaxValue"/> for none.</summary>
    private sealed record IntegerNode(long Minimum, long Maximum) : Node;

    /// <summary>A string; <paramref name="MaxLength"/> is -1 for unbounded.</summary>
    private sealed record StringNode(StringFormat Format, int MinLength, int MaxLength) : Node;

    /// <summary>An array of like items; <paramref name="MaxItems"/> is -1 for unbounded.</summary>
    private sealed record ArrayNode(Node Items, int MinItems, int MaxItems) : Node;

    private sealed record TupleNode(IReadOnlyList<Node> Items) : Node;

    /// <summary>An object; <paramref name="AdditionalProperties"/> is null when no other property is allowed.</summary>
    private sealed record ObjectNode(IReadOnlyList<Property> Properties, Node? AdditionalProperties) : Node;

    private sealed record Property(string Name, Node Schema, bool Required);

    private sealed class SchemaParser(JsonElement root)
    {
        private readonly Dictionary<string, Node?> _refs = new(StringComparer.Ordinal);

        /// <summary>Gets the targets of the <c>$ref</c>s met, by reference; complete once <see cref="Build"/> returned.</summary>
        public IReadOnlyDictionary<string, Node> Refs => _refs.ToDictionary(e => e.Key, e => e.Value!, StringComparer.Ordinal);

        /// <summary>Gets the place of the first string <c>pattern</c> met, which this converter does not enforce; null when none.</summary>
        public string? PatternAt { get; private set; }

        public Node Build(JsonElement schema, string path)
        {
            switch (schema.ValueKind)
            {
                case JsonValueKind.True:
                    return new AnyNode();
                case JsonValueKind.False:
                    throw Fail(path, "the schema false allows no value");
                case JsonValueKind.Object:
                    break;
                default:
                    throw Fail(path, $"a schema must be an object or a boolean, not {schema.ValueKind}");
            }

            // OpenAPI's nullable, which llama.cpp does not know, is an alternative of its own.
            if (schema.TryGetProperty("nullable", out JsonElement nullable) && nullable.ValueKind == JsonValueKind.True)
            {
                return new AnyOfNode([BuildKeywords(schema, path, type: null), new NullNode()]);
            }

            return BuildKeywords(schema, path, type: null);
        }

        private static ArgumentException Fail(string path, string message) =>
            new($"JSON schema error at {path}: {message}.");

        private static int GetCount(JsonElement schema, string key, string path, int absent)
        {
            if (!schema.TryGetProperty(key, out JsonElement value))
            {
                return absent;
            }

            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int count) || count < 0)
            {
                throw Fail(path, $"{key} must be a non-negative integer");
            }

            return count;
        }

        // A fractional bound is rounded inwards, towards the integers it still admits.
        private static long GetBound(JsonElement value, string key, string path, bool roundUp)
        {
            if (value.ValueKind != JsonValueKind.Number)
            {
                throw Fail(path, $"{key} must be a number");
            }

            if (value.TryGetInt64(out long bound))
            {
                return bound;
            }

            double d = value.GetDouble();
            return (long)(roundUp ? Math.Ceiling(d) : Math.Floor(d));
        }

        private static StringFormat GetFormat(JsonElement schema, string path)
        {
            if (!schema.TryGetProperty("format", out JsonElement value))
            {
                return StringFormat.None;
            }

            if (value.ValueKind != JsonValueKind.String)
            {
                throw Fail(path, "format must be a string");
            }

            return value.GetString() switch
            {
                "date" => StringFormat.Date,
                "time" => StringFormat.Time,
                "date-time" => StringFormat.DateTime,
                "uuid" or "uuid1" or "uuid2" or "uuid3" or "uuid4" or "uuid5" => StringFormat.Uuid,
                _ => StringFormat.None,
            };
        }

        private static bool Has(JsonElement schema, string key) => schema.TryGetProperty(key, out _);

        private JsonElement Resolve(string reference, string path)
        {
            JsonElement target = root;
            foreach (string token in reference.Split('/').Skip(1))
            {
                // RFC 6901 escapes.
                string selector = token.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (target.ValueKind == JsonValueKind.Object && target.TryGetProperty(selector, out JsonElement child))
                {
                    target = child;
                }
                else if (target.ValueKind == JsonValueKind.Array && int.TryParse(selector, NumberStyles.None, CultureInfo.InvariantCulture, out int index) && index < target.GetArrayLength())
                {
                    target = target[index];
                }
                else
                {
                    throw Fail(path, $"cannot resolve $ref {reference}, {selector} is not found");
                }
            }

            return target;
        }

        private RefNode BuildRef(JsonElement value, string path)
        {
            if (value.ValueKind != JsonValueKind.String)
            {
                throw Fail(path, "$ref must be a string");
            }

            string reference = value.GetString()!;
            if (reference != "#" && !reference.StartsWith("#/", StringComparison.Ordinal))
            {
                throw Fail(path, $"unsupported $ref {reference}, only references into the same document (#/...) are supported");
            }

            if (!_refs.ContainsKey(reference))
            {
                // Reserved first, so that a cycle back to this $ref stops here.
                _refs[reference] = null;
                _refs[reference] = Build(Resolve(reference, path), reference);
            }

            return new RefNode(reference);
        }

        private List<Node> BuildAlternatives(JsonElement alternatives, string path)
        {
            if (alternatives.ValueKind != JsonValueKind.Array || alternatives.GetArrayLength() == 0)
            {
                throw Fail(path, "must be a non-empty array of schemas");
            }

            return [.. alternatives.EnumerateArray().Select((a, i) => Build(a, $"{path}/{i}"))];
        }

        /// <summary>Builds a schema object from its keywords; <paramref name="type"/>, when not null, stands in for its <c>type</c>.</summary>
        private Node BuildKeywords(JsonElement schema, string path, JsonElement? type)
        {
            if (schema.TryGetProperty("$ref", out JsonElement reference))
            {
                return BuildRef(reference, path);
            }

            if (schema.TryGetProperty("oneOf", out JsonElement alternatives) || schema.TryGetProperty("anyOf", out alternatives))
            {
                string key = Has(schema, "oneOf") ? "oneOf" : "anyOf";
                return new AnyOfNode(BuildAlternatives(alternatives, $"{path}/{key}"));
            }

            if (type is null && schema.TryGetProperty("type", out JsonElement declared))
            {
                type = declared;
            }

            if (type is { ValueKind: JsonValueKind.Array } types)
            {
                // {"type": ["a", "b"], ...} is {"anyOf": [{"type": "a", ...}, {"type": "b", ...}]}.
                if (types.GetArrayLength() == 0)
                {
                    throw Fail(path, "type must not be empty");
                }

                return new AnyOfNode([.. types.EnumerateArray().Select((t, i) => BuildKeywords(schema, $"{path}/type/{i}", t))]);
            }

            if (schema.TryGetProperty("const", out JsonElement constant))
            {
                return new ConstNode(constant);
            }

            if (schema.TryGetProperty("enum", out JsonElement values))
            {
                if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
                {
                    throw Fail(path, "enum must be a non-empty array");
                }

                return new EnumNode([.. values.EnumerateArray()]);
            }

            if (type is { ValueKind: not JsonValueKind.String })
            {
                throw Fail(path, "type must be a string or an array of strings");
            }

            string typeName = type?.GetString() ?? "";
            bool hasProperties = Has(schema, "properties")
                || (schema.TryGetProperty("additionalProperties", out JsonElement additional) && additional.ValueKind != JsonValueKind.True);
            switch (typeName)
            {
                // Without a type the structural keywords decide, in llama.cpp's order.
                case "" when hasProperties:
                    return BuildObject(schema, path);
                case "" when schema.TryGetProperty("allOf", out JsonElement all):
                    return new AllOfNode(BuildAlternatives(all, $"{path}/allOf"));
                case "" when Has(schema, "items") || Has(schema, "prefixItems"):
                    return BuildArray(schema, path);
                case "" when Has(schema, "pattern") || Has(schema, "minLength") || Has(schema, "maxLength") || GetFormat(schema, path) != StringFormat.None:
                    return BuildString(schema, path);
                case "":
                    return new AnyNode();
                case "object" when !hasProperties && schema.TryGetProperty("allOf", out JsonElement all):
                    return new AllOfNode(BuildAlternatives(all, $"{path}/allOf"));
                case "object":
                    return BuildObject(schema, path);
                case "string" when schema.TryGetProperty("allOf", out JsonElement all):
                    return new AllOfNode(BuildAlternatives(all, $"{path}/allOf"));
                case "string":
                    return BuildString(schema, path);
                case "array":
                    return BuildArray(schema, path);
                case "integer":
                    return BuildInteger(schema, path);
                case "number":
                    return new NumberNode();
                case "boolean":
                    return new BooleanNode();
                case "null":
                    return new NullNode();
                default:
                    throw Fail(path, $"unrecognized type {typeName}");
            }
        }

        private ObjectNode BuildObject(JsonElement schema, string path)
        {
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (schema.TryGetProperty("required", out JsonElement names) && names.ValueKind == JsonValueKind.Array)
            {
                required.UnionWith(names.EnumerateArray().Where(n => n.ValueKind == JsonValueKind.String).Select(n => n.GetString()!));
            }

            var properties = new List<Property>();
            bool declared = schema.TryGetProperty("properties", out JsonElement declaredProperties);
            if (declared)
            {
                if (declaredProperties.ValueKind != JsonValueKind.Object)
                {
                    throw Fail(path, "properties must be an object");
                }

                foreach (JsonProperty property in declaredProperties.EnumerateObject())
                {
                    string propertyPath = $"{path}/properties/{property.Name}";
                    bool isRequired = required.Contains(property.Name);

                    // {"x": false} forbids the property.
                    if (property.Value.ValueKind == JsonValueKind.False)
                    {
                        if (isRequired)
                        {
                            throw Fail(propertyPath, "a required property has the schema false");
                        }

                        continue;
                    }

                    properties.Add(new Property(property.Name, Build(property.Value, propertyPath), isRequired));
                }
            }

            Node? additional = null;
            if (schema.TryGetProperty("additionalProperties", out JsonElement additionalSchema))
            {
                additional = additionalSchema.ValueKind switch
                {
                    JsonValueKind.True => new AnyNode(),
                    JsonValueKind.False => null,
                    JsonValueKind.Object => Build(additionalSchema, $"{path}/additionalProperties"),
                    _ => throw Fail(path, "additionalProperties must be a boolean or a schema"),
                };
            }
            else if (!declared)
            {
                // {"type": "object"} on its own allows any object.
                additional = new AnyNode();
            }

            return new ObjectNode(properties, additional);
        }

        private Node BuildArray(JsonElement schema, string path)
        {
            // "items" wins over "prefixItems", as in llama.cpp, unless it is false: that only closes the tuple.
            string? key = schema.TryGetProperty("items", out JsonElement items) && items.ValueKind != JsonValueKind.False ? "items"
                : schema.TryGetProperty("prefixItems", out items) ? "prefixItems"
                : null;
            if (key is null)
            {
                return Has(schema, "items")
                    ? new TupleNode([])
                    : new ArrayNode(new AnyNode(), GetCount(schema, "minItems", path, 0), GetCount(schema, "maxItems", path, -1));
            }

            if (items.ValueKind == JsonValueKind.Array)
            {
                return new TupleNode([.. items.EnumerateArray().Select((item, i) => Build(item, $"{path}/{key}/{i}"))]);
            }

            return new ArrayNode(Build(items, $"{path}/{key}"), GetCount(schema, "minItems", path, 0), GetCount(schema, "maxItems", path, -1));
        }

        private StringNode BuildString(JsonElement schema, string path)
        {
            if (schema.TryGetProperty("pattern", out JsonElement pattern))
            {
                // llama.cpp converts only anchored patterns and lets any string through for others, warning on stderr alone.
                if (pattern.ValueKind != JsonValueKind.String)
                {
                    throw Fail($"{path}/pattern", "a pattern must be a string");
                }

                if (pattern.GetString() is not ['^', .., '$'])
                {
                    throw Fail($"{path}/pattern", $"the pattern {pattern} must start with '^' and end with '$' to be enforced (JSON Schema patterns match anywhere; write '^.*(...).*$' for that)");
                }

                PatternAt ??= $"{path}/pattern";
            }

            return new(GetFormat(schema, path), GetCount(schema, "minLength", path, 0), GetCount(schema, "maxLength", path, -1));
        }

        private static IntegerNode BuildInteger(JsonElement schema, string path)
        {
            long minimum = long.MinValue;
            long maximum = long.MaxValue;
            if (schema.TryGetProperty("minimum", out JsonElement bound))
            {
                minimum = GetBound(bound, "minimum", path, roundUp: true);
            }
            else if (schema.TryGetProperty("exclusiveMinimum", out bound))
            {
                minimum = GetBound(bound, "exclusiveMinimum", path, roundUp: false) + 1;
            }

            if (schema.TryGetProperty("maximum", out bound))
            {
                maximum = GetBound(bound, "maximum", path, roundUp: false);
            }
            else if (schema.TryGetProperty("exclusiveMaximum", out bound))
            {
                maximum = GetBound(bound, "exclusiveMaximum", path, roundUp: true) - 1;
            }

            if (minimum > maximum)
            {
                throw Fail(path, $"the minimum {minimum} is greater than the maximum {maximum}");
            }

            return new IntegerNode(minimum, maximum);
        }
    }
}
