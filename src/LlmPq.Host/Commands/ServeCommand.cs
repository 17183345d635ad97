using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using LlmPq.Host.Emulation;
using LlmPq.Planning;
using LlmPq.Host.Serving;
using LlmPq.Stages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq serve</c>: the engine behind an OpenAI-compatible endpoint, on loopback unless asked otherwise.</summary>
internal static class ServeCommand
{
    private const string ShutdownTimeoutName = "--shutdown-timeout-s";

    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "GGUF model file.", Required = true };
        var host = new Option<string>("--host") { Description = "Address to listen on; anything but loopback needs --api-key.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on.", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every endpoint but /health." };
        var shutdownTimeout = new Option<int>(ShutdownTimeoutName)
        {
            Description = "On SIGTERM or Ctrl+C, seconds the requests in flight get to finish (new ones get 503) before they end with an error.",
            DefaultValueFactory = _ => 30,

            // Parsed here, not checked by a validator: a validator runs even after the value failed to parse, and reading
            // it there throws instead of reporting the error.
            CustomParser = r => int.TryParse(r.Tokens[0].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds)
                ? seconds
                : Fail(r, $"{ShutdownTimeoutName} takes whole seconds, 0 or more ('{r.Tokens[0].Value}' is not)."),
        };
        var maxRequestBytes = new Option<long?>("--max-request-bytes") { Description = "Largest request body accepted (413 beyond); default 256 bytes per token of --ctx, at least 1 MiB." };
        var metricsUnauthenticated = new Option<bool>("--metrics-unauthenticated") { Description = "Serve /metrics (Prometheus) without --api-key, for a scraper that cannot send it." };
        var otlpEndpoint = new Option<Uri?>("--otlp-endpoint") { Description = "Push metrics and traces to this OpenTelemetry collector (OTLP over HTTP, e.g. http://localhost:4318)." };
        var engine = new EngineCommandOptions(severalPolicies: false);
        var plan = new Option<FileInfo?>("--plan") { Description = "Serve as a pipeline: the stages, token budget and micro-batch of this plan (from 'llmpq plan --out'; quantize the model by it first)." };
        var cluster = new Option<FileInfo?>("--cluster") { Description = "Serve as a pipeline on this cluster: plan it now, quantize the model by the plan, serve that." };
        var emulateHosts = new Option<bool>("--emulate-hosts")
        {
            Description = "With --cluster: run each host but the coordinator in a network namespace of this machine, linked by veth pairs at the cluster's link rates (tc tbf, no added latency), and serve across them. Root only; see docs/emulated-hosts.md.",
        };
        var command = new Command("serve", "Serve a model over the OpenAI chat API (POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics), in-process or as a pipeline of stages.")
        {
            model, host, port, apiKey, shutdownTimeout, maxRequestBytes, metricsUnauthenticated, otlpEndpoint, plan, cluster, emulateHosts,
        };
        foreach (Option option in engine.All)
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r =>
        {
            if (r.GetValue(plan) is not null && r.GetValue(cluster) is not null)
            {
                r.AddError("Give --plan or --cluster, not both.");
            }

            if (r.GetValue(emulateHosts) && r.GetValue(cluster) is null)
            {
                r.AddError("--emulate-hosts needs --cluster: it emulates the hosts of a cluster file.");
            }
        });

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var server = new OpenAIServerOptions
            {
                Address = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey),
                ShutdownTimeout = TimeSpan.FromSeconds(parse.GetValue(shutdownTimeout)),
                MaxRequestBodyBytes = parse.GetValue(maxRequestBytes) ?? Math.Max(1L << 20, 256L * parse.GetValue(engine.ContextLength)),
                MetricsUnauthenticated = parse.GetValue(metricsUnauthenticated),
                OtlpEndpoint = parse.GetValue(otlpEndpoint),
            };

            // Refuse before loading or quantizing anything, and before saying where it would serve.
            server.Validate();
            string modelPath = parse.GetValue(model)!.FullName;
            if (!File.Exists(modelPath))
            {
                throw new FileNotFoundException($"There is no model at {modelPath}: give a GGUF file ('llmpq make-model --out FILE' writes a small one).", modelPath);
            }

            Plan? planned = null;
            using ILoggerFactory emulationLoggers = Cli.CreateLoggerFactory(parse);
            await using EmulatedHosts? emulated = parse.GetValue(emulateHosts)
                ? await EmulatedHosts.StartAsync(ClusterSpec.Load(parse.GetValue(cluster)!.FullName), emulationLoggers, ct).ConfigureAwait(false)
                : null;
            foreach (string line in emulated?.Describe() ?? [])
            {
                Console.Error.WriteLine($"llmpq: emulated {line}");
            }

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
                int ctxTokens = parse.GetValue(engine.ContextLength);
                (planned, modelPath) = await PlannedModel.PlanAndQuantizeAsync(
                    modelPath, emulated?.Cluster ?? ClusterSpec.Load(clusterFile.FullName), new Workload(parse.GetValue(engine.MaxSequences), Math.Max(1, ctxTokens / 2), Math.Max(1, ctxTokens / 2)), loggers, ct).ConfigureAwait(false);
                PlanTable.Print(Console.Error, planned);
            }

            // A model the cache keeps stays while this server (and the runner it restarts from it) runs.
            using IDisposable? held = modelPath.StartsWith(PlannedModel.CacheFolder + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? PlannedModelCache.Use(modelPath) : null;
            bool verbose = parse.GetValue(Cli.Verbose);
            Console.Error.WriteLine($"llmpq: serving {parse.GetValue(model)!.Name} on http://{server.Address}:{server.Port}/v1 (Ctrl+C stops)");
            await OpenAIServer.RunAsync(
                server,
                services =>
                {
                    services.AddLogging(b => b
                        .SetMinimumLevel(verbose ? LogLevel.Trace : LogLevel.Information)
                        .AddFilter("Microsoft", LogLevel.Warning)

                        // A failed start is printed once, as "llmpq: error: …", not also as the host's log of its stack.
                        .AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical)
                        .AddFilter("LlmPq.Native", verbose ? LogLevel.Trace : LogLevel.Warning)
                        .AddSimpleConsole(o => o.SingleLine = true)
                        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
                    services.AddLlmPqChatClient(o =>
                    {
                        o.ModelPath = modelPath;
                        engine.Read(parse).Fill(o);
                        o.RunnerPath = Cli.RunnerPath;
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

    /// <summary>
    /// Gets how long System.CommandLine lets <c>serve</c> run on after SIGTERM or Ctrl+C before it exits on its own
    /// (143 or 130, cutting every stream): past the drain, so the drain decides; null for other commands.
    /// </summary>
    public static TimeSpan? TerminationTimeout(ParseResult parse) =>
        parse.CommandResult.Command.Name == "serve" && parse.Errors.Count == 0
            ? TimeSpan.FromSeconds(parse.GetValue<int>(ShutdownTimeoutName)) + TimeSpan.FromSeconds(30)
            : null;

    private sealed class ClientReadiness(LlmPqChatClient client) : IServerReadiness
    {
        public bool IsReady => client.IsReady;
    }

    private static int Fail(ArgumentResult result, string message)
    {
        result.AddError(message);
        return 0;
    }
}
