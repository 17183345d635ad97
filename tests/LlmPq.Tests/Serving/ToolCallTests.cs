using System.ClientModel;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using ChatFinishReason = Microsoft.Extensions.AI.ChatFinishReason;
using ChatMessage = OpenAI.Chat.ChatMessage;

namespace LlmPq.Tests.Serving;

/// <summary>Tools through <c>llmpq serve</c>'s protocol, with the OpenAI .NET SDK as the client.</summary>
public sealed class ToolCallTests
{
    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";

    private static ChatTool Weather => ChatTool.CreateFunctionTool("get_weather", "Weather of a city.", BinaryData.FromString(WeatherSchema));

    private static FakeChatClient CallingClient() => new()
    {
        FinishReason = ChatFinishReason.ToolCalls,
        ToolCalls =
        [
            new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Oslo" }),
            new FunctionCallContent("call_2", "get_weather", new Dictionary<string, object?> { ["city"] = "Lima" }),
        ],
    };

    private static OpenAI.Chat.ChatClient Sdk(RunningServer server) =>
        new(FakeChatClient.Model, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "v1") });

    [Fact]
    public async Task Tools_and_a_named_tool_choice_reach_the_chat_client_as_declarations_and_a_mode()
    {
        await using var server = await RunningServer.StartAsync(CallingClient());
        var options = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather"), AllowParallelToolCalls = false };
        options.Tools.Add(Weather);

        await Sdk(server).CompleteChatAsync([new UserChatMessage("Weather in Oslo?")], options);

        ChatOptions received = server.Client.ReceivedOptions!;
        AIFunctionDeclaration tool = Assert.IsAssignableFrom<AIFunctionDeclaration>(Assert.Single(received.Tools!));
        Assert.Equal("get_weather", tool.Name);
        Assert.Equal("Weather of a city.", tool.Description);
        Assert.Equal("string", tool.JsonSchema.GetProperty("properties").GetProperty("city").GetProperty("type").GetString());
        Assert.Equal("get_weather", Assert.IsType<RequiredChatToolMode>(received.ToolMode).RequiredFunctionName);
        Assert.False(received.AllowMultipleToolCalls);
    }

    [Fact]
    public async Task Tool_calls_come_back_with_finish_reason_tool_calls_and_parse_in_the_sdk()
    {
        await using var server = await RunningServer.StartAsync(CallingClient());
        var options = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateRequiredChoice() };
        options.Tools.Add(Weather);

        ChatCompletion completion = await Sdk(server).CompleteChatAsync([new UserChatMessage("Weather?")], options);

        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, completion.FinishReason);
        Assert.Equal(["call_1", "call_2"], completion.ToolCalls.Select(c => c.Id));
        Assert.Equal("Lima", JsonDocument.Parse(completion.ToolCalls[1].FunctionArguments).RootElement.GetProperty("city").GetString());
        Assert.IsType<RequiredChatToolMode>(server.Client.ReceivedOptions!.ToolMode);
    }

    [Fact]
    public async Task Streamed_tool_call_deltas_assemble_into_the_calls()
    {
        await using var server = await RunningServer.StartAsync(CallingClient());
        var options = new ChatCompletionOptions();
        options.Tools.Add(Weather);

        var builder = new Dictionary<int, (string? Id, string? Name, string Arguments)>();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (StreamingChatCompletionUpdate update in Sdk(server).CompleteChatStreamingAsync([new UserChatMessage("Weather?")], options))
        {
            foreach (StreamingChatToolCallUpdate call in update.ToolCallUpdates)
            {
                (string? id, string? name, string args) = builder.GetValueOrDefault(call.Index, (null, null, string.Empty));
                builder[call.Index] = (id ?? call.ToolCallId, name ?? call.FunctionName, args + call.FunctionArgumentsUpdate?.ToString());
            }

            finish = update.FinishReason ?? finish;
        }

        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
        Assert.Equal(2, builder.Count);
        Assert.Equal(("call_1", "get_weather"), (builder[0].Id, builder[0].Name));
        Assert.Equal("Oslo", JsonDocument.Parse(builder[0].Arguments).RootElement.GetProperty("city").GetString());
    }

    [Fact]
    public async Task A_tool_result_turn_reaches_the_client_as_function_call_and_result_contents()
    {
        await using var server = await RunningServer.StartAsync();
        var options = new ChatCompletionOptions();
        options.Tools.Add(Weather);
        ChatMessage[] history =
        [
            new UserChatMessage("Weather in Oslo?"),
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_9", "get_weather", BinaryData.FromString("""{"city":"Oslo"}"""))]),
            new ToolChatMessage("call_9", "Sunny, 21 °C"),
        ];

        ChatCompletion completion = await Sdk(server).CompleteChatAsync(history, options);

        Assert.Equal(string.Concat(FakeChatClient.Pieces), completion.Content[0].Text);
        IReadOnlyList<Microsoft.Extensions.AI.ChatMessage> received = server.Client.ReceivedMessages!;
        FunctionCallContent call = Assert.IsType<FunctionCallContent>(Assert.Single(received[1].Contents));
        Assert.Equal(("call_9", "get_weather"), (call.CallId, call.Name));
        Assert.Equal("Oslo", ((JsonElement)call.Arguments!["city"]!).GetString());
        FunctionResultContent result = Assert.IsType<FunctionResultContent>(Assert.Single(received[2].Contents));
        Assert.Equal("call_9", result.CallId);
        Assert.Equal("Sunny, 21 °C", result.Result);
    }

    [Fact]
    public async Task Reasoning_is_returned_as_reasoning_content()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { Reasoning = "Think first." });

        JsonElement completion = await server.PostChatJsonAsync("""{"messages":[{"role":"user","content":"Hi"}]}""");

        JsonElement message = completion.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("Think first.", message.GetProperty("reasoning_content").GetString());
        Assert.Equal(string.Concat(FakeChatClient.Pieces), message.GetProperty("content").GetString());
    }

    [Theory]
    [InlineData("""{"tools":"get_weather"}""", "tools")]
    [InlineData("""{"tools":["get_weather"]}""", "tools[0]")]
    [InlineData("""{"tools":[{"type":"retrieval"}]}""", "tools[0].type")]
    [InlineData("""{"tools":[{"type":"function","function":{"name":"has space"}}]}""", "tools[0].function.name")]
    [InlineData("""{"tools":[{"type":"function","function":{"name":"f","parameters":"string"}}]}""", "tools[0].function.parameters")]
    [InlineData("""{"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}""", "tools")]
    [InlineData("""{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}""", "tool_choice")]
    [InlineData("""{"tool_choice":"required"}""", "tool_choice")]
    [InlineData("""{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}""", "tool_choice")]
    public async Task Bad_tool_input_is_a_400_that_names_the_field(string fields, string param)
    {
        await using var server = await RunningServer.StartAsync();
        string body = fields[..^1] + ""","messages":[{"role":"user","content":"Hi"}]}""";

        JsonElement error = (await server.PostChatJsonAsync(body, expectedStatus: (int)HttpStatusCode.BadRequest)).GetProperty("error");

        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("""{"role":"tool","content":"x"}""", "messages[1].tool_call_id")]
    [InlineData("""{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{not json"}}]}""", "messages[1].tool_calls[0].function.arguments")]
    [InlineData("""{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"arguments":"{}"}}]}""", "messages[1].tool_calls[0].function.name")]
    public async Task Bad_tool_messages_are_a_400_that_names_the_field(string message, string param)
    {
        await using var server = await RunningServer.StartAsync();
        string body = $$"""{"messages":[{"role":"user","content":"Hi"},{{message}}]}""";

        JsonElement error = (await server.PostChatJsonAsync(body, expectedStatus: (int)HttpStatusCode.BadRequest)).GetProperty("error");

        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cached_prompt_tokens_are_reported_and_cache_prompt_false_reaches_the_client(bool stream)
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { CachedTokens = 7 });
        using HttpResponseMessage response = await server.PostChatAsync($$"""{"messages":[{"role":"user","content":"Hi"}],"cache_prompt":false,"stream":{{(stream ? "true" : "false")}}}""");
        string body = await response.Content.ReadAsStringAsync();

        Assert.Equal(false, server.Client.ReceivedOptions!.AdditionalProperties!["cache_prompt"]);
        Assert.Contains("\"prompt_tokens_details\":{\"cached_tokens\":7}", body, StringComparison.Ordinal);
    }
}
