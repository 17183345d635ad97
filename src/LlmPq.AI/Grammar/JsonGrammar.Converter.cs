using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LlmPq.Grammar;

// The conversion of the schema model to GBNF: llama.cpp's common_chat_schema_converter.
internal static partial class JsonGrammar
{
    private const string SpaceRule = """| " " | "\n"{1,2} [ \t]{0,20}""";

    // The escapes of the char primitive.
    private const string EscapeRule = """[\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})""";

    private static readonly Dictionary<string, (string Content, string[] Dependencies)> s_primitives = new(StringComparer.Ordinal)
    {
        ["boolean"] = ("""("true" | "false")""", []),
        ["decimal-part"] = ("[0-9]{1,16}", []),
        ["integral-part"] = ("[0] | [1-9] [0-9]{0,15}", []),
        ["number"] = ("""("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?""", ["integral-part", "decimal-part"]),
        ["integer"] = ("""("-"? integral-part)""", ["integral-part"]),
        ["value"] = ("object | array | string | number | boolean | null", ["object", "array", "string", "number", "boolean", "null"]),
        ["object"] = ("""
            "{" space ( string ":" space value ("," space string ":" space value)* )? space "}"
            """, ["string", "value"]),
        ["array"] = ("""
            "[" space ( value ("," space value)* )? space "]"
            """, ["value"]),
        ["uuid"] = ("""
            "\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\""
            """, []),
        ["char"] = ("""[^"\\\x7F\x00-\x1F] | """ + EscapeRule, []),
        ["string"] = ("""
            "\"" char* "\""
            """, ["char"]),
        ["null"] = ("\"null\"", []),
        ["date"] = ("""[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )""", []),
        ["time"] = ("""([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )""", []),
        ["date-time"] = ("""date "T" time""", ["date", "time"]),
        ["date-string"] = ("""
            "\"" date "\""
            """, ["date"]),
        ["time-string"] = ("""
            "\"" time "\""
            """, ["time"]),
        ["date-time-string"] = ("""
            "\"" date-time "\""
            """, ["date-time"]),
    };

    [GeneratedRegex("[^a-zA-Z0-9-]+")]
    private static partial Regex InvalidRuleCharacters();

    private static string Sanitize(string name) => InvalidRuleCharacters().Replace(name, "-");

    private static string Child(string name, string suffix) => name.Length == 0 ? suffix : $"{name}-{suffix}";

    private static string Join(IEnumerable<string> parts, string separator) => string.Join(separator, parts);

    /// <summary>A GBNF literal: only CR, LF, the quote and the backslash need escaping.</summary>
    private static string FormatLiteral(string literal)
    {
        var builder = new StringBuilder(literal.Length + 2).Append('"');
        foreach (char c in literal)
        {
            switch (c)
            {
                case '\r': builder.Append(@"\r"); break;
                case '\n': builder.Append(@"\n"); break;
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append(@"\\"); break;
                default: builder.Append(c); break;
            }
        }

        return builder.Append('"').ToString();
    }

    /// <summary>Compact JSON as nlohmann's dump() writes it: members in order, non-ASCII text as is.</summary>
    private static void WriteJson(StringBuilder builder, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                builder.Append('{');
                bool first = true;
                foreach (JsonProperty member in value.EnumerateObject())
                {
                    builder.Append(first ? "" : ",");
                    first = false;
                    WriteJsonString(builder, member.Name);
                    builder.Append(':');
                    WriteJson(builder, member.Value);
                }

                builder.Append('}');
                break;
            case JsonValueKind.Array:
                builder.Append('[');
                int index = 0;
                foreach (JsonElement item in value.EnumerateArray())
                {
                    builder.Append(index++ == 0 ? "" : ",");
                    WriteJson(builder, item);
                }

                builder.Append(']');
                break;
            case JsonValueKind.String:
                WriteJsonString(builder, value.GetString()!);
                break;
            default:
                // Numbers keep their text, so no precision is lost on the way.
                builder.Append(value.GetRawText());
                break;
        }
    }

    private static void WriteJsonString(StringBuilder builder, string text)
    {
        builder.Append('"');
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append(@"\\"); break;
                case '\b': builder.Append(@"\b"); break;
                case '\f': builder.Append(@"\f"); break;
                case '\n': builder.Append(@"\n"); break;
                case '\r': builder.Append(@"\r"); break;
                case '\t': builder.Append(@"\t"); break;
                case < ' ': builder.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"); break;
                default: builder.Append(c); break;
            }
        }

        builder.Append('"');
    }

    private static string ToJson(string text)
    {
        var builder = new StringBuilder();
        WriteJsonString(builder, text);
        return builder.ToString();
    }

    private static string ConstantRule(JsonElement value)
    {
        var builder = new StringBuilder();
        WriteJson(builder, value);
        return FormatLiteral(builder.ToString());
    }

    private static bool IsReserved(string name) => name == "root" || s_primitives.ContainsKey(name);

    /// <summary>
    /// Repeats <paramref name="item"/> <paramref name="min"/> to <paramref name="max"/> times (<see cref="int.MaxValue"/>
    /// for unbounded), the items separated by <paramref name="separator"/> when given.
    /// </summary>
    private static string BuildRepetition(string item, int min, int max, string separator = "")
    {
        bool hasMax = max != int.MaxValue;
        if (max == 0)
        {
            return "";
        }

        if (min == 0 && max == 1)
        {
            return item + "?";
        }

        if (separator.Length == 0)
        {
            return (min, hasMax) switch
            {
                (1, false) => item + "+",
                (0, false) => item + "*",
                _ => string.Create(CultureInfo.InvariantCulture, $"{item}{{{min},{(hasMax ? max.ToString(CultureInfo.InvariantCulture) : "")}}}"),
            };
        }

        string result = $"{item} {BuildRepetition($"({separator} {item})", min == 0 ? 0 : min - 1, hasMax ? max - 1 : max)}";
        return min == 0 ? $"({result})?" : result;
    }

    private sealed class Converter(IReadOnlyDictionary<string, Node> refs)
    {
        // Sorted as llama.cpp's std::map, so the output is the same text.
        private readonly SortedDictionary<string, string> _rules = new(StringComparer.Ordinal) { ["space"] = SpaceRule };
        private readonly HashSet<string> _refsBeingResolved = new(StringComparer.Ordinal);

        public string Format()
        {
            var builder = new StringBuilder();
            foreach ((string name, string rule) in _rules)
            {
                builder.Append(name).Append(" ::= ").Append(rule).Append('\n');
            }

            return builder.ToString();
        }

        public string Visit(Node node, string name)
        {
            // Reserved after sanitizing, so that a property like "integral part" cannot take a primitive's name.
            string ruleName = IsReserved(Sanitize(name)) ? name + "-" : name.Length == 0 ? "root" : name;
            string subName = name.Length == 0 ? "" : name + "-";
            switch (node)
            {
                case RefNode reference:
                    return AddRule(ruleName, ResolveRef(reference));
                case AnyOfNode anyOf:
                    return AddRule(ruleName, Join(anyOf.Children.Select((c, i) => Visit(c, name.Length == 0 ? $"alternative-{i}" : $"{name}-{i}")), " | "));
                case AllOfNode allOf:
                    return VisitAllOf(allOf, name, ruleName);
                case ConstNode constant:
                    return AddRule(ruleName, ConstantRule(constant.Value));
                case EnumNode values:
                    return AddRule(ruleName, $"({Join(values.Values.Select(ConstantRule), " | ")})");
                case ObjectNode { Properties.Count: 0, AdditionalProperties: AnyNode }:
                    return AddRule(ruleName, AddPrimitive("object"));
                case ObjectNode obj:
                    return AddRule(ruleName, BuildObjectRule(obj.Properties, obj.AdditionalProperties, name));
                case TupleNode tuple:
                    return AddRule(ruleName, $"\"[\" space {Join(tuple.Items.Select((item, i) => Visit(item, $"{subName}tuple-{i}")), " \",\" space ")} space \"]\"");
                case ArrayNode { Items: AnyNode, MinItems: 0, MaxItems: < 0 }:
                    return VisitPrimitive(ruleName, "array");
                case ArrayNode array:
                {
                    string item = Visit(array.Items, subName + "item");
                    int max = array.MaxItems < 0 ? int.MaxValue : array.MaxItems;
                    return AddRule(ruleName, $"\"[\" space {BuildRepetition(item, array.MinItems, max, "\",\" space")} space \"]\"");
                }

                case StringNode { Format: StringFormat.Uuid }:
                    return VisitPrimitive(ruleName, "uuid");
                case StringNode { Format: StringFormat.Date }:
                    return AddRule(ruleName, AddPrimitive("date-string"));
                case StringNode { Format: StringFormat.Time }:
                    return AddRule(ruleName, AddPrimitive("time-string"));
                case StringNode { Format: StringFormat.DateTime }:
                    return AddRule(ruleName, AddPrimitive("date-time-string"));
                case StringNode text when text.MinLength > 0 || text.MaxLength >= 0:
                {
                    string character = AddPrimitive("char");
                    int max = text.MaxLength < 0 ? int.MaxValue : text.MaxLength;
                    return AddRule(ruleName, $"\"\\\"\" {BuildRepetition(character, text.MinLength, max)} \"\\\"\"");
                }

                case StringNode:
                    return VisitPrimitive(ruleName, "string");
                case IntegerNode { Minimum: long.MinValue, Maximum: long.MaxValue }:
                    return VisitPrimitive(ruleName, "integer");
                case IntegerNode integer:
                {
                    var builder = new StringBuilder("(");
                    BuildMinMaxInt(integer.Minimum, integer.Maximum, builder);
                    return AddRule(ruleName, builder.Append(')').ToString());
                }

                case NumberNode:
                    return VisitPrimitive(ruleName, "number");
                case BooleanNode:
                    return VisitPrimitive(ruleName, "boolean");
                case NullNode:
                    return VisitPrimitive(ruleName, "null");
                default: // AnyNode
                    return AddRule(ruleName, AddPrimitive("value"));
            }
        }

        /// <summary>Adds a rule, suffixing its name with a number when another rule already has it.</summary>
        private string AddRule(string name, string rule)
        {
            string escaped = Sanitize(name);
            if (!_rules.TryGetValue(escaped, out string? existing) || existing == rule)
            {
                _rules[escaped] = rule;
                return escaped;
            }

            int i = 0;
            while (_rules.TryGetValue(Numbered(escaped, i), out string? other) && other != rule)
            {
                i++;
            }

            string key = Numbered(escaped, i);
            _rules[key] = rule;
            return key;
        }

        private static string Numbered(string name, int i) => name + i.ToString(CultureInfo.InvariantCulture);

        private string AddPrimitive(string primitive) => AddPrimitive(primitive, primitive);

        private string AddPrimitive(string name, string primitive)
        {
            (string content, string[] dependencies) = s_primitives[primitive];
            string added = AddRule(name, content);
            foreach (string dependency in dependencies)
            {
                if (!_rules.ContainsKey(dependency))
                {
                    AddPrimitive(dependency);
                }
            }

            return added;
        }

        private string VisitPrimitive(string ruleName, string primitive) => AddPrimitive(ruleName == "root" ? "root" : primitive, primitive);

        private string ResolveRef(RefNode reference)
        {
            string fragment = reference.Ref[(reference.Ref.IndexOf('#', StringComparison.Ordinal) + 1)..];
            string refName = "ref" + Sanitize(fragment);
            if (!_rules.ContainsKey(refName) && _refsBeingResolved.Add(reference.Ref))
            {
                refName = Visit(refs[reference.Ref], refName);
                _refsBeingResolved.Remove(reference.Ref);
            }

            return refName;
        }

        private string VisitAllOf(AllOfNode allOf, string name, string ruleName)
        {
            var required = new HashSet<string>(StringComparer.Ordinal);
            var properties = new List<Property>();
            var enumCounts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            void AddComponent(Node component, bool isRequired)
            {
                switch (component)
                {
                    case RefNode reference:
                        AddComponent(refs[reference.Ref], isRequired);
                        break;
                    case ObjectNode obj:
                        properties.AddRange(obj.Properties);
                        if (isRequired)
                        {
                            required.UnionWith(obj.Properties.Select(p => p.Name));
                        }

                        break;
                    case EnumNode values:
                        foreach (JsonElement value in values.Values)
                        {
                            string literal = ConstantRule(value);
                            enumCounts[literal] = enumCounts.GetValueOrDefault(literal) + 1;
                        }

                        break;
                }
            }

            foreach (Node child in allOf.Children)
            {
                if (child is AnyOfNode anyOf)
                {
                    foreach (Node alternative in anyOf.Children)
                    {
                        AddComponent(alternative, isRequired: false);
                    }
                }
                else
                {
                    AddComponent(child, isRequired: true);
                }
            }

            string[] intersection = [.. enumCounts.Where(e => e.Value == allOf.Children.Count).Select(e => e.Key)];
            if (intersection.Length > 0)
            {
                return AddRule(ruleName, $"({Join(intersection, " | ")})");
            }

            return AddRule(ruleName, BuildObjectRule([.. properties.Select(p => p with { Required = required.Contains(p.Name) })], null, name));
        }

        private string BuildObjectRule(IReadOnlyList<Property> properties, Node? additionalProperties, string name)
        {
            var requiredKvs = new List<string>();
            var optional = new List<(string Key, string Kv, bool IsAdditional)>();
            foreach (Property property in properties)
            {
                // llama.cpp would name the value of a top-level "" property "root"; "-" keeps the real root.
                string propertyName = Child(name, property.Name);
                string valueRule = Visit(property.Schema, propertyName.Length == 0 ? "-" : propertyName);
                string kv = AddRule($"{propertyName}-kv", $"{FormatLiteral(ToJson(property.Name))} space \":\" space {valueRule}");
                if (property.Required)
                {
                    requiredKvs.Add(kv);
                }
                else
                {
                    optional.Add((property.Name, kv, false));
                }
            }

            if (additionalProperties is not null)
            {
                string additionalName = Child(name, "additional");
                string valueRule = additionalProperties is AnyNode ? AddPrimitive("value") : Visit(additionalProperties, $"{additionalName}-value");
                string keyRule = properties.Count == 0
                    ? AddPrimitive("string")
                    : AddRule($"{additionalName}-k", NotStrings(properties.Select(p => p.Name)));
                optional.Add(("*", AddRule($"{additionalName}-kv", $"{keyRule} \":\" space {valueRule}"), true));
            }

            if (requiredKvs.Count == 0 && optional.Count == 0)
            {
                return "\"{\" space \"}\"";
            }

            var rule = new StringBuilder("\"{\" space ").Append(Join(requiredKvs, " \",\" space "));
            if (optional.Count > 0)
            {
                rule.Append(" (");
                if (requiredKvs.Count > 0)
                {
                    rule.Append(" \",\" space ( ");
                }

                // Optional properties stay in schema order: each alternative starts at one of them and may add any later ones.
                string RecursiveRefs(int start, bool firstIsOptional)
                {
                    (string key, string kv, bool isAdditional) = optional[start];
                    string commaRef = $"( \",\" space {kv} )";
                    string result = firstIsOptional
                        ? commaRef + (isAdditional ? "*" : "?")
                        : kv + (isAdditional ? $" {commaRef}*" : "");
                    if (start + 1 < optional.Count)
                    {
                        result += " " + AddRule($"{Child(name, key)}-rest", RecursiveRefs(start + 1, firstIsOptional: true));
                    }

                    return result;
                }

                rule.Append(Join(Enumerable.Range(0, optional.Count).Select(i => RecursiveRefs(i, firstIsOptional: false)), " | "));
                if (requiredKvs.Count > 0)
                {
                    rule.Append(" )");
                }

                rule.Append(" )?");
            }

            return rule.Append(" space \"}\"").ToString();
        }

        /// <summary>
        /// A JSON string that is none of <paramref name="strings"/>, from a trie of them: for <c>"a"</c>,
        /// <c>["] ( [a] char+ | ([^"\\a] | escape) char* )? ["]</c>. Unlike llama.cpp the trie holds their JSON
        /// characters (a character or a whole escape), so that a name with a quote or a control character is matched as
        /// the model writes it, and where a key leaves the trie it goes on with a whole character, never a lone
        /// backslash (llama.cpp's <c>[^"a]</c> lets <c>\q</c> through).
        /// </summary>
        private string NotStrings(IEnumerable<string> strings)
        {
            var trie = new TrieNode();
            foreach (string text in strings)
            {
                TrieNode node = trie;
                foreach (string unit in JsonCharacters(text))
                {
                    node = node.Children.TryGetValue(unit, out TrieNode? child) ? child : node.Children[unit] = new TrieNode();
                }

                node.IsEnd = true;
            }

            string character = AddPrimitive("char");
            var builder = new StringBuilder("[\"] ( ");
            void VisitTrie(TrieNode node)
            {
                var rejects = new StringBuilder();
                bool escapes = false;
                bool first = true;
                foreach ((string unit, TrieNode child) in node.Children)
                {
                    builder.Append(first ? "" : " | ");
                    first = false;
                    if (unit[0] == '\\')
                    {
                        escapes = true;
                        builder.Append(FormatLiteral(unit));
                    }
                    else
                    {
                        // Escaped, unlike llama.cpp, so that a name with "]", "-" or "^" keeps the class well-formed.
                        string c = ClassCharacter(unit);
                        rejects.Append(c);
                        builder.Append('[').Append(c).Append(']');
                    }

                    if (child.Children.Count > 0)
                    {
                        builder.Append(" (");
                        VisitTrie(child);
                        builder.Append(')');
                    }
                    else
                    {
                        builder.Append(' ').Append(character).Append('+');
                    }
                }

                if (node.Children.Count > 0)
                {
                    // A key that leaves the trie at an escape is refused when a name has an escape there: rare, and safe.
                    string other = $"[^\"\\\\{rejects}]";
                    builder.Append(" | ").Append(escapes ? other : $"({other} | {EscapeRule})").Append(' ').Append(character).Append('*');
                }
            }

            VisitTrie(trie);
            return builder.Append(" )").Append(trie.IsEnd ? "" : "?").Append(" [\"]").ToString();
        }

        /// <summary>The characters of <paramref name="text"/> as JSON writes them: one character, or one escape.</summary>
        private static IEnumerable<string> JsonCharacters(string text)
        {
            string json = ToJson(text);
            for (int i = 1; i < json.Length - 1;)
            {
                int length = json[i] == '\\' ? (json[i + 1] == 'u' ? 6 : 2) : char.IsHighSurrogate(json[i]) ? 2 : 1;
                yield return json.Substring(i, length);
                i += length;
            }
        }

        private static string ClassCharacter(string unit) => unit switch
        {
            "]" or "-" => $"\\{unit}",
            "^" => @"\x5E",
            _ => unit,
        };

        private sealed class TrieNode
        {
            // Ordinal: by code point, as llama.cpp, but for characters beyond the BMP.
            public SortedDictionary<string, TrieNode> Children { get; } = new(StringComparer.Ordinal);

            public bool IsEnd { get; set; }
        }
    }
}
