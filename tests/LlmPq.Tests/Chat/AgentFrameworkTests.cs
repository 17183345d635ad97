using System.ComponentModel;
using LlmPq.Gguf;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using FunctionResultContent = Microsoft.Extensions.AI.FunctionResultContent;

namespace LlmPq.Tests.Chat;

/// <summary>Semantic Kernel and the Agent Framework, unchanged, over LlmPq's IChatClient on a generated Hermes-template model.</summary>
[Collection(NativeTests.Name)]
public sealed class AgentFrameworkTests
{
    [Fact]
    public async Task A_semantic_kernel_function_is_invoked_through_FunctionChoiceBehavior_Required()
    {
        // The usual Semantic Kernel pattern: no generic host (the first request starts the engine), and the kernel's
        // function invocation as middleware of the IChatClient pipeline.
        IKernelBuilder builder = Kernel.CreateBuilder();
        builder.Services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = ToolCallingTests.ModelPath(ChatTemplateLibrary.HermesName);
            o.ContextLength = 1024;
            o.Threads = 2;
        }).UseKernelFunctionInvocation(); // Semantic Kernel's auto-invocation is middleware on the returned builder
        var weather = new WeatherPlugin();
        builder.Plugins.AddFromObject(weather, "weather");
        Kernel kernel = builder.Build();

        var settings = new PromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Required(), ExtensionData = new Dictionary<string, object> { ["max_tokens"] = 200, ["seed"] = 3 } };
        FunctionResult result = await kernel.InvokePromptAsync("What is the weather in Oslo?", new KernelArguments(settings));

        Assert.NotEmpty(weather.Calls);
        Assert.NotNull(result.GetValue<string>());
        await ((IAsyncDisposable)kernel.Services).DisposeAsync();
    }

    [Fact]
    public async Task A_chat_client_agent_calls_its_tool_and_keeps_a_multi_turn_session()
    {
        await using LlmPqChatClient llmpq = await ToolCallingTests.StartAsync(ChatTemplateLibrary.HermesName);
        var calls = new List<string>();
        AIFunction weather = AIFunctionFactory.Create(
            ([Description("The city.")] ToolCallingTests.City city) => { calls.Add(city.ToString()); return $"Sunny in {city}"; },
            "get_weather",
            "The current weather of a city.");
        AIAgent agent = new ChatClientAgent(llmpq, instructions: "You report the weather.", name: "forecaster", tools: [weather]);
        AgentSession session = await agent.CreateSessionAsync();
        var forced = new ChatClientAgentRunOptions(new ChatOptions { ToolMode = ChatToolMode.RequireAny, MaxOutputTokens = 48, Seed = 5 });

        AgentResponse first = await agent.RunAsync("Weather in Oslo?", session, forced);
        AgentResponse second = await agent.RunAsync("And tomorrow?", session, new ChatClientAgentRunOptions(new ChatOptions { MaxOutputTokens = 8, Temperature = 0 }));

        Assert.NotEmpty(calls);
        Assert.Contains(first.Messages.SelectMany(m => m.Contents), c => c is FunctionResultContent);
        Assert.NotEmpty(second.Messages);

        // The second turn saw the first: the session's history went into its prompt.
        ChatMessage[] history = [.. first.Messages, new ChatMessage(ChatRole.User, "And tomorrow?")];
        Assert.Contains("Sunny in", ToolCallingTests.Prompt(llmpq, history, new ChatOptions { Tools = [weather] }), StringComparison.Ordinal);
    }

    /// <summary>A Semantic Kernel plugin: what the model calls (a bool argument: Semantic Kernel binds no enum from JSON).</summary>
    public sealed class WeatherPlugin
    {
        public List<bool> Calls { get; } = [];

        [KernelFunction("get_weather")]
        [Description("The current weather in Oslo.")]
        public string GetWeather([Description("Celsius, else Fahrenheit.")] bool celsius)
        {
            Calls.Add(celsius);
            return celsius ? "Sunny, 21 °C" : "Sunny, 70 °F";
        }
    }
}
