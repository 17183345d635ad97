using System.Text.Json;
using LlmPq.Runner;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Runner;

public sealed class RunnerProtocolTests
{
    [Fact]
    public void Tools_cross_the_runner_socket_as_declarations_and_the_history_keeps_calls_and_results()
    {
        AIFunction weather = AIFunctionFactory.Create((string city) => $"Sunny in {city}", "get_weather", "Weather of a city.");
        var options = new ChatOptions { Tools = [weather], ToolMode = ChatToolMode.RequireSpecific("get_weather"), AllowMultipleToolCalls = false, MaxOutputTokens = 9 };
        ChatMessage[] history =
        [
            new(ChatRole.User, "Weather in Oslo?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Oslo" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "Sunny")]),
        ];

        string line = JsonSerializer.Serialize(RunnerProtocol.Request.For(history, options), RunnerProtocol.Json);
        RunnerProtocol.Request received = JsonSerializer.Deserialize<RunnerProtocol.Request>(line, RunnerProtocol.Json)!;
        ChatOptions runnerOptions = received.ToOptions()!;

        AIFunctionDeclaration tool = Assert.IsAssignableFrom<AIFunctionDeclaration>(Assert.Single(runnerOptions.Tools!));
        Assert.IsNotAssignableFrom<AIFunction>(tool); // a declaration: nothing to invoke in the runner
        Assert.Equal(("get_weather", "Weather of a city."), (tool.Name, tool.Description));
        Assert.Equal(weather.JsonSchema.GetRawText(), tool.JsonSchema.GetRawText());
        Assert.Equal("get_weather", Assert.IsType<RequiredChatToolMode>(runnerOptions.ToolMode).RequiredFunctionName);
        Assert.False(runnerOptions.AllowMultipleToolCalls);
        Assert.Equal(9, runnerOptions.MaxOutputTokens);
        FunctionCallContent call = Assert.IsType<FunctionCallContent>(Assert.Single(received.Messages![1].Contents));
        Assert.Equal(("call_1", "get_weather", "Oslo"), (call.CallId, call.Name, ((JsonElement)call.Arguments!["city"]!).GetString()));
        Assert.Equal("call_1", Assert.IsType<FunctionResultContent>(Assert.Single(received.Messages[2].Contents)).CallId);
        Assert.Same(weather, Assert.Single(options.Tools!)); // the caller's options are untouched
    }
}
