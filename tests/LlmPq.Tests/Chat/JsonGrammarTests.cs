using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Native;

namespace LlmPq.Tests.Chat;

/// <summary>JSON Schema to GBNF: llama.cpp's own expectations, its grammar parser, and generation under the grammars.</summary>
[Collection(NativeTests.Name)]
public sealed partial class JsonGrammarTests
{
    private const int MaxTokens = 256;

    // Greedy, then three seeded draws at temperature 1.
    private static readonly SamplingSettings[] s_samplings =
    [
        new() { Temperature = 0 },
        new() { Temperature = 1, Seed = 1 },
        new() { Temperature = 1, Seed = 2 },
        new() { Temperature = 1, Seed = 3 },
    ];

    /// <summary>Gets cases of llama.cpp's tests/test-json-schema-to-grammar.cpp (pinned source): name, schema, grammar.</summary>
    public static TheoryData<string, string, string> LlamaCppCases => new()
    {
        {
            "min 0",
            """"{"type": "integer", "minimum": 0}"""",
            """"
            root ::= ([0] | [1-9] [0-9]{0,15})
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min 25",
            """"{"type": "integer", "minimum": 25}"""",
            """"
            root ::= ([1] [0-9]{2,15} | [2] ([0-4] [0-9]{1,14} | [5-9] [0-9]{0,14}) | [3-9] [0-9]{1,15})
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "max 30",
            """"{"type": "integer", "maximum": 30}"""",
            """"
            root ::= ("-" [1-9] [0-9]{0,15} | [0-9] | ([1-2] [0-9] | [3] "0"))
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min -5",
            """"{"type": "integer", "minimum": -5}"""",
            """"
            root ::= ("-" ([0-5]) | [0] | [1-9] [0-9]{0,15})
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min -123",
            """"{"type": "integer", "minimum": -123}"""",
            """"
            root ::= ("-" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | "1" ([0-1] [0-9] | [2] [0-3])) | [0] | [1-9] [0-9]{0,15})
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "max -5",
            """"{"type": "integer", "maximum": -5}"""",
            """"
            root ::= ("-" ([0-4] [0-9]{1,15} | [5-9] [0-9]{0,15}))
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min 15 max 300",
            """"{"type": "integer", "minimum": 15, "maximum": 300}"""",
            """"
            root ::= (([1] ([5-9]) | [2-9] [0-9]) | ([1-2] [0-9]{2} | [3] "00"))
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min -10 max 10",
            """"{"type": "integer", "minimum": -10, "maximum": 10}"""",
            """"
            root ::= ("-" ([0-9] | "10") | [0-9] | "10")
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "empty schema (any value)",
            """"{}"""",
            """"
            array ::= "[" space ( value ("," space value)* )? space "]"
            boolean ::= ("true" | "false")
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            null ::= "null"
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? space "}"
            root ::= value
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            value ::= object | array | string | number | boolean | null
            """"
        },
        {
            "exotic formats",
            """"{"items": [{"format": "date"}, {"format": "uuid"}, {"format": "time"}, {"format": "date-time"}]}"""",
            """"
            date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )
            date-string ::= "\"" date "\""
            date-time ::= date "T" time
            date-time-string ::= "\"" date-time "\""
            root ::= "[" space tuple-0 "," space uuid "," space tuple-2 "," space tuple-3 space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            time ::= ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
            time-string ::= "\"" time "\""
            tuple-0 ::= date-string
            tuple-2 ::= time-string
            tuple-3 ::= date-time-string
            uuid ::= "\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\""
            """"
        },
        {
            "string w/ min & max length",
            """"{"type": "string", "minLength": 1, "maxLength": 4}"""",
            """"
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            root ::= "\"" char{1,4} "\""
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "integer",
            """"{"type": "integer"}"""",
            """"
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            root ::= ("-"? integral-part)
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "string const",
            """"{"const": "foo"}"""",
            """"
            root ::= "\"foo\""
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "non-string enum",
            """"{"enum": ["red", "amber", "green", null, 42, ["foo"]]}"""",
            """"
            root ::= ("\"red\"" | "\"amber\"" | "\"green\"" | "null" | "42" | "[\"foo\"]")
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "nullable string array",
            """"{"type": ["array", "null"], "prefixItems": {"type": "string"}}"""",
            """"
            alternative-0 ::= "[" space (string ("," space string)*)? space "]"
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            null ::= "null"
            root ::= alternative-0 | null
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "tuple2",
            """"{"prefixItems": [{"type": "string"}, {"type": "number"}]}"""",
            """"
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            root ::= "[" space string "," space number space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "minItems",
            """"{"items": {"type": "boolean"}, "minItems": 2}"""",
            """"
            boolean ::= ("true" | "false")
            root ::= "[" space boolean ("," space boolean)+ space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "maxItems 0",
            """"{"items": {"type": "boolean"}, "maxItems": 0}"""",
            """"
            boolean ::= ("true" | "false")
            root ::= "[" space  space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "maxItems 2",
            """"{"items": {"type": "boolean"}, "maxItems": 2}"""",
            """"
            boolean ::= ("true" | "false")
            root ::= "[" space (boolean ("," space boolean)?)? space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min + maxItems",
            """"{"items": {"type": ["number", "integer"]}, "minItems": 3, "maxItems": 5}"""",
            """"
            decimal-part ::= [0-9]{1,16}
            integer ::= ("-"? integral-part)
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            item ::= number | integer
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            root ::= "[" space item ("," space item){2,4} space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "min + max items with min + max values across zero",
            """"{"items": {"type": "integer", "minimum": -12, "maximum": 207}, "minItems": 3, "maxItems": 5}"""",
            """"
            item ::= ("-" ([0-9] | "1" [0-2]) | [0-9] | ([1-8] [0-9] | [9] [0-9]) | ([1] [0-9]{2} | [2] "0" [0-7]))
            root ::= "[" space item ("," space item){2,4} space "]"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "required props in original order",
            """"{"type": "object", "properties": {"b": {"type": "string"}, "c": {"type": "string"}, "a": {"type": "string"}}, "required": ["a", "b", "c"], "additionalProperties": false, "definitions": {}}"""",
            """"
            a-kv ::= "\"a\"" space ":" space string
            b-kv ::= "\"b\"" space ":" space string
            c-kv ::= "\"c\"" space ":" space string
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            root ::= "{" space b-kv "," space c-kv "," space a-kv space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "N optional props",
            """"{"properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}, "additionalProperties": false}"""",
            """"
            a-kv ::= "\"a\"" space ":" space string
            a-rest ::= ( "," space b-kv )? b-rest
            b-kv ::= "\"b\"" space ":" space string
            b-rest ::= ( "," space c-kv )?
            c-kv ::= "\"c\"" space ":" space string
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            root ::= "{" space  (a-kv a-rest | b-kv b-rest | c-kv )? space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "required + optional props each in original order",
            """"{"properties": {"b": {"type": "string"}, "a": {"type": "string"}, "d": {"type": "string"}, "c": {"type": "string"}}, "required": ["a", "b"], "additionalProperties": false}"""",
            """"
            a-kv ::= "\"a\"" space ":" space string
            b-kv ::= "\"b\"" space ":" space string
            c-kv ::= "\"c\"" space ":" space string
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            d-kv ::= "\"d\"" space ":" space string
            d-rest ::= ( "," space c-kv )?
            root ::= "{" space b-kv "," space a-kv ( "," space ( d-kv d-rest | c-kv ) )? space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "additional props",
            """"{"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"}}}"""",
            """"
            additional-kv ::= string ":" space additional-value
            additional-value ::= "[" space (number ("," space number)*)? space "]"
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            root ::= "{" space  (additional-kv ( "," space additional-kv )* )? space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "additional props (implicit)",
            """"{"type": "object"}"""",
            """"
            array ::= "[" space ( value ("," space value)* )? space "]"
            boolean ::= ("true" | "false")
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            null ::= "null"
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? space "}"
            root ::= object
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            value ::= object | array | string | number | boolean | null
            """"
        },
        {
            "empty w/o additional props",
            """"{"type": "object", "additionalProperties": false}"""",
            """"
            root ::= "{" space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "required + optional + additional props",
            """"{"type": "object", "properties": {"and": {"type": "number"}, "also": {"type": "number"}}, "required": ["and"], "additionalProperties": {"type": "number"}}"""",
            """"
            additional-k ::= ["] ( [a] ([l] ([s] ([o] char+ | [^"o] char*) | [^"s] char*) | [n] ([d] char+ | [^"d] char*) | [^"ln] char*) | [^"a] char* )? ["]
            additional-kv ::= additional-k ":" space number
            also-kv ::= "\"also\"" space ":" space number
            also-rest ::= ( "," space additional-kv )*
            and-kv ::= "\"and\"" space ":" space number
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            root ::= "{" space and-kv ( "," space ( also-kv also-rest | additional-kv ( "," space additional-kv )* ) )? space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "top-level $ref",
            """"{"$ref": "#/definitions/foo", "definitions": {"foo": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}}}"""",
            """"
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            ref-definitions-foo ::= "{" space ref-definitions-foo-a-kv space "}"
            ref-definitions-foo-a-kv ::= "\"a\"" space ":" space string
            root ::= ref-definitions-foo
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "anyOf",
            """"{"anyOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}], "definitions": {"foo": {"properties": {"a": {"type": "number"}}}, "bar": {"properties": {"b": {"type": "number"}}}}, "type": "object"}"""",
            """"
            alternative-0 ::= ref-definitions-foo
            alternative-1 ::= ref-definitions-bar
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            ref-definitions-bar ::= "{" space  (ref-definitions-bar-b-kv )? space "}"
            ref-definitions-bar-b-kv ::= "\"b\"" space ":" space number
            ref-definitions-foo ::= "{" space  (ref-definitions-foo-a-kv )? space "}"
            ref-definitions-foo-a-kv ::= "\"a\"" space ":" space number
            root ::= alternative-0 | alternative-1
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "anyOf $ref",
            """"{"properties": {"a": {"anyOf": [{"type": "string"}, {"type": "number"}]}, "b": {"anyOf": [{"$ref": "#/properties/a/anyOf/0"}, {"type": "boolean"}]}}, "type": "object"}"""",
            """"
            a ::= string | number
            a-kv ::= "\"a\"" space ":" space a
            a-rest ::= ( "," space b-kv )?
            b ::= b-0 | boolean
            b-0 ::= string
            b-kv ::= "\"b\"" space ":" space b
            boolean ::= ("true" | "false")
            char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            root ::= "{" space  (a-kv a-rest | b-kv )? space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            string ::= "\"" char* "\""
            """"
        },
        {
            "mix of allOf, anyOf and $ref (similar to https://json.schemastore.org/tsconfig.json)",
            """"{"allOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}, {"anyOf": [{"$ref": "#/definitions/baz"}, {"$ref": "#/definitions/bam"}]}], "definitions": {"foo": {"properties": {"a": {"type": "number"}}}, "bar": {"properties": {"b": {"type": "number"}}}, "bam": {"properties": {"c": {"type": "number"}}}, "baz": {"properties": {"d": {"type": "number"}}}}, "type": "object"}"""",
            """"
            a-kv ::= "\"a\"" space ":" space number
            b-kv ::= "\"b\"" space ":" space number
            c-kv ::= "\"c\"" space ":" space number
            d-kv ::= "\"d\"" space ":" space number
            d-rest ::= ( "," space c-kv )?
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            root ::= "{" space a-kv "," space b-kv ( "," space ( d-kv d-rest | c-kv ) )? space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "allOf with multiple enum schemas",
            """"{"allOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}], "definitions": {"foo": {"type": "string", "enum": ["a", "b", "c"]}, "bar": {"type": "string", "enum": ["b", "c", "d"]}}}"""",
            """"
            root ::= ("\"b\"" | "\"c\"")
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "conflicting names",
            """"{"type": "object", "properties": {"number": {"type": "object", "properties": {"number": {"type": "object", "properties": {"root": {"type": "number"}}, "required": ["root"], "additionalProperties": false}}, "required": ["number"], "additionalProperties": false}}, "required": ["number"], "additionalProperties": false, "definitions": {}}"""",
            """"
            decimal-part ::= [0-9]{1,16}
            integral-part ::= [0] | [1-9] [0-9]{0,15}
            number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?
            number- ::= "{" space number-number-kv space "}"
            number-kv ::= "\"number\"" space ":" space number-
            number-number ::= "{" space number-number-root-kv space "}"
            number-number-kv ::= "\"number\"" space ":" space number-number
            number-number-root-kv ::= "\"root\"" space ":" space number
            root ::= "{" space number-kv space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
        {
            "literal string with escapes",
            """"{"properties": {"code": {"const": " \r \n \" \\ ", "description": "Generated code", "title": "Code", "type": "string"}}, "required": ["code"], "title": "DecoderResponse", "type": "object"}"""",
            """"
            code ::= "\" \\r \\n \\\" \\\\ \""
            code-kv ::= "\"code\"" space ":" space code
            root ::= "{" space code-kv space "}"
            space ::= | " " | "\n"{1,2} [ \t]{0,20}
            """"
        },
    };

    /// <summary>Gets schemas that use each supported keyword, small enough for the random model to finish them.</summary>
    public static TheoryData<string> GeneratedSchemas => new(s_generatedSchemas);

    private static readonly string[] s_generatedSchemas =
    [
        // Property names with spaces, dashes, quotes and non-ASCII; enums with quotes, escapes and unicode; bounded strings.
        """
        {
          "type": "object",
          "properties": {
            "full name": { "type": "string", "minLength": 1, "maxLength": 6 },
            "is-member": { "type": "boolean" },
            "colour \"hue\"": { "enum": ["red", "blue \"navy\"", "日本語", "tab\there", 42, null] },
            "größe": { "type": "integer", "minimum": -5, "maximum": 120 },
            "nick": { "type": ["string", "null"], "maxLength": 4 },
            "kind": { "const": "person" },
            "ratio": { "type": "number" },
            "nothing": { "type": "null" }
          },
          "required": ["full name", "is-member", "colour \"hue\"", "größe", "nick", "kind"],
          "additionalProperties": false
        }
        """,

        // $defs and definitions refs, nested objects in bounded arrays, anyOf, optional properties.
        """
        {
          "$defs": { "point": { "type": "object", "properties": { "x": { "type": "integer", "minimum": 0, "maximum": 9 }, "y": { "$ref": "#/definitions/small" } }, "required": ["x", "y"] } },
          "definitions": { "small": { "type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 3 } },
          "type": "object",
          "properties": {
            "points": { "type": "array", "items": { "$ref": "#/$defs/point" }, "minItems": 1, "maxItems": 3 },
            "label": { "anyOf": [{ "type": "null" }, { "type": "string", "maxLength": 5 }] },
            "extra": { "type": "boolean" },
            "more": { "type": "array", "items": { "enum": ["a", "b"] }, "maxItems": 2 }
          },
          "required": ["points", "label"]
        }
        """,

        // The string formats.
        """
        {
          "type": "object",
          "properties": {
            "day": { "type": "string", "format": "date" },
            "at": { "type": "string", "format": "time" },
            "when": { "type": "string", "format": "date-time" },
            "id": { "type": "string", "format": "uuid" }
          },
          "required": ["day", "at", "when", "id"]
        }
        """,

        // Nested arrays, a closed tuple, oneOf, OpenAPI nullable, allOf.
        """
        {
          "type": "object",
          "properties": {
            "matrix": { "type": "array", "items": { "type": "array", "items": { "type": "boolean" }, "maxItems": 2 }, "minItems": 1, "maxItems": 2 },
            "pair": { "type": "array", "prefixItems": [{ "const": 1 }, { "enum": [null, "two"] }], "items": false },
            "status": { "oneOf": [{ "const": "ok" }, { "type": "integer", "minimum": 10, "maximum": 20 }] },
            "note": { "type": "string", "nullable": true, "minLength": 1, "maxLength": 3 },
            "both": { "allOf": [{ "$ref": "#/definitions/a" }, { "properties": { "b": { "type": "boolean" } } }] }
          },
          "required": ["matrix", "pair", "status", "note", "both"],
          "additionalProperties": false,
          "definitions": { "a": { "properties": { "a": { "enum": [1, 2, 3] } } } }
        }
        """,

        // Recursion through a $ref.
        """
        {
          "$ref": "#/$defs/node",
          "$defs": {
            "node": {
              "type": "object",
              "properties": { "v": { "type": "integer", "minimum": 0, "maximum": 9 }, "next": { "anyOf": [{ "$ref": "#/$defs/node" }, { "type": "null" }] } },
              "required": ["v", "next"],
              "additionalProperties": false
            }
          }
        }
        """,
    ];

    // Schemas whose grammars are only checked against llama.cpp's parser.
    private static readonly string[] s_parsedOnlySchemas =
    [
        """{ "type": "object", "properties": { "id": { "type": "integer" } }, "additionalProperties": { "type": "string" } }""",
        """{ "type": "object", "properties": { "a]b": {}, "c-d": {}, "^e": {}, "f\\g": {}, "h\"i": {}, "ü": {} }, "additionalProperties": true }""",
        """{ "type": "object", "properties": { "": { "type": "integer" }, "integral part": { "type": "object", "properties": { "n": { "type": "number" } } } } }""",
        """{ "type": "object", "properties": { "tree": { "$ref": "#" }, "value": { "type": "string", "maxLength": 2000 } } }""",
        """{ "type": "array", "items": { "type": "string", "minLength": 3 }, "minItems": 2, "maxItems": 40 }""",
        """{ "type": "integer", "minimum": 1.5, "maximum": 99999999999 }""",
        """{ "type": ["object", "array", "string", "number", "integer", "boolean", "null"] }""",
        """{ "properties": { "a": false, "b": { "type": "string", "pattern": "^[a-z]+$", "format": "email" } } }""",
        """true""",
    ];

    [Theory]
    [MemberData(nameof(LlamaCppCases))]
    public void The_grammar_is_the_one_llama_cpp_makes(string name, string schema, string expected)
    {
        string grammar = FromSchema(schema);
        Assert.True(Normalize(expected) == Normalize(grammar), $"{name}:\n{grammar}");
    }

    [Fact]
    public void Every_produced_grammar_is_accepted_by_llama_cpp()
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        IEnumerable<string> schemas = ((IEnumerable<object[]>)LlamaCppCases).Select(c => (string)c[1]).Concat(s_generatedSchemas).Concat(s_parsedOnlySchemas);
        foreach (string schema in schemas)
        {
            string grammar = FromSchema(schema);
            Assert.All(grammar.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.Matches(RuleLine(), l));
            using var sampler = new LlamaSampler(model, new SamplingSettings { Grammar = grammar });
        }

        using var any = new LlamaSampler(model, new SamplingSettings { Grammar = JsonGrammar.AnyJson });
    }

    [Fact]
    public void A_grammar_llama_cpp_cannot_parse_is_rejected()
    {
        // The acceptance checks above can fail: the binding reports a grammar llama.cpp refuses.
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        Assert.Throws<ArgumentException>(() => new LlamaSampler(model, new SamplingSettings { Grammar = FromSchema("""{ "type": "boolean" }""").Replace("::=", ":=", StringComparison.Ordinal) }));
    }

    [Theory]
    [MemberData(nameof(GeneratedSchemas))]
    public void Generated_json_satisfies_the_schema(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        int completed = 0;
        foreach ((string text, bool ended) in Generate(FromSchema(schema)))
        {
            Console.WriteLine($"{ended}: {text}");
            if (!ended)
            {
                AssertJsonPrefix(text);
                continue;
            }

            completed++;
            using var output = JsonDocument.Parse(text);
            Assert.True(Matches(output.RootElement, document.RootElement, document.RootElement), $"{text}\ndoes not satisfy\n{schema}");
        }

        Assert.True(completed > 0, "No generation completed within the token limit.");
    }

    [Fact]
    public void Any_json_generation_is_an_object()
    {
        int completed = 0;
        foreach ((string text, bool ended) in Generate(JsonGrammar.AnyJson))
        {
            Console.WriteLine($"{ended}: {text}");
            if (!ended)
            {
                AssertJsonPrefix(text);
                continue;
            }

            completed++;
            using var output = JsonDocument.Parse(text);
            Assert.Equal(JsonValueKind.Object, output.RootElement.ValueKind);
        }

        Assert.True(completed > 0, "No generation completed within the token limit.");
    }

    private static string FromSchema(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        return JsonGrammar.FromSchema(document.RootElement);
    }

    private static string Normalize(string grammar) =>
        string.Join('\n', grammar.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));

    [GeneratedRegex("^[a-zA-Z0-9-]+ ::= ")]
    private static partial Regex RuleLine();

    private static List<(string Text, bool Ended)> Generate(string grammar)
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 512, Threads = 2 });
        int[] prompt = model.Tokenize("Reply with JSON only.", addSpecial: true, parseSpecial: false);
        var results = new List<(string, bool)>();
        foreach (SamplingSettings sampling in s_samplings)
        {
            using var sampler = new LlamaSampler(model, sampling with { Grammar = grammar });
            var sw = System.Diagnostics.Stopwatch.StartNew();
            GenerationResult result = SingleSequenceGenerator.Generate(context, sampler, prompt, MaxTokens);
            Console.WriteLine($"{result.Tokens.Count} tokens in {sw.ElapsedMilliseconds} ms, prefill {result.PrefillTime.TotalMilliseconds}");
            var bytes = new ArrayBufferWriter<byte>();
            foreach (int token in result.Tokens)
            {
                model.AppendPiece(token, bytes);
            }

            results.Add((Encoding.UTF8.GetString(bytes.WrittenSpan), result.EndedByModel));
        }

        return results;
    }

    private static void AssertJsonPrefix(string text)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text), isFinalBlock: false, state: default);
        while (reader.Read())
        {
        }
    }

    private static bool Matches(JsonElement value, JsonElement schema, JsonElement root) => true;
}
