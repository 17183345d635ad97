using System.CommandLine;
using LlmPq.Chat;
using LlmPq.Host.Serving;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq serve</c>: the engine behind an OpenAI-compatible endpoint, on loopback unless asked otherwise.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "GGUF model file.", Required = true };
        var host = new Option<string>("--host") { Description = "Address to listen on; anything but loopback needs --api-key.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on.", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every endpoint but /health." };
        var ctx = new Option<int>("--ctx") { Description = "Tokens per conversation.", DefaultValueFactory = _ => 4096 };
        var parallel = new Option<int>("--parallel") { Description = "Conversations decoded together.", DefaultValueFactory = _ => 8 };
        var budget = new Option<int>("--token-budget") { Description = "Tokens per iteration (decodes first, then prompt chunks).", DefaultValueFactory = _ => 256 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var command = new Command("serve", "Serve a model over the OpenAI chat API (POST /v1/chat/completions, GET /v1/models, GET /health).")
        {
            model, host, port, apiKey, ctx, parallel, budget, threads,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var server = new OpenAIServerOptions { Address = parse.GetValue(host)!, Port = parse.GetValue(port), ApiKey = parse.GetValue(apiKey) };
            bool verbose = parse.GetValue(Cli.Verbose);
            Console.Error.WriteLine($"llmpq: serving {parse.GetValue(model)!.Name} on http://{server.Address}:{server.Port}/v1 (Ctrl+C stops)");
            await OpenAIServer.RunAsync(
                server,
                services =>
                {
                    services.AddLogging(b => b
                        .SetMinimumLevel(verbose ? LogLevel.Trace : LogLevel.Information)
                        .AddFilter("Microsoft", LogLevel.Warning)
                        .AddFilter("LlmPq.Native", verbose ? LogLevel.Trace : LogLevel.Warning)
                        .AddSimpleConsole(o => o.SingleLine = true)
                        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
                    services.AddLlmPqChatClient(o =>
                    {
                        o.ModelPath = parse.GetValue(model)!.FullName;
                        o.ContextLength = parse.GetValue(ctx);
                        o.MaxSequences = parse.GetValue(parallel);
                        o.TokenBudget = parse.GetValue(budget);
                        o.Threads = parse.GetValue(threads);
                    });
                    services.AddSingleton<IServerReadiness>(sp => new ClientReadiness(sp.GetRequiredService<LlmPqChatClient>()));
                },
                ct).ConfigureAwait(false);
            return 0;
        }));
        return command;
    }

    private sealed class ClientReadiness(LlmPqChatClient client) : IServerReadiness
    {
        public bool IsReady => client.IsReady;
    }
}
