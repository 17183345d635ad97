using System.ClientModel;
using System.Globalization;
using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Stages;
using LlmPq.Tests.Chat;
using LlmPq.Tests.Native;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging.Abstractions;
using OpenAI;
using OpenAI.Chat;

namespace LlmPq.Tests.Cli;

/// <summary>
/// Tools end to end: <c>llmpq serve</c> as a process on a generated Hermes-template model, the OpenAI .NET SDK as the
/// client; and tool declarations crossing a pipeline's runner process.
/// </summary>
[Collection(NativeTests.Name)]
public sealed class ServeToolTests
{
    private static ChatTool Weather => ChatTool.CreateFunctionTool(
        "get_weather", "The weather of a city.", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string","enum":["Oslo","Lima"]}},"required":["city"]}"""));

    private static ChatTool Time => ChatTool.CreateFunctionTool(
        "get_time", "The time now.", BinaryData.FromString("""{"type":"object","properties":{"utc":{"type":"boolean"}},"required":["utc"]}"""));

    [Fact]
    public async Task The_openai_sdk_gets_required_and_named_calls_streamed_deltas_and_answers_a_tool_result_turn()
    {
        int port = Loopback.FreePort();
        string model = ToolCallingTests.ModelPath(ChatTemplateLibrary.HermesName);
        string[] arguments = [Path.Combine(AppContext.BaseDirectory, "llmpq.dll"), "serve", "--model", model, "--port", port.ToString(CultureInfo.InvariantCulture), "--ctx", "1024", "--threads", "2"];
        await using ChildProcess server = await ChildProcess.StartAsync("dotnet", arguments, NullLogger.Instance);
        var baseUri = new Uri($"http://127.0.0.1:{port}/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        await server.WaitUntilAsync(ct => OpenAITarget.IsHealthyAsync(http, baseUri, ct), "answered /health", TimeSpan.FromSeconds(60), CancellationToken.None);
        var sdk = new ChatClient(Path.GetFileNameWithoutExtension(model), new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(baseUri, "v1") });

        // Required: any tool, a valid call.
        var required = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateRequiredChoice(), MaxOutputTokenCount = 96 };
        required.Tools.Add(Weather);
        required.Tools.Add(Time);
        ChatCompletion call = await sdk.CompleteChatAsync([new UserChatMessage("Weather in Oslo?")], required);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, call.FinishReason);
        ChatToolCall first = call.ToolCalls[0];
        Assert.True(first.FunctionName is "get_weather" or "get_time", first.FunctionName);
        using (JsonDocument args = JsonDocument.Parse(first.FunctionArguments))
        {
            Assert.Equal(JsonValueKind.Object, args.RootElement.ValueKind);
        }

        // Named, one call, streamed: the deltas assemble into it.
        var named = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateFunctionChoice("get_time"), AllowParallelToolCalls = false, MaxOutputTokenCount = 96 };
        named.Tools.Add(Weather);
        named.Tools.Add(Time);
        var parts = new Dictionary<int, (string? Id, string? Name, string Arguments)>();
        await foreach (StreamingChatCompletionUpdate update in sdk.CompleteChatStreamingAsync([new UserChatMessage("What time is it?")], named))
        {
            foreach (StreamingChatToolCallUpdate delta in update.ToolCallUpdates)
            {
                (string? id, string? name, string text) = parts.GetValueOrDefault(delta.Index, (null, null, string.Empty));
                parts[delta.Index] = (id ?? delta.ToolCallId, name ?? delta.FunctionName, text + delta.FunctionArgumentsUpdate?.ToString());
            }
        }

        (string? callId, string? callName, string callArguments) = Assert.Single(parts).Value;
        Assert.Equal("get_time", callName);
        Assert.False(string.IsNullOrEmpty(callId));
        using (JsonDocument args = JsonDocument.Parse(callArguments))
        {
            Assert.Contains(args.RootElement.GetProperty("utc").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        }

        // The tool result turn is rendered and answered.
        OpenAI.Chat.ChatMessage[] history =
        [
            new UserChatMessage("What time is it?"),
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall(callId, "get_time", BinaryData.FromString(callArguments))]),
            new ToolChatMessage(callId, "12:00 UTC"),
        ];
        var after = new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 };
        after.Tools.Add(Time);
        ChatCompletion answer = await sdk.CompleteChatAsync(history, after);
        Assert.True(answer.Usage.InputTokenCount > 0);
        Assert.Equal(answer.Usage.OutputTokenCount, answer.ContentTokenLogProbabilities.Count);
        Assert.All(answer.ContentTokenLogProbabilities, t => Assert.Equal(2, t.TopLogProbabilities.Count));
        Assert.NotEqual(OpenAI.Chat.ChatFinishReason.ToolCalls, answer.FinishReason);
    }

    [Fact]
    public async Task Tool_declarations_cross_the_runner_process_of_a_pipeline()
    {
        string model = TestModels.Write("tools-hermes-2l", ChatTemplateTests.Tiny(ChatTemplateLibrary.Hermes) with { Layers = 2 });
        var options = new LlmPqOptions { ModelPath = model, ContextLength = 512, MaxSequences = 2 };
        options.Stages.Add(new LlmPqStageOptions { Layers = 1, Device = "CPU", Threads = 1 });
        options.Stages.Add(new LlmPqStageOptions { Layers = 1, Device = "CPU", Threads = 1 });
        await using LlmPqChatClient client = LlmPqChatClient.Create(options);
        await client.StartAsync();
        Assert.NotNull(client.GetService<LlmPq.Runner.LlmPqPipeline>());

        AIFunctionDeclaration time = AIFunctionFactory.CreateDeclaration("get_time", "The time now.", JsonDocument.Parse("""{"type":"object","properties":{"utc":{"type":"boolean"}},"required":["utc"]}""").RootElement);
        ChatResponse response = await client.GetResponseAsync(
            "What time is it?", new ChatOptions { Tools = [time], ToolMode = ChatToolMode.RequireSpecific("get_time"), MaxOutputTokens = 96, Seed = 4 });

        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.ToolCalls, response.FinishReason);
        FunctionCallContent call = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().First();
        Assert.Equal("get_time", call.Name);
        Assert.Null(call.Exception);
    }
}
