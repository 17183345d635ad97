// Two agents over LlmPq's IChatClient, in process, on a generated model whose chat template is a Hermes-style
// tool-call template (make-model --chat-template hermes):
//
//   dotnet run --project samples/Agents                                        # the generated tiny model
//   dotnet run --project samples/Agents -- /path/to/model.gguf                 # a real model with a tool-call template
//
// 1. Semantic Kernel: a kernel with a plugin of [KernelFunction]s; FunctionChoiceBehavior.Required() makes the model
//    call one, the kernel invokes it and sends the result back; then Auto() lets the model choose.
// 2. Agent Framework: a ChatClientAgent with a tool and a session of several turns.
//
// The generated model's weights are random: its words are nonsense, and the arguments it picks are whatever it
// samples within the tools' schemas. The plumbing is real: llama.cpp's chat layer renders the tools into the
// prompt, its grammar makes the output a well-formed call, its parser reads the call, and the frameworks invoke
// your .NET functions and carry their results into the next turn.
using System.ComponentModel;
using LlmPq;
using LlmPq.Gguf;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using FunctionCallContent = Microsoft.Extensions.AI.FunctionCallContent;
using FunctionResultContent = Microsoft.Extensions.AI.FunctionResultContent;
using TextContent = Microsoft.Extensions.AI.TextContent;

string model = args.Length > 0 ? args[0] : TinyModel();
Console.WriteLine($"model: {model}");
Console.WriteLine("(random weights answer nonsense; the tool calls, their invocation and the results are real)\n");

await SemanticKernelAsync(model);
await AgentFrameworkAsync(model);

// Semantic Kernel's usual pattern, no generic host: the first request starts the engine.
static async Task SemanticKernelAsync(string model)
{
    Console.WriteLine("== Semantic Kernel ==");
    IKernelBuilder builder = Kernel.CreateBuilder();
    builder.Services.AddLlmPqChatClient(o => o.ModelPath = model).UseKernelFunctionInvocation();
    builder.Plugins.AddFromType<TravelPlugin>("travel");
    Kernel kernel = builder.Build();

    var required = new PromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Required(), ExtensionData = new Dictionary<string, object> { ["max_tokens"] = 160, ["seed"] = 3 } };
    FunctionResult answer = await kernel.InvokePromptAsync("Is it a good day to visit Oslo?", new KernelArguments(required));
    Console.WriteLine($"model, after the tool: {answer.GetValue<string>()?.ReplaceLineEndings(" ")[..Math.Min(120, answer.GetValue<string>()?.Length ?? 0)]}…");

    var auto = new PromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto(), ExtensionData = new Dictionary<string, object> { ["max_tokens"] = 32, ["seed"] = 4 } };
    answer = await kernel.InvokePromptAsync("And Lima?", new KernelArguments(auto));
    Console.WriteLine($"model, free to choose: {answer.GetValue<string>()?.ReplaceLineEndings(" ")}\n");
    await ((IAsyncDisposable)kernel.Services).DisposeAsync();
}

// The Agent Framework over LlmPqChatClient.Create: a chat client that owns its engine.
static async Task AgentFrameworkAsync(string model)
{
    Console.WriteLine("== Agent Framework ==");
    await using LlmPqChatClient chat = LlmPqChatClient.Create(new LlmPqOptions { ModelPath = model });
    AIAgent agent = new ChatClientAgent(
        chat,
        instructions: "You plan trips. Use the tools.",
        name: "planner",
        tools: [AIFunctionFactory.Create(TravelPlugin.Forecast, "forecast", "Tomorrow's weather in a city.")]);
    AgentSession session = await agent.CreateSessionAsync();

    string[] turns = ["What will the weather be in Kyoto?", "Then what should I pack?", "Thanks!"];
    for (int i = 0; i < turns.Length; i++)
    {
        // The first turn must call the tool; later turns may.
        var options = new ChatOptions { ToolMode = i == 0 ? ChatToolMode.RequireAny : ChatToolMode.Auto, MaxOutputTokens = i == 0 ? 160 : 24, Seed = 7 + i };
        AgentResponse response = await agent.RunAsync(turns[i], session, new ChatClientAgentRunOptions(options));
        Console.WriteLine($"user:  {turns[i]}");
        foreach (ChatMessage message in response.Messages)
        {
            foreach (AIContent content in message.Contents)
            {
                Console.WriteLine(content switch
                {
                    FunctionCallContent call => $"call:  {call.Name}({string.Join(", ", call.Arguments?.Select(a => $"{a.Key}: {a.Value}") ?? [])})",
                    FunctionResultContent result => $"tool:  {result.Result}",
                    TextContent text when text.Text.Length > 0 => $"agent: {text.Text.ReplaceLineEndings(" ")}",
                    _ => null,
                });
            }
        }
    }
}

static string TinyModel()
{
    string path = Path.Combine(Path.GetTempPath(), "llmpq-samples", "agents-hermes.gguf");
    if (!File.Exists(path))
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        TinyLlamaModel.Write(path, new TinyLlamaModelOptions { Layers = 4, ChatTemplate = ChatTemplateLibrary.Hermes });
    }

    return path;
}

/// <summary>The tools: plain .NET methods the model calls through the frameworks.</summary>
internal sealed class TravelPlugin
{
    public enum City
    {
        Oslo,
        Lima,
        Kyoto,
    }

    [KernelFunction("weather_today")]
    [Description("Whether today is sunny in Oslo.")]
    public static string WeatherToday([Description("Answer in Celsius, else Fahrenheit.")] bool celsius)
    {
        Console.WriteLine($"kernel invoked weather_today(celsius: {celsius})");
        return celsius ? "Oslo: sunny, 21 °C" : "Oslo: sunny, 70 °F";
    }

    public static string Forecast([Description("The city.")] City city) => city switch
    {
        City.Oslo => "Oslo tomorrow: rain, 12 °C",
        City.Lima => "Lima tomorrow: fog, 17 °C",
        _ => "Kyoto tomorrow: clear, 24 °C",
    };
}
