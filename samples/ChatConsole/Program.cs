// A console chat over LlmPq on the generic host: replies stream token by token, the conversation is kept,
// /reset starts over, Ctrl+C cancels the reply being written (and exits when none is).
//
//   dotnet run --project samples/ChatConsole                         # a generated tiny model (random weights)
//   dotnet run --project samples/ChatConsole -- --LlmPq:ModelPath=/path/to/model.gguf
//
// The same chat on a pipeline of two local stage servers, the engine in a runner process of its own (kill a
// ggml-rpc-server while it answers: the reply fails, the stage and runner come back, the chat goes on):
//
//   dotnet build src/LlmPq.Host && dotnet run --project samples/ChatConsole -- \
//     --LlmPq:Stages:0:Layers=2 --LlmPq:Stages:1:Layers=2 --LlmPq:RunnerPath=src/LlmPq.Host/bin/Debug/net10.0/llmpq.dll
using LlmPq;
using LlmPq.Gguf;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

HostApplicationBuilder builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
if (string.IsNullOrEmpty(builder.Configuration["LlmPq:ModelPath"]))
{
    builder.Configuration["LlmPq:ModelPath"] = TinyModel();
}

builder.Services.AddLlmPqChatClient(builder.Configuration.GetSection(LlmPqOptions.SectionName));
using IHost host = builder.Build();
await host.StartAsync();

IChatClient chat = host.Services.GetRequiredService<IChatClient>();
ChatClientMetadata metadata = chat.GetRequiredService<ChatClientMetadata>();
Console.WriteLine($"LlmPq chat with {metadata.DefaultModelId}. /reset starts over, Ctrl+C cancels a reply, an empty line or Ctrl+D exits.");

List<ChatMessage> history = [];
CancellationTokenSource? reply = null;
bool exit = false;
Console.CancelKeyPress += (_, e) =>
{
    // Ctrl+C cancels the reply being written; with none, it ends the chat.
    e.Cancel = true;
    if (reply is { } r)
    {
        r.Cancel();
    }
    else
    {
        exit = true;
    }
};

while (!exit)
{
    Console.Write("> ");
    string? line = Console.ReadLine();
    if (string.IsNullOrWhiteSpace(line) || exit)
    {
        break;
    }

    if (line.Trim() == "/reset")
    {
        history.Clear();
        Console.WriteLine("(conversation cleared)");
        continue;
    }

    history.Add(new ChatMessage(ChatRole.User, line));
    List<ChatResponseUpdate> updates = [];
    using (reply = new CancellationTokenSource())
    {
        try
        {
            await foreach (ChatResponseUpdate update in chat.GetStreamingResponseAsync(history, new ChatOptions { MaxOutputTokens = 128 }, reply.Token))
            {
                Console.Write(update.Text);
                updates.Add(update);
            }
        }
        catch (OperationCanceledException)
        {
            Console.Write(" [cancelled]");
        }
        catch (LlmPq.LlmPqUnavailableException ex)
        {
            // A pipeline stage failed mid-answer (or the engine is restarting): say so, and keep the chat.
            Console.Write($" [{ex.Message}]");
        }
    }

    reply = null;
    ChatResponse response = updates.ToChatResponse();
    history.AddMessages(response);
    Console.WriteLine(response.Usage is { } usage ? $"  ({usage.InputTokenCount} in, {usage.OutputTokenCount} out, {response.FinishReason})" : string.Empty);
}

await host.StopAsync();

// A generated 4-layer model with a real tokenizer: the text is nonsense, the machinery is real.
static string TinyModel()
{
    string path = Path.Combine(Path.GetTempPath(), "llmpq-samples", "chat-tiny.gguf");
    if (!File.Exists(path))
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        TinyLlamaModel.Write(path, new TinyLlamaModelOptions { Layers = 4 });
    }

    return path;
}
