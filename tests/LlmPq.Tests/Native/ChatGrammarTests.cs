using System.Buffers;
using System.Text;
using System.Text.Json;
using LlmPq.Engine;
using LlmPq.Gguf;
using LlmPq.Native;

namespace LlmPq.Tests.Native;

/// <summary>
/// llama.cpp's tool and schema grammars driving generation on the generated tiny models (a SentencePiece vocabulary
/// without the templates' special tokens, random weights): what initializes, what a forced call produces.
/// </summary>
[Collection(NativeTests.Name)]
public sealed class ChatGrammarTests
{
    private const string WeatherParameters = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";

    private static readonly Lazy<string> s_hermes = new(() => TestModels.Write("hermes-grammar", ChatTemplateTests.Tiny(ChatTemplateLibrary.Hermes)));

    private static readonly ChatTemplateRequest s_weather = new()
    {
        Messages = [new("user", "What is the weather in Paris?")],
        Tools = [new("get_weather", "The current weather of a city.", WeatherParameters)],
    };

    [Fact]
    public void Llama_cpps_own_prefill_is_what_the_grammar_rejects_on_this_vocabulary()
    {
        // common/sampling.cpp tokenizes the generation prompt and drops a first token the tokenizer prefixed with a
        // space: here "▁<" of "<|im_start|>", which is no token of this vocabulary. The grammar, which starts with the
        // generation prompt, then gets "|" first: this is llama-server's "Failed to initialize samplers".
        using LlamaModel model = LlamaModel.Load(s_hermes.Value);
        ChatPrompt prompt = Apply(model, s_weather with { ToolChoice = ChatToolChoice.Required });
        int[] tokens = model.Tokenize(prompt.GenerationPrompt, addSpecial: false, parseSpecial: true);
        Assert.Equal(" <", Piece(model, tokens[0]));

        var llamaCpps = new SamplingSettings { Grammar = prompt.Grammar, GrammarPrefill = tokens[1..] };
        ArgumentException ex = Assert.Throws<ArgumentException>(() => new LlamaSampler(model, llamaCpps));
        Assert.Contains($"token {tokens[1]}", ex.Message, StringComparison.Ordinal);

        // The shim's prefill spells the '<' without the space, and the grammar takes it.
        Assert.Equal(prompt.GenerationPrompt, string.Concat(prompt.GrammarPrefill.Select(t => Piece(model, t))));
        using var sampler = new LlamaSampler(model, Settings(prompt));
    }

    [Fact]
    public void A_required_grammar_lets_text_come_before_the_call()
    {
        // llama.cpp builds "required" as: any text up to the call marker, then one or more calls, and no end before
        // one; a random model that never writes "<tool_call>" therefore generates exactly what it would unconstrained.
        using LlamaModel model = LlamaModel.Load(s_hermes.Value);
        ChatPrompt prompt = Apply(model, s_weather with { ToolChoice = ChatToolChoice.Required });

        (string free, bool freeEnded) = Generate(model, prompt.Prompt, new SamplingSettings(), maxTokens: 16);
        (string required, _) = Generate(model, prompt.Prompt, Settings(prompt), maxTokens: 16);

        Assert.False(freeEnded);
        Assert.DoesNotContain("<", free, StringComparison.Ordinal);
        Assert.Equal(free, required);
    }

    [Fact]
    public void Once_a_call_has_started_the_grammar_forces_its_shape_on_a_random_model()
    {
        using LlamaModel model = LlamaModel.Load(s_hermes.Value);
        ChatPrompt prompt = Apply(model, s_weather with { ToolChoice = ChatToolChoice.Required });

        // The model "wrote" the call marker: it joins the prompt, and the grammar accepts its tokens after the prefill.
        const string Marker = "<tool_call>\n";
        int[] before = model.Tokenize(prompt.Prompt, addSpecial: false, parseSpecial: true);
        int[] after = model.Tokenize(prompt.Prompt + Marker, addSpecial: false, parseSpecial: true);
        int shared = before.Zip(after).TakeWhile(p => p.First == p.Second).Count();
        SamplingSettings settings = Settings(prompt) with { GrammarPrefill = [.. prompt.GrammarPrefill, .. after[shared..]] };

        (string output, _) = Generate(model, prompt.Prompt + Marker, settings, maxTokens: 32);

        string compact = string.Concat(output.Where(c => !char.IsWhiteSpace(c))); // the grammar lets the model choose the spacing
        Assert.StartsWith("{\"name\":\"get_weather\",\"arguments\":{\"city\":\"", compact, StringComparison.Ordinal);
        ParsedMessage parsed = ChatTemplates.Parse(Marker + output, partial: true, prompt.Syntax);
        Assert.Equal("get_weather", Assert.Single(parsed.ToolCalls).Name);
    }

    [Fact]
    public void A_json_schema_grammar_initializes_on_the_default_chatml_model_and_forces_json()
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        ChatPrompt prompt = Apply(model, new()
        {
            Messages = [new("user", "Give me a number.")],
            JsonSchema = """{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}""",
        });
        Assert.Equal(string.Empty, prompt.GrammarError);

        (string output, _) = Generate(model, prompt.Prompt, Settings(prompt), maxTokens: 24);

        string trimmed = output.TrimStart();
        Assert.True(trimmed.StartsWith('{') || trimmed.StartsWith("```json", StringComparison.Ordinal), output);
        if (trimmed.EndsWith('}'))
        {
            using JsonDocument doc = JsonDocument.Parse(trimmed);
            Assert.Equal(JsonValueKind.Number, doc.RootElement.GetProperty("n").ValueKind);
        }
    }

    [Fact]
    public void An_untriggered_lazy_grammar_leaves_the_output_as_it_was()
    {
        using LlamaModel model = LlamaModel.Load(s_hermes.Value);
        ChatPrompt prompt = Apply(model, s_weather with { ToolChoice = ChatToolChoice.Auto });
        Assert.True(prompt.GrammarLazy);

        (string free, _) = Generate(model, prompt.Prompt, new SamplingSettings(), maxTokens: 16);
        (string lazy, _) = Generate(model, prompt.Prompt, Settings(prompt), maxTokens: 16);

        Assert.DoesNotContain("<tool_call>", free, StringComparison.Ordinal);
        Assert.Equal(free, lazy);
    }

    private static SamplingSettings Settings(ChatPrompt prompt) => new()
    {
        Grammar = prompt.Grammar,
        GrammarLazy = prompt.GrammarLazy,
        GrammarTriggerPatterns = prompt.TriggerPatterns,
        GrammarTriggerTokens = prompt.TriggerTokens,
        GrammarPrefill = prompt.GrammarPrefill,
    };

    private static ChatPrompt Apply(LlamaModel model, ChatTemplateRequest request)
    {
        using ChatTemplates templates = ChatTemplates.Create(model);
        return templates.Apply(request);
    }

    private static (string Text, bool EndedByModel) Generate(LlamaModel model, string prompt, SamplingSettings settings, int maxTokens)
    {
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 512, Threads = 2 });
        using var sampler = new LlamaSampler(model, settings);
        int[] tokens = model.Tokenize(prompt, addSpecial: true, parseSpecial: true);
        GenerationResult result = SingleSequenceGenerator.Generate(context, sampler, tokens, maxTokens);
        var bytes = new ArrayBufferWriter<byte>();
        foreach (int token in result.Tokens)
        {
            model.AppendPiece(token, bytes, special: true);
        }

        return (Encoding.UTF8.GetString(bytes.WrittenSpan), result.EndedByModel);
    }

    private static string Piece(LlamaModel model, int token)
    {
        var bytes = new ArrayBufferWriter<byte>();
        model.AppendPiece(token, bytes, special: true);
        return Encoding.UTF8.GetString(bytes.WrittenSpan);
    }
}
