using System.ComponentModel;
using System.Text.Json;
using LlmPq.Chat;
using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Tests.Native;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Chat;

/// <summary>
/// Tools through LlmPqChatClient on generated models with real tool-call templates (random weights: the calls are
/// forced by llama.cpp's grammar, their argument values are whatever the model samples within the schema).
/// </summary>
[Collection(NativeTests.Name)]
public sealed class ToolCallingTests
{
    private static readonly Lazy<string> s_hermes = new(() => TestModels.Write("tools-hermes", ChatTemplateTests.Tiny(ChatTemplateLibrary.Hermes)));
    private static readonly Lazy<string> s_llama31 = new(() => TestModels.Write("tools-llama31", ChatTemplateTests.Tiny(ChatTemplateLibrary.Llama31)));

    public static TheoryData<string> Templates => [ChatTemplateLibrary.HermesName, ChatTemplateLibrary.Llama31Name];

    // Bounded arguments: random weights write free-form strings until the output limit.
    private static AIFunction Weather { get; } = AIFunctionFactory.Create(
        ([Description("The city.")] City city) => $"Sunny in {city}, 21 °C", "get_weather", "The current weather of a city.");

    private static AIFunction Time { get; } = AIFunctionFactory.Create(
        (bool utc) => utc ? "12:00 UTC" : "13:00", "get_time", "The time now.");

    [Theory]
    [MemberData(nameof(Templates))]
    public async Task A_required_call_is_a_function_call_whose_arguments_follow_the_schema(string template)
    {
        await using LlmPqChatClient client = await StartAsync(template);

        ChatResponse response = await client.GetResponseAsync(
            "What is the weather in Oslo?",
            new ChatOptions { Tools = [Weather, Time], ToolMode = ChatToolMode.RequireAny, Seed = 3, MaxOutputTokens = 96 });

        Assert.Equal(ChatFinishReason.ToolCalls, response.FinishReason);
        FunctionCallContent call = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().First();
        Assert.Null(call.Exception);
        Assert.False(string.IsNullOrEmpty(call.CallId));
        if (call.Name == "get_weather")
        {
            Assert.Contains(((JsonElement)call.Arguments!["city"]!).GetString(), Enum.GetNames<City>());
        }
        else
        {
            Assert.Equal("get_time", call.Name);
            Assert.Contains(((JsonElement)call.Arguments!["utc"]!).ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        }
    }

    [Theory]
    [MemberData(nameof(Templates))]
    public async Task A_named_call_calls_that_function_once_when_parallel_calls_are_off(string template)
    {
        await using LlmPqChatClient client = await StartAsync(template);

        ChatResponse response = await client.GetResponseAsync(
            "What time is it?",
            new ChatOptions { Tools = [Weather, Time], ToolMode = ChatToolMode.RequireSpecific("get_time"), AllowMultipleToolCalls = false, Seed = 5, MaxOutputTokens = 96 });

        FunctionCallContent call = Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_time", call.Name);
        Assert.Contains(((JsonElement)call.Arguments!["utc"]!).ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
    }

    [Theory]
    [MemberData(nameof(Templates))]
    public async Task Streaming_sends_each_call_whole_once(string template)
    {
        await using LlmPqChatClient client = await StartAsync(template);

        var calls = new List<FunctionCallContent>();
        ChatFinishReason? finish = null;
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(
            "Weather?", new ChatOptions { Tools = [Weather], ToolMode = ChatToolMode.RequireAny, Seed = 7, MaxOutputTokens = 96 }))
        {
            calls.AddRange(update.Contents.OfType<FunctionCallContent>());
            finish = update.FinishReason ?? finish;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.NotEmpty(calls);
        Assert.All(calls, c => Assert.Equal("get_weather", c.Name));
        Assert.Equal(calls.Count, calls.Select(c => c.CallId).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Templates))]
    public async Task A_history_with_calls_and_results_from_another_provider_is_rendered_by_the_template(string template)
    {
        await using LlmPqChatClient client = await StartAsync(template);
        ChatMessage[] history =
        [
            new(ChatRole.System, "You answer with the tools' results."),
            new(ChatRole.User, "Weather in Lima?"),
            new(ChatRole.Assistant, [new TextReasoningContent("The user wants weather."), new FunctionCallContent("call_abc", "get_weather", new Dictionary<string, object?> { ["city"] = "Lima" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_abc", "Foggy, 17 °C")]),
        ];

        string prompt = Prompt(client, history, new ChatOptions { Tools = [Weather] });
        ChatResponse answer = await client.GetResponseAsync(history, new ChatOptions { Tools = [Weather], Temperature = 0, MaxOutputTokens = 4 });

        Assert.Contains("Foggy, 17 °C", prompt, StringComparison.Ordinal);
        Assert.Contains("get_weather", prompt, StringComparison.Ordinal);
        Assert.Contains("Lima", prompt, StringComparison.Ordinal);
        Assert.NotNull(answer.FinishReason);
    }

    [Fact]
    public async Task Tool_mode_none_describes_no_grammar_and_answers_in_text()
    {
        await using LlmPqChatClient client = await StartAsync(ChatTemplateLibrary.HermesName);

        ChatResponse response = await client.GetResponseAsync("Weather?", new ChatOptions { Tools = [Weather], ToolMode = ChatToolMode.None, Temperature = 0, MaxOutputTokens = 8 });

        Assert.Empty(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.NotEqual(ChatFinishReason.ToolCalls, response.FinishReason);
    }

    [Fact]
    public async Task A_tool_schema_llama_cpp_cannot_turn_into_a_grammar_is_a_request_error_with_its_reason()
    {
        await using LlmPqChatClient client = await StartAsync(ChatTemplateLibrary.HermesName);
        AIFunctionDeclaration broken = AIFunctionFactory.CreateDeclaration(
            "lookup", "Looks up.", JsonDocument.Parse("""{"type":"object","properties":{"key":{"$ref":"#/$defs/missing"}},"required":["key"]}""").RootElement);

        LlmPqRequestException ex = await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync(
            "Hi", new ChatOptions { Tools = [broken], ToolMode = ChatToolMode.RequireAny, MaxOutputTokens = 4 }));

        Assert.Contains("missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_required_function_that_was_not_given_is_a_request_error_naming_it()
    {
        await using LlmPqChatClient client = await StartAsync(ChatTemplateLibrary.HermesName);

        LlmPqRequestException ex = await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync(
            "Hi", new ChatOptions { Tools = [Weather], ToolMode = ChatToolMode.RequireSpecific("launch_rocket") }));

        Assert.Contains("launch_rocket", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Function_invocation_middleware_completes_the_loop_over_llmpq()
    {
        await using LlmPqChatClient llmpq = await StartAsync(ChatTemplateLibrary.HermesName);
        int invoked = 0;
        AIFunction weather = AIFunctionFactory.Create((City city) => { invoked++; return $"Sunny in {city}"; }, "get_weather", "The current weather of a city.");
        using IChatClient client = llmpq.AsBuilder().UseFunctionInvocation().Build();

        ChatResponse response = await client.GetResponseAsync(
            "What is the weather in Oslo?", new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.RequireAny, Seed = 11, MaxOutputTokens = 48 });

        Assert.True(invoked >= 1);
        FunctionResultContent result = response.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>().First();
        Assert.StartsWith("Sunny in ", result.Result?.ToString(), StringComparison.Ordinal);
        Assert.Equal(ChatRole.Assistant, response.Messages[^1].Role);
        Assert.NotEqual(ChatFinishReason.ToolCalls, response.FinishReason);
    }

    [Fact]
    public async Task A_template_from_the_options_replaces_the_models_and_a_broken_one_fails_the_start_with_llama_cpps_reason()
    {
        string file = TestModels.TempPath("template.jinja");
        await File.WriteAllTextAsync(file, "{% for m in messages %}<<{{ m.role }}>>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<<assistant>>{% endif %}");
        await using (var client = LlmPqChatClient.Create(new LlmPqOptions { ModelPath = s_hermes.Value, ContextLength = 512, ChatTemplate = file }))
        {
            await client.StartAsync();
            Assert.Contains("<<user>>Hello<<assistant>>", Prompt(client, [new(ChatRole.User, "Hello")], new ChatOptions()), StringComparison.Ordinal);
        }

        await using var broken = LlmPqChatClient.Create(new LlmPqOptions { ModelPath = s_hermes.Value, ContextLength = 512, ChatTemplate = "{% for m in messages %}" });
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => broken.StartAsync());
        Assert.Contains("chat template", ex.Message, StringComparison.Ordinal);
    }

    internal static async Task<LlmPqChatClient> StartAsync(string template)
    {
        var client = LlmPqChatClient.Create(new LlmPqOptions
        {
            ModelPath = ModelPath(template),
            ContextLength = 1024,
            Threads = 2,
            MaxSequences = 2,
        });
        await client.StartAsync();
        return client;
    }

    internal static string ModelPath(string template) => template == ChatTemplateLibrary.HermesName ? s_hermes.Value : s_llama31.Value;

    internal static string Prompt(LlmPqChatClient client, IEnumerable<ChatMessage> messages, ChatOptions options)
    {
        EngineChatClient engine = client.GetService<EngineChatClient>()!;
        LlmPq.Engine.LlmPqEngine llm = client.GetService<LlmPq.Engine.LlmPqEngine>()!;
        return llm.Model.Detokenize([.. engine.CreateRequest(messages, options).Prompt], unparseSpecial: true);
    }

    public enum City
    {
        Oslo,
        Lima,
        Kyoto,
    }
}
