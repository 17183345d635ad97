using System.CommandLine;
using LlmPq.Planning;
using LlmPq.Scheduling;
using LlmPq.Host.Serving;
using LlmPq.Stages;
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
        var plan = new Option<FileInfo?>("--plan") { Description = "Serve as a pipeline: the stages, token budget and micro-batch of this plan (from 'llmpq plan --out'; quantize the model by it first)." };
        var cluster = new Option<FileInfo?>("--cluster") { Description = "Serve as a pipeline on this cluster: plan it now, quantize the model by the plan, serve that." };
        var policy = new Option<string>("--policy") { Description = $"Scheduling policy: {string.Join(", ", Enum.GetValues<SchedulingPolicy>().Select(Cli.PolicyName))}.", DefaultValueFactory = _ => Cli.PolicyName(SchedulingPolicy.Sarathi) };
        var tbtTarget = new Option<double?>("--tbt-target-ms") { Description = "Choose the token budget per iteration to keep time between tokens under this target (the --token-budget is then the largest)." };
        var command = new Command("serve", "Serve a model over the OpenAI chat API (POST /v1/chat/completions, GET /v1/models, GET /health), in-process or as a pipeline of stages.")
        {
            model, host, port, apiKey, ctx, parallel, budget, threads, plan, cluster, policy, tbtTarget,
        };
        command.Validators.Add(r =>
        {
            if (r.GetValue(plan) is not null && r.GetValue(cluster) is not null)
            {
                r.AddError("Give --plan or --cluster, not both.");
            }
        });

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            string modelPath = parse.GetValue(model)!.FullName;
            Plan? planned = null;
            if (parse.GetValue(plan) is { } planFile)
            {
                (planned, string? warning) = PlannedModel.Load(modelPath, planFile.FullName);
                if (warning is not null)
                {
                    Console.Error.WriteLine($"llmpq: warning: {warning}");
                }
            }
            else if (parse.GetValue(cluster) is { } clusterFile)
            {
                using var loggers = Cli.CreateLoggerFactory(parse);
                int ctxTokens = parse.GetValue(ctx);
                (planned, modelPath) = await PlannedModel.PlanAndQuantizeAsync(
                    modelPath, ClusterSpec.Load(clusterFile.FullName), new Workload(parse.GetValue(parallel), Math.Max(1, ctxTokens / 2), Math.Max(1, ctxTokens / 2)), loggers, ct).ConfigureAwait(false);
                PlanTable.Print(Console.Error, planned);
            }

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
                        o.ModelPath = modelPath;
                        o.ContextLength = parse.GetValue(ctx);
                        o.MaxSequences = parse.GetValue(parallel);
                        o.TokenBudget = parse.GetValue(budget);
                        o.Threads = parse.GetValue(threads);
                        o.RunnerPath = Cli.RunnerPath;
                        o.SchedulingPolicy = Cli.ParsePolicies([parse.GetValue(policy)!]).Single();
                        o.TbtTarget = parse.GetValue(tbtTarget) is double ms ? TimeSpan.FromMilliseconds(ms) : null;
                        if (planned is not null)
                        {
                            PlanStages.Apply(o, planned);
                        }
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
