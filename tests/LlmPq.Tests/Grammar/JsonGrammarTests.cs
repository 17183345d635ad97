using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmPq.Engine;
using LlmPq.Grammar;
using LlmPq.Native;

namespace LlmPq.Tests.Grammar;

/// <summary>JSON Schema to GBNF: llama.cpp's own expectations, its grammar parser, and generation under the grammars.</summary>
[Collection(NativeTests.Name)]
public sealed partial class JsonGrammarTests
{
    private const int MaxTokens = 256;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // Greedy, then two seeded draws at temperature 1.
    private static readonly SamplingSettings[] s_samplings =
    [
        new() { Temperature = 0 },
        new() { Temperature = 1, Seed = 1 },
        new() { Temperature = 1, Seed = 2 },
    ];

    // Each supported keyword at least once, small enough for the random model to finish: bounded strings, enums, small ranges.
    private static readonly string[] s_generatedSchemas =
    [
        // Property names with spaces, dashes, quotes and non-ASCII; enums with quotes, escapes and non-ASCII.
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

        // $defs and definitions, objects in a bounded array, anyOf, optional properties.
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

        // Nested arrays, a closed tuple, oneOf, OpenAPI's nullable, allOf.
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
              "properties": { "v": { "type": "integer", "minimum": 0, "maximum": 9 }, "next": { "$ref": "#/$defs/node" } },
              "required": ["v"],
              "additionalProperties": false
            }
          }
        }
        """,
    ];

    // Schemas whose grammars are only put to llama.cpp's parser.
    private static readonly string[] s_parsedOnlySchemas =
    [
        """{ "type": "object", "properties": { "id": { "type": "integer" } }, "additionalProperties": { "type": "string" } }""",
        """{ "type": "object", "properties": { "a]b": {}, "c-d": {}, "^e": {}, "f\\g": {}, "h\"i": {}, "ü": {}, "😀": {}, "": {} }, "additionalProperties": true }""",
        """{ "type": "object", "properties": { "": { "type": "integer" }, "integral part": { "type": "object", "properties": { "n": { "type": "number" } } } } }""",
        """{ "type": "object", "properties": { "tree": { "$ref": "#" }, "value": { "type": "string", "maxLength": 2000 } } }""",
        """{ "type": "array", "items": { "type": "string", "minLength": 3 }, "minItems": 2, "maxItems": 40 }""",
        """{ "type": "integer", "minimum": 1.5, "maximum": 99999999999 }""",
        """{ "type": ["object", "array", "string", "number", "integer", "boolean", "null"] }""",
        """{ "properties": { "a": false, "b": { "type": "string", "pattern": "^[a-z]+$", "format": "email" } } }""",
        """{ "type": "array", "items": false }""",
        "true",
    ];

    /// <summary>
    /// Gets cases of llama.cpp's tests/test-json-schema-to-grammar.cpp in the pinned source: name, schema, grammar; the
    /// two that differ, where llama.cpp's grammar is wrong, say so.
    /// </summary>
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
            // llama.cpp has [0-4] here, which admits "-04": not JSON, and above the maximum.
            "max -5",
            """"{"type": "integer", "maximum": -5}"""",
            """"
            root ::= ("-" ([1-4] [0-9]{1,15} | [5-9] [0-9]{0,15}))
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
            // llama.cpp has [^"a] and the like, which let a key start a bad escape such as \q.
            "required + optional + additional props",
            """"{"type": "object", "properties": {"and": {"type": "number"}, "also": {"type": "number"}}, "required": ["and"], "additionalProperties": {"type": "number"}}"""",
            """"
            additional-k ::= ["] ( [a] ([l] ([s] ([o] char+ | ([^"\\o] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})) char*) | ([^"\\s] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})) char*) | [n] ([d] char+ | ([^"\\d] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})) char*) | ([^"\\ln] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})) char*) | ([^"\\a] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})) char* )? ["]
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

    /// <summary>Gets the schemas generation is checked with.</summary>
    public static TheoryData<string> GeneratedSchemas => new(s_generatedSchemas);

    /// <summary>Gets integer bounds (null for none) whose rule is checked against every integer near them.</summary>
    public static TheoryData<long?, long?> IntegerRanges => new()
    {
        { 0, null }, { 1, null }, { 9, null }, { 10, null }, { 25, null }, { 101, null }, { -5, null }, { -123, null },
        { null, 30 }, { null, 1 }, { null, 0 }, { null, 100 }, { null, -5 }, { null, -120 },
        { 0, 23 }, { 15, 300 }, { 5, 30 }, { -123, 42 }, { -10, 10 }, { -12, 207 }, { -250, -7 }, { 7, 7 }, { 0, 0 }, { 99, 1000 }, { -1000, 999 },
    };

    [Theory]
    [MemberData(nameof(LlamaCppCases))]
    public void The_grammar_is_the_one_llama_cpp_makes(string name, string schema, string expected)
    {
        string grammar = FromSchema(schema);
        Assert.True(Normalize(expected) == Normalize(grammar), $"{name}:\n{grammar}");
    }

    [Fact]
    public void Any_json_is_llama_cpp_s_grammar_for_any_object_with_bounded_whitespace()
    {
        Assert.Equal(FromSchema("""{ "type": "object" }"""), JsonGrammar.AnyJson);
        Assert.Contains("root ::= object\n", JsonGrammar.AnyJson, StringComparison.Ordinal);
        Assert.Contains("space ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}\n", JsonGrammar.AnyJson, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(IntegerRanges))]
    public void An_integer_range_admits_exactly_its_integers(long? minimum, long? maximum)
    {
        string schema = $$"""{ "type": "integer"{{(minimum is null ? "" : $", \"minimum\": {minimum}")}}{{(maximum is null ? "" : $", \"maximum\": {maximum}")}} }""";
        string rule = GrammarRule(FromSchema(schema), "root");
        var regex = new Regex($"^(?:{ToRegex(rule)})$", RegexOptions.CultureInvariant);
        for (long n = -1500; n <= 1500; n++)
        {
            bool inRange = n >= (minimum ?? long.MinValue) && n <= (maximum ?? long.MaxValue);
            string text = n.ToString(CultureInfo.InvariantCulture);
            Assert.True(inRange == regex.IsMatch(text), $"{text} with {rule}");

            // Never a leading zero, which JSON does not allow.
            string padded = n < 0 ? "-0" + text[1..] : "0" + text;
            Assert.True(n == 0 || !regex.IsMatch(padded), $"{padded} with {rule}");
        }
    }

    [Fact]
    public void A_top_level_property_named_empty_does_not_take_the_root()
    {
        // llama.cpp names the value of such a property "root", which makes the whole grammar that value.
        string grammar = FromSchema("""{ "properties": { "": { "type": "integer" }, "a": { "type": "integer" } } }""");
        Assert.Contains("root ::= \"{\" space  (-kv -rest | a-kv )? space \"}\"\n", grammar, StringComparison.Ordinal);
        Assert.Contains("-kv ::= \"\\\"\\\"\" space \":\" space integer\n", grammar, StringComparison.Ordinal);
    }

    [Fact]
    public void Property_names_become_valid_distinct_rule_names()
    {
        string grammar = FromSchema("""{ "properties": { "a b": { "enum": [1] }, "a-b": { "enum": [2] }, "日本": { "enum": [3] }, "integral part": { "enum": [4] } }, "required": ["a b", "a-b", "日本", "integral part"] }""");
        Assert.Contains("a-b ::= (\"1\")\n", grammar, StringComparison.Ordinal);
        Assert.Contains("a-b0 ::= (\"2\")\n", grammar, StringComparison.Ordinal);
        Assert.Contains("- ::= (\"3\")\n", grammar, StringComparison.Ordinal);
        Assert.Contains("integral-part- ::= (\"4\")\n", grammar, StringComparison.Ordinal);
        Assert.Contains("integral-part-kv ::= \"\\\"integral part\\\"\" space \":\" space integral-part-\n", grammar, StringComparison.Ordinal);
        Assert.Contains("-kv ::= \"\\\"日本\\\"\" space \":\" space -\n", grammar, StringComparison.Ordinal);
        Assert.All(grammar.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.Matches(RuleLine(), l));
    }

    [Fact]
    public void Nullable_boolean_schemas_and_closed_tuples_are_understood()
    {
        Assert.Contains("root ::= alternative-0 | null\n", FromSchema("""{ "type": "string", "maxLength": 2, "nullable": true }"""), StringComparison.Ordinal);
        Assert.Contains("root ::= \"{\" space  (b-kv )? space \"}\"\n", FromSchema("""{ "properties": { "a": false, "b": {} } }"""), StringComparison.Ordinal);
        Assert.Contains("root ::= \"[\" space boolean space \"]\"\n", FromSchema("""{ "prefixItems": [{ "type": "boolean" }], "items": false }"""), StringComparison.Ordinal);
        Assert.Contains("root ::= \"[\" space  space \"]\"\n", FromSchema("""{ "type": "array", "items": false }"""), StringComparison.Ordinal);
    }

    [Fact]
    public void Other_keys_exclude_declared_names_with_special_characters_escaped()
    {
        string grammar = FromSchema("""{ "properties": { "a]": {}, "-": {}, "^": {}, "\"": {} }, "additionalProperties": { "type": "boolean" } }""");
        Assert.Contains(
            """additional-k ::= ["] ( [\-] char+ | "\\\"" char+ | [\x5E] char+ | [a] ([\]] char+ | ([^"\\\]] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})) char*) | [^"\\\-\x5Ea] char* )? ["]""",
            grammar,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Other_keys_are_json_strings_other_than_the_declared_names()
    {
        // The names as JSON writes them, non-ASCII as is; none beyond the BMP, which a .NET regex class would split.
        string[] declared = ["\"and\"", "\"also\"", "\"a]\"", "\"-\"", "\"^\"", "\"\\\"\"", "\"q\\\"t\"", "\"tab\\t\"", "\"é\"", "\"日本\""];
        string grammar = FromSchema($$"""{ "properties": { {{string.Join(", ", declared.Select(d => $"{d}: {{}}"))}} }, "additionalProperties": {} }""");
        var key = new Regex($"^(?:{ToRegex(GrammarRule(grammar, "additional-k"), ("char", GrammarRule(grammar, "char")))})$", RegexOptions.CultureInvariant);

        Assert.All(declared, d => Assert.DoesNotMatch(key, d));
        Assert.All(declared, d => Assert.Matches(key, d[..^1] + "x\""));
        Assert.All(["\"b\"", "\"zz\"", "\"Zebra\"", "\"aX\"", "\"本\"", "\"q\\\"u\""], k => Assert.Matches(key, k));
        Assert.All(["\"\\q\"", "\"a\\q\"", "\"an\\q\"", "\"q\\x\"", "\"\\u00zz\"", "\"a\"b\""], k => Assert.DoesNotMatch(key, k));
    }

    [Theory]
    [InlineData("[]", "#: a schema must be an object or a boolean, not Array")]
    [InlineData("\"string\"", "#: a schema must be an object or a boolean, not String")]
    [InlineData("42", "#: a schema must be an object or a boolean")]
    [InlineData("null", "#: a schema must be an object or a boolean")]
    [InlineData("false", "#: the schema false allows no value")]
    [InlineData("""{ "properties": { "a": 3 } }""", "#/properties/a: a schema must be an object or a boolean")]
    [InlineData("""{ "$ref": "#/$defs/missing", "$defs": {} }""", "cannot resolve $ref #/$defs/missing, missing is not found")]
    [InlineData("""{ "properties": { "a": { "$ref": "#/definitions/x/y" } }, "definitions": { "x": {} } }""", "#/properties/a: cannot resolve $ref #/definitions/x/y")]
    [InlineData("""{ "$ref": "https://example.com/schema.json#/$defs/a" }""", "only references into the same document")]
    [InlineData("""{ "$ref": 5 }""", "$ref must be a string")]
    [InlineData("""{ "type": "kaboom" }""", "unrecognized type kaboom")]
    [InlineData("""{ "type": 123 }""", "type must be a string or an array of strings")]
    [InlineData("""{ "type": [] }""", "type must not be empty")]
    [InlineData("""{ "enum": [] }""", "enum must be a non-empty array")]
    [InlineData("""{ "anyOf": {} }""", "#/anyOf: must be a non-empty array of schemas")]
    [InlineData("""{ "type": "string", "maxLength": -1 }""", "maxLength must be a non-negative integer")]
    [InlineData("""{ "type": "array", "minItems": "2" }""", "minItems must be a non-negative integer")]
    [InlineData("""{ "type": "integer", "minimum": 5, "maximum": 3 }""", "the minimum 5 is greater than the maximum 3")]
    [InlineData("""{ "type": "object", "properties": { "a": false }, "required": ["a"] }""", "#/properties/a: a required property has the schema false")]
    [InlineData("""{ "type": "object", "additionalProperties": 1 }""", "additionalProperties must be a boolean or a schema")]
    public void An_invalid_schema_is_rejected_with_the_place_and_the_reason(string schema, string message)
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => FromSchema(schema));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_produced_grammar_is_accepted_by_llama_cpp()
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        IEnumerable<string> schemas = ((IEnumerable<object[]>)LlamaCppCases).Select(c => (string)c[1]).Concat(s_generatedSchemas).Concat(s_parsedOnlySchemas);
        foreach (string grammar in schemas.Select(FromSchema).Append(JsonGrammar.AnyJson))
        {
            Assert.All(grammar.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.Matches(RuleLine(), l));
            using var sampler = new LlamaSampler(model, new SamplingSettings { Grammar = grammar });
        }

        // The check can fail: the binding throws for a grammar llama.cpp refuses.
        string broken = FromSchema("""{ "type": "boolean" }""").Replace("::=", ":=", StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new LlamaSampler(model, new SamplingSettings { Grammar = broken }));
    }

    [Theory]
    [MemberData(nameof(GeneratedSchemas))]
    public void Generated_json_satisfies_the_schema(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        int completed = 0;
        foreach ((byte[] output, bool ended) in Generate(FromSchema(schema), MaxTokens))
        {
            if (!ended)
            {
                AssertJsonPrefix(output);
                continue;
            }

            completed++;
            string text = s_strictUtf8.GetString(output);
            using var json = JsonDocument.Parse(text);
            Assert.True(Matches(json.RootElement, document.RootElement, document.RootElement), $"{text}\ndoes not satisfy\n{schema}");
        }

        Assert.True(completed > 0, "No generation completed within the token limit.");
    }

    [Fact]
    public void Generated_any_json_is_an_object()
    {
        // The random model seldom closes a free string, so only greedy ("{}") is sure to complete; the rest must be valid prefixes.
        int completed = 0;
        foreach ((byte[] output, bool ended) in Generate(JsonGrammar.AnyJson, maxTokens: 32))
        {
            if (!ended)
            {
                AssertJsonPrefix(output);
                continue;
            }

            completed++;
            using var json = JsonDocument.Parse(s_strictUtf8.GetString(output));
            Assert.Equal(JsonValueKind.Object, json.RootElement.ValueKind);
        }

        Assert.True(completed > 0, "No generation completed within the token limit.");
    }

    [Theory]
    [InlineData(0, """{ "full name": "", "is-member": true, "colour \"hue\"": null, "größe": 1, "nick": null, "kind": "person" }""")]
    [InlineData(0, """{ "full name": "1234567", "is-member": true, "colour \"hue\"": null, "größe": 1, "nick": null, "kind": "person" }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": "blue", "größe": 1, "nick": null, "kind": "person" }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": null, "größe": 121, "nick": null, "kind": "person" }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": null, "größe": 1.5, "nick": null, "kind": "person" }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": null, "größe": 1, "nick": 3, "kind": "person" }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": null, "größe": 1, "nick": null, "kind": "thing" }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": null, "größe": 1, "nick": null }""")]
    [InlineData(0, """{ "full name": "a", "is-member": true, "colour \"hue\"": null, "größe": 1, "nick": null, "kind": "person", "x": 1 }""")]
    [InlineData(1, """{ "points": [], "label": null }""")]
    [InlineData(1, """{ "points": [{ "x": 1, "y": 3 }], "label": null }""")]
    [InlineData(1, """{ "points": [{ "x": 1, "y": 0 }], "label": "abcdef" }""")]
    [InlineData(1, """{ "points": [{ "x": 1, "y": 0 }], "label": null, "more": ["c"] }""")]
    [InlineData(2, """{ "day": "2024-1-01", "at": "10:00:00Z", "when": "2024-01-01T10:00:00Z", "id": "01234567-89ab-cdef-0123-456789abcdef" }""")]
    [InlineData(2, """{ "day": "2024-01-01", "at": "10:00:00", "when": "2024-01-01T10:00:00Z", "id": "01234567-89ab-cdef-0123-456789abcdef" }""")]
    [InlineData(2, """{ "day": "2024-01-01", "at": "10:00:00Z", "when": "2024-01-01 10:00:00Z", "id": "01234567-89ab-cdef-0123-456789abcdef" }""")]
    [InlineData(2, """{ "day": "2024-01-01", "at": "10:00:00Z", "when": "2024-01-01T10:00:00Z", "id": "0123456789abcdef0123456789abcdef" }""")]
    [InlineData(3, """{ "matrix": [[true, true, true]], "pair": [1, null], "status": "ok", "note": null, "both": { "a": 1 } }""")]
    [InlineData(3, """{ "matrix": [[]], "pair": [1, null, 3], "status": "ok", "note": null, "both": { "a": 1 } }""")]
    [InlineData(3, """{ "matrix": [[]], "pair": [1, null], "status": 9, "note": null, "both": { "a": 1 } }""")]
    [InlineData(3, """{ "matrix": [[]], "pair": [1, null], "status": "ok", "note": "", "both": { "a": 1 } }""")]
    [InlineData(3, """{ "matrix": [[]], "pair": [1, null], "status": "ok", "note": null, "both": { "a": 4 } }""")]
    [InlineData(4, """{ "v": 1, "next": { "v": 10 } }""")]
    public void The_checker_rejects_what_the_schemas_forbid(int schemaIndex, string json)
    {
        using var schema = JsonDocument.Parse(s_generatedSchemas[schemaIndex]);
        using var value = JsonDocument.Parse(json);
        Assert.False(Matches(value.RootElement, schema.RootElement, schema.RootElement));
    }

    [Theory]
    [InlineData(0, """{ "full name": "日本語ab", "is-member": true, "colour \"hue\"": "blue \"navy\"", "größe": -5, "nick": "abcd", "kind": "person", "ratio": 1e3 }""")]
    [InlineData(1, """{ "points": [{ "x": 9, "y": -2 }, { "x": 0, "y": 2 }], "label": "abcde", "more": ["a", "b"] }""")]
    [InlineData(2, """{ "day": "2024-02-29", "at": "23:59:59.123+01:00", "when": "2024-01-01T10:00:00Z", "id": "01234567-89ab-CDEF-0123-456789abcdef" }""")]
    [InlineData(3, """{ "matrix": [[true, false], []], "pair": [1, "two"], "status": 20, "note": "abc", "both": { "a": 3, "b": false } }""")]
    [InlineData(4, """{ "v": 1, "next": { "v": 9, "next": { "v": 0 } } }""")]
    public void The_checker_accepts_what_the_schemas_allow(int schemaIndex, string json)
    {
        using var schema = JsonDocument.Parse(s_generatedSchemas[schemaIndex]);
        using var value = JsonDocument.Parse(json);
        Assert.True(Matches(value.RootElement, schema.RootElement, schema.RootElement));
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

    [GeneratedRegex("""\s+|"((?:[^"\\]|\\.)*)"|\[(?:[^\]\\]|\\.)*\]|[a-z][a-z0-9-]*|[^\s"]""")]
    private static partial Regex GbnfToken();

    /// <summary>
    /// Translates a rule of literals, classes, groups, alternatives, repetitions and the named references (their regexes
    /// given) to a .NET regex; GBNF classes and their escapes read the same there.
    /// </summary>
    private static string ToRegex(string rule, params (string Name, string Regex)[] references) =>
        string.Concat(GbnfToken().Matches(rule).Select(m => m.Value[0] switch
        {
            '"' => Regex.Escape(Regex.Unescape(m.Groups[1].Value)),
            _ when string.IsNullOrWhiteSpace(m.Value) => "",
            >= 'a' and <= 'z' => $"(?:{ToRegex(references.Single(r => r.Name == m.Value).Regex)})",
            _ => m.Value,
        }));

    private static string GrammarRule(string grammar, string name) =>
        grammar.Split('\n').Single(l => l.StartsWith(name + " ::= ", StringComparison.Ordinal))[(name.Length + " ::= ".Length)..];

    private static List<(byte[] Output, bool Ended)> Generate(string grammar, int maxTokens)
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);

        // One thread: ggml's threads spin at each barrier, which crawls when the machine runs other tests too.
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 512, Threads = 1 });
        int[] prompt = model.Tokenize("Reply with JSON only.", addSpecial: true, parseSpecial: false);
        var results = new List<(byte[], bool)>();
        foreach (SamplingSettings sampling in s_samplings)
        {
            using var sampler = new LlamaSampler(model, sampling with { Grammar = grammar });
            GenerationResult result = SingleSequenceGenerator.Generate(context, sampler, prompt, maxTokens);
            var bytes = new ArrayBufferWriter<byte>();
            foreach (int token in result.Tokens)
            {
                model.AppendPiece(token, bytes);
            }

            results.Add((bytes.WrittenSpan.ToArray(), result.EndedByModel));
        }

        return results;
    }

    /// <summary>Reads the output as the start of a JSON document: the reader throws at the first byte no JSON could have.</summary>
    private static void AssertJsonPrefix(byte[] output)
    {
        var reader = new Utf8JsonReader(output, isFinalBlock: false, state: default);
        while (reader.Read())
        {
        }
    }

    // A checker for the keywords the generated schemas use, with JSON Schema's meaning (not the grammar's).
    private static bool Matches(JsonElement value, JsonElement schema, JsonElement root)
    {
        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return schema.ValueKind == JsonValueKind.True;
        }

        if (Get(schema, "$ref") is { } reference)
        {
            return Matches(value, Resolve(root, reference.GetString()!), root);
        }

        if (value.ValueKind == JsonValueKind.Null && Get(schema, "nullable") is { ValueKind: JsonValueKind.True })
        {
            return true;
        }

        if ((Get(schema, "anyOf") ?? Get(schema, "oneOf")) is { } alternatives && !alternatives.EnumerateArray().Any(a => Matches(value, a, root)))
        {
            return false;
        }

        if (Get(schema, "allOf") is { } all && !all.EnumerateArray().All(a => Matches(value, a, root)))
        {
            return false;
        }

        if (Get(schema, "const") is { } constant && !JsonElement.DeepEquals(value, constant))
        {
            return false;
        }

        if (Get(schema, "enum") is { } values && !values.EnumerateArray().Any(v => JsonElement.DeepEquals(value, v)))
        {
            return false;
        }

        if (Get(schema, "type") is { } type
            && !(type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Any(t => IsType(value, t.GetString()!)) : IsType(value, type.GetString()!)))
        {
            return false;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Object => MatchesObject(value, schema, root),
            JsonValueKind.Array => MatchesArray(value, schema, root),
            JsonValueKind.String => MatchesString(value.GetString()!, schema),
            JsonValueKind.Number => MatchesNumber(value.GetDouble(), schema),
            _ => true,
        };
    }

    private static bool IsType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && Math.Floor(value.GetDouble()) == value.GetDouble(),
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => throw new ArgumentException($"unknown type {type}", nameof(type)),
    };

    private static bool MatchesObject(JsonElement value, JsonElement schema, JsonElement root)
    {
        JsonElement? properties = Get(schema, "properties");
        if (Get(schema, "required") is { } required && !required.EnumerateArray().All(r => value.TryGetProperty(r.GetString()!, out _)))
        {
            return false;
        }

        foreach (JsonProperty member in value.EnumerateObject())
        {
            JsonElement? memberSchema = properties is { } p && p.TryGetProperty(member.Name, out JsonElement s) ? s : Get(schema, "additionalProperties");
            if (memberSchema is { } m && !Matches(member.Value, m, root))
            {
                return false;
            }
        }

        return true;
    }

    private static bool MatchesArray(JsonElement value, JsonElement schema, JsonElement root)
    {
        JsonElement[] items = [.. value.EnumerateArray()];
        int prefix = 0;
        if (Get(schema, "prefixItems") is { } prefixItems)
        {
            JsonElement[] prefixSchemas = [.. prefixItems.EnumerateArray()];
            prefix = Math.Min(prefixSchemas.Length, items.Length);
            if (!items.Take(prefix).Select((item, i) => Matches(item, prefixSchemas[i], root)).All(m => m))
            {
                return false;
            }
        }

        return (Get(schema, "items") is not { } itemSchema || items.Skip(prefix).All(item => Matches(item, itemSchema, root)))
            && items.Length >= (Get(schema, "minItems")?.GetInt32() ?? 0)
            && items.Length <= (Get(schema, "maxItems")?.GetInt32() ?? int.MaxValue);
    }

    private static bool MatchesString(string text, JsonElement schema)
    {
        int length = text.EnumerateRunes().Count();
        if (length < (Get(schema, "minLength")?.GetInt32() ?? 0) || length > (Get(schema, "maxLength")?.GetInt32() ?? int.MaxValue))
        {
            return false;
        }

        // RFC 3339 syntax; llama.cpp's grammar does not know the days of each month either.
        const string Date = @"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])";
        const string Time = @"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)";
        string? pattern = Get(schema, "format")?.GetString() switch
        {
            "date" => Date,
            "time" => Time,
            "date-time" => $"{Date}[Tt]{Time}",
            "uuid" => "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            _ => null,
        };
        return pattern is null || Regex.IsMatch(text, $"^{pattern}$", RegexOptions.CultureInvariant);
    }

    private static bool MatchesNumber(double number, JsonElement schema) =>
        number >= (Get(schema, "minimum")?.GetDouble() ?? double.NegativeInfinity)
        && number <= (Get(schema, "maximum")?.GetDouble() ?? double.PositiveInfinity)
        && number > (Get(schema, "exclusiveMinimum")?.GetDouble() ?? double.NegativeInfinity)
        && number < (Get(schema, "exclusiveMaximum")?.GetDouble() ?? double.PositiveInfinity);

    private static JsonElement? Get(JsonElement schema, string keyword) => schema.TryGetProperty(keyword, out JsonElement value) ? value : null;

    private static JsonElement Resolve(JsonElement root, string reference) =>
        reference.Split('/').Skip(1).Aggregate(root, (target, name) => target.GetProperty(name));
}
