using System.CommandLine;
using System.Text.Json;
using LlmPq.Engine;
using LlmPq.Runner;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq runner</c> (hidden): the engine of a pipeline, in a process of its own, serving its chat client on a local
/// socket. <see cref="LlmPqPipeline"/> starts it; ggml aborting this process when a stage dies is what it is for.
/// </summary>
internal static class RunnerCommand
{
    public static Command Create()
    {
        var options = new Option<FileInfo>("--options") { Description = "The engine's options (JSON) with every stage's endpoint.", Required = true };
        var socket = new Option<string>("--socket") { Description = "The Unix socket to serve on.", Required = true };
        var command = new Command("runner", "Run a pipeline's engine and serve it on a local socket (started by LlmPqPipeline).") { options, socket };
        command.Hidden = true;
        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            LlmPqOptions engineOptions = JsonSerializer.Deserialize<LlmPqOptions>(
                await File.ReadAllTextAsync(parse.GetValue(options)!.FullName, ct).ConfigureAwait(false), RunnerProtocol.Json)
                ?? throw new InvalidDataException("The runner's options are null.");

            // Everything goes to standard error, which the pipeline reads for the reason when this process dies.
            using var loggers = LoggerFactory.Create(b => b
                .SetMinimumLevel(parse.GetValue(Cli.Verbose) ? LogLevel.Trace : LogLevel.Information)
                .AddFilter("LlmPq.Native", LogLevel.Warning)
                .AddSimpleConsole(o => o.SingleLine = true)
                .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
            using var metrics = new MetricRelay.Collector();
            await using var engine = new LlmPqEngine(engineOptions, loggers);
            await engine.StartAsync(ct).ConfigureAwait(false);
            using var client = new LlmPqChatClient(engine, engineOptions, loggers.CreateLogger<LlmPqChatClient>());
            await RunnerServer.ServeAsync(client, engine.Iterations, metrics, parse.GetValue(socket)!, loggers.CreateLogger("LlmPq.Pipeline.Runner"), ct).ConfigureAwait(false);
            return 0;
        }));
        return command;
    }
}
