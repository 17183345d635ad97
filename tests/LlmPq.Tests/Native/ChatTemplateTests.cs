using LlmPq.Gguf;
using LlmPq.Native;

namespace LlmPq.Tests.Native;

/// <summary>
/// Prompts, grammars and parsers from llama.cpp's chat layer (through libllmpq-chat.so) for the generated models'
/// templates. Parse inputs are llama.cpp's own examples from its tests/test-chat.cpp; like that file, the parsed
/// content and reasoning are compared without leading and trailing whitespace.
/// </summary>
[Collection(NativeTests.Name)]
public sealed class ChatTemplateTests
{
    private const string WeatherParameters = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";
    private const string TimeParameters = """{"type":"object","properties":{"zone":{"type":"string"}},"required":["zone"]}""";

    // tests/test-chat.cpp's special_function_tool and the calls its examples expect.
    private const string SpecialParameters = """{"type":"object","properties":{"arg1":{"type":"integer","description":"The arg."}},"required":["arg1"]}""";

    private static readonly Lazy<string> s_hermes = new(() => TestModels.Write("hermes", Tiny(ChatTemplateLibrary.Hermes)));
    private static readonly Lazy<string> s_llama31 = new(() => TestModels.Write("llama31", Tiny(ChatTemplateLibrary.Llama31)));

    private static readonly ChatTemplateTool[] s_tools =
    [
        new("get_weather", "The current weather of a city.", WeatherParameters),
        new("get_time", "The current time in a time zone.", TimeParameters),
    ];

    private static readonly ChatTemplateTool[] s_special = [new("special_function", "I'm special", SpecialParameters)];

    // A user turn, the assistant's call, its result, and the next user turn.
    private static readonly ChatTemplateMessage[] s_history =
    [
        new("user", "What is the weather in Paris?"),
        new("assistant", null) { ToolCalls = [new ChatToolCall("get_weather", "call_1", """{"city":"Paris"}""")] },
        new("tool", """{"temp": 21}""") { ToolCallId = "call_1", Name = "get_weather" },
        new("user", "And in Rome?"),
    ];

    [Fact]
    public void Hermes_renders_the_tools_the_call_and_its_result_into_the_prompt()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = s_history, Tools = s_tools });

        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"", prompt.Prompt, StringComparison.Ordinal);
        Assert.Contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>", prompt.Prompt, StringComparison.Ordinal);
        Assert.Contains("<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>", prompt.Prompt, StringComparison.Ordinal);
        Assert.EndsWith("And in Rome?<|im_end|>\n<|im_start|>assistant\n", prompt.Prompt, StringComparison.Ordinal);
        Assert.Equal("<|im_start|>assistant\n", prompt.GenerationPrompt);
    }

    [Fact]
    public void Hermes_with_tool_choice_auto_gives_a_lazy_grammar_triggered_by_the_tool_call_tag()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = s_history, Tools = s_tools, ToolChoice = ChatToolChoice.Auto });

        Assert.True(prompt.GrammarLazy);
        Assert.Contains("tool-get-weather", prompt.Grammar, StringComparison.Ordinal);
        Assert.Contains("tool-get-time", prompt.Grammar, StringComparison.Ordinal);
        ChatGrammarTrigger trigger = Assert.Single(prompt.GrammarTriggers);
        Assert.Equal(("word", "<tool_call>\n"), (trigger.Type, trigger.Value));
        Assert.Equal(["<tool_call>\n"], prompt.TriggerPatterns);
        Assert.Empty(prompt.GrammarPrefill);
        Assert.Contains("<tool_call>", prompt.PreservedTokens);
        Assert.Equal(string.Empty, prompt.GrammarError);
    }

    [Fact]
    public void Hermes_with_tool_choice_required_gives_a_strict_grammar_that_accepts_its_prefill_on_the_tiny_vocabulary()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = s_history, Tools = s_tools, ToolChoice = ChatToolChoice.Required });

        Assert.False(prompt.GrammarLazy);
        Assert.Empty(prompt.GrammarTriggers);
        Assert.Contains("tool-get-weather", prompt.Grammar, StringComparison.Ordinal);
        Assert.Contains("tool-get-time", prompt.Grammar, StringComparison.Ordinal);
        Assert.NotEmpty(prompt.GrammarPrefill);
        Assert.Equal(string.Empty, prompt.GrammarError);
    }

    [Fact]
    public void A_named_tool_choice_constrains_the_grammar_to_that_function()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = s_history, Tools = s_tools, ToolChoice = ChatToolChoice.Function("get_time") });

        Assert.False(prompt.GrammarLazy);
        Assert.Contains("tool-get-time", prompt.Grammar, StringComparison.Ordinal);
        Assert.DoesNotContain("tool-get-weather", prompt.Grammar, StringComparison.Ordinal);
        Assert.Equal(string.Empty, prompt.GrammarError);
    }

    [Fact]
    public void Tool_choice_none_describes_the_tools_but_neither_constrains_nor_parses_calls()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = s_history, Tools = s_tools, ToolChoice = ChatToolChoice.None });

        Assert.Contains("get_weather", prompt.Prompt, StringComparison.Ordinal);
        Assert.Equal(string.Empty, prompt.Grammar);
        ParsedMessage parsed = ChatTemplates.Parse("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}\n</tool_call>", partial: false, prompt.Syntax);
        Assert.Empty(parsed.ToolCalls);
        Assert.Contains("get_time", parsed.Content, StringComparison.Ordinal);
    }

    [Fact]
    public void Llama31_renders_the_call_as_bare_json_and_its_result_as_an_ipython_turn()
    {
        ChatPrompt prompt = Apply(s_llama31.Value, new() { Messages = s_history, Tools = s_tools });

        Assert.Contains("Environment: ipython", prompt.Prompt, StringComparison.Ordinal);
        Assert.Contains("    \"function\": {\n        \"name\": \"get_time\"", prompt.Prompt, StringComparison.Ordinal);
        Assert.Contains("<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>", prompt.Prompt, StringComparison.Ordinal);
        Assert.Contains("<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp\": 21}<|eot_id|>", prompt.Prompt, StringComparison.Ordinal);
        Assert.Equal("<|start_header_id|>assistant<|end_header_id|>\n\n", prompt.GenerationPrompt);
    }

    [Fact]
    public void Llama31_constrains_required_calls_but_has_no_trigger_for_auto_ones()
    {
        // Bare JSON calls have no opening marker, so llama.cpp's auto mode has nothing to trigger a lazy grammar on:
        // it parses calls but does not constrain them (the same for Meta's own Llama 3.1 template in this version).
        ChatPrompt auto = Apply(s_llama31.Value, new() { Messages = s_history, Tools = s_tools, ToolChoice = ChatToolChoice.Auto });
        Assert.Equal(string.Empty, auto.Grammar);

        ChatPrompt required = Apply(s_llama31.Value, new() { Messages = s_history, Tools = s_tools, ToolChoice = ChatToolChoice.Required });
        Assert.False(required.GrammarLazy);
        Assert.Contains("\"\\\"parameters\\\"\"", required.Grammar, StringComparison.Ordinal);
        Assert.Equal(string.Empty, required.GrammarError);
    }

    [Fact]
    public void The_default_generated_model_renders_chatml()
    {
        ChatPrompt prompt = Apply(TestModels.Small, new() { Messages = [new("system", "Be brief."), new("user", "Hi!")] });

        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n", prompt.Prompt);
        Assert.Equal(string.Empty, prompt.Grammar);
    }

    [Theory]
    [InlineData(ChatTemplateLibrary.HermesName, "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "auto")]
    [InlineData(ChatTemplateLibrary.HermesName, "Qwen-Qwen2.5-7B-Instruct.jinja", "required")]
    [InlineData(ChatTemplateLibrary.Llama31Name, "meta-llama-Llama-3.1-8B-Instruct.jinja", "auto")]
    [InlineData(ChatTemplateLibrary.Llama31Name, "meta-llama-Llama-3.1-8B-Instruct.jinja", "required")]
    public void Our_templates_get_the_tool_format_llama_cpp_derives_for_the_real_family(string ours, string real, string choice)
    {
        ChatToolChoice toolChoice = choice == "auto" ? ChatToolChoice.Auto : ChatToolChoice.Required;
        var request = new ChatTemplateRequest { Messages = [new("user", "Hi")], Tools = s_special, ToolChoice = toolChoice };

        ChatPrompt mine = Apply(ours == ChatTemplateLibrary.HermesName ? s_hermes.Value : s_llama31.Value, request);
        ChatPrompt theirs = ApplyLlamaCppTemplate(real, request);

        Assert.Equal(theirs.Format, mine.Format);
        Assert.Equal(theirs.GrammarLazy, mine.GrammarLazy);
        Assert.Equal(theirs.GrammarTriggers, mine.GrammarTriggers);
        Assert.Equal(theirs.PreservedTokens, mine.PreservedTokens);
        Assert.Equal(theirs.AdditionalStops, mine.AdditionalStops);
        Assert.Equal(WithoutRoot(theirs.Grammar), WithoutRoot(mine.Grammar)); // the root starts with each template's generation prompt

        static string[] WithoutRoot(string grammar) => [.. grammar.Split('\n').Where(l => !l.StartsWith("root ::=", StringComparison.Ordinal))];
    }

    [Theory]
    [InlineData("<tool_call>\n{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}}</tool_call>", "")]
    [InlineData("Hello, world!\nWhat's up?<tool_call>\n{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}}</tool_call>", "Hello, world!\nWhat's up?")]
    public void Hermes_2_pro_examples_parse_into_the_call(string output, string content)
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = [new("user", "Hi")], Tools = s_special });

        ParsedMessage parsed = ChatTemplates.Parse(output, partial: false, prompt.Syntax);

        Assert.Equal(content, parsed.Content.Trim());
        ChatToolCall call = Assert.Single(parsed.ToolCalls);
        Assert.Equal(("special_function", """{"arg1": 1}"""), (call.Name, call.Arguments));
    }

    [Theory]
    [InlineData("{\"name\": \"special_function\", \"parameters\": {\"arg1\": 1}}", "", 1)]
    [InlineData("Hello, world!\nWhat's up?", "Hello, world!\nWhat's up?", 0)]
    public void Llama_3_examples_parse_into_content_or_the_call(string output, string content, int calls)
    {
        ChatPrompt prompt = Apply(s_llama31.Value, new() { Messages = [new("user", "Hi")], Tools = s_special });

        ParsedMessage parsed = ChatTemplates.Parse(output, partial: false, prompt.Syntax);

        Assert.Equal(content, parsed.Content.Trim());
        Assert.Equal(calls, parsed.ToolCalls.Count);
        Assert.All(parsed.ToolCalls, c => Assert.Equal(("special_function", """{"arg1": 1}"""), (c.Name, c.Arguments)));
    }

    [Fact]
    public void Mistral_nemo_example_parses_into_the_call_with_its_id()
    {
        ChatPrompt prompt = ApplyLlamaCppTemplate("mistralai-Mistral-Nemo-Instruct-2407.jinja", new() { Messages = [new("user", "Hi")], Tools = s_special });

        ParsedMessage parsed = ChatTemplates.Parse("[TOOL_CALLS][{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}, \"id\": \"123456789\"}]", partial: false, prompt.Syntax);

        Assert.Equal(string.Empty, parsed.Content);
        Assert.Equal(new ChatToolCall("special_function", "123456789", """{"arg1": 1}"""), Assert.Single(parsed.ToolCalls));
        Assert.True(prompt.GrammarLazy);
        Assert.Equal("[TOOL_CALLS]", Assert.Single(prompt.GrammarTriggers).Value);
    }

    [Fact]
    public void Qwq_example_splits_reasoning_from_the_answer()
    {
        ChatPrompt prompt = ApplyLlamaCppTemplate("Qwen-QwQ-32B.jinja", new() { Messages = [new("user", "Hi")] });

        ParsedMessage parsed = ChatTemplates.Parse("Let me think about this...\n</think>\nThe answer is 42.", partial: false, prompt.Syntax);

        Assert.True(prompt.SupportsThinking);
        Assert.EndsWith("<think>\n", prompt.GenerationPrompt, StringComparison.Ordinal); // thinking forced open
        Assert.Equal(("Let me think about this...", "The answer is 42."), (parsed.ReasoningContent.Trim(), parsed.Content.Trim()));
    }

    [Fact]
    public void A_partial_call_parses_without_error_and_names_the_function()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = [new("user", "Hi")], Tools = s_special });

        ParsedMessage parsed = ChatTemplates.Parse("Hello<tool_call>\n{\"name\": \"special_function\", \"arguments\": {\"arg1\": ", partial: true, prompt.Syntax);

        Assert.Equal("Hello", parsed.Content);
        Assert.Equal("special_function", Assert.Single(parsed.ToolCalls).Name);
    }

    [Fact]
    public void A_final_call_of_an_unknown_function_is_a_llama_exception_with_llama_cpps_message()
    {
        ChatPrompt prompt = Apply(s_hermes.Value, new() { Messages = [new("user", "Hi")], Tools = s_special, ToolChoice = ChatToolChoice.Required });
        const string Output = "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}</tool_call>";

        Assert.Empty(ChatTemplates.Parse(Output, partial: true, prompt.Syntax).ToolCalls);
        LlamaException ex = Assert.Throws<LlamaException>(() => ChatTemplates.Parse(Output, partial: false, prompt.Syntax));
        Assert.Contains("does not match the expected peg-native format", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_named_tool_that_is_not_among_the_tools_is_a_llama_exception()
    {
        LlamaException ex = Assert.Throws<LlamaException>(() =>
            Apply(s_hermes.Value, new() { Messages = [new("user", "Hi")], Tools = s_tools, ToolChoice = ChatToolChoice.Function("get_moon") }));
        Assert.Contains("'get_moon'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_template_that_raises_is_a_llama_exception_with_the_templates_message()
    {
        ChatTemplateMessage twoCalls = new("assistant", null)
        {
            ToolCalls = [new ChatToolCall("get_weather", "call_1", """{"city":"Paris"}"""), new ChatToolCall("get_time", "call_2", """{"zone":"CET"}""")],
        };

        LlamaException ex = Assert.Throws<LlamaException>(() => Apply(s_llama31.Value, new() { Messages = [new("user", "Hi"), twoCalls, new("user", "Thanks")], Tools = s_tools }));
        Assert.Contains("one tool call per assistant turn", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_broken_template_is_a_llama_exception_with_the_jinja_error()
    {
        using LlamaModel model = LlamaModel.Load(s_hermes.Value, new LlamaModelLoadOptions { VocabularyOnly = true });
        LlamaException ex = Assert.Throws<LlamaException>(() => ChatTemplates.Create(model, "{% for x in %}{% endfor %}"));
        Assert.Contains("Unexpected token", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Writes a one-layer model with the given template and the native build's SentencePiece vocabulary.</summary>
    internal static TinyLlamaModelOptions Tiny(string template) => new()
    {
        Layers = 1,
        EmbeddingLength = 64,
        FeedForwardLength = 64,
        HeadCount = 2,
        KvHeadCount = 2,
        VocabularyPath = TestModels.VocabularyPath,
        ChatTemplate = template,
    };

    internal static ChatPrompt Apply(string modelPath, ChatTemplateRequest request, string? templateOverride = null)
    {
        using LlamaModel model = LlamaModel.Load(modelPath, new LlamaModelLoadOptions { VocabularyOnly = true });
        using ChatTemplates templates = ChatTemplates.Create(model, templateOverride);
        return templates.Apply(request);
    }

    // Real model templates from the llama.cpp source the native build compiled (its models/templates folder).
    private static ChatPrompt ApplyLlamaCppTemplate(string file, ChatTemplateRequest request)
    {
        string flavor = Path.GetFileName(NativeLibraryLoader.Directory).EndsWith("-cuda", StringComparison.Ordinal) ? "cuda" : "cpu";
        string path = Path.Combine(NativeLibraryLoader.CacheRoot(), $"work-{NativeLibraryLoader.NodeLlamaCppVersion}-{flavor}", "src", "models", "templates", file);
        Assert.True(File.Exists(path), $"The llama.cpp source of the native build is needed for {file} (looked at {path}).");
        return Apply(s_hermes.Value, request, File.ReadAllText(path));
    }
}
