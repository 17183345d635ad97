using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using LlmPq.Host.Benchmarking;
using LlmPq.Native;
using LlmPq.Scheduling;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq bench</c>: a load generator. Requests arrive Poisson at a rate, all at once, or at a trace's times, with
/// fixed, uniform or Zipf lengths; each target (the in-process client under one or more scheduling policies,
/// llama-server of the same native build, any OpenAI-compatible URL) is warmed up, its idle TTFT measured, and then
/// run once or searched for its capacity. Results go to a table (or JSON on standard output) and to a folder with
/// results.json, SVG charts and an HTML report.
/// </summary>
internal static class BenchCommand
{
    private const string InProcess = "in-process";
    private const string LlamaServer = "llama-server";
    private const string LlamaServerDefaults = "llama-server-defaults";

    public static Command Create()
    {
        var options = new BenchOptions();
        var command = new Command("bench", "Load-test targets with Poisson, burst or trace arrivals: TTFT, TBT, end-to-end latency, scheduling delay, throughput, and capacity under SLOs.");
        foreach (Option option in options.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => Cli.RunAsync(() => RunAsync(parse, options, ct)));
        return command;
    }

    /// <summary>The steps of a bench: read the arguments, measure each target on prompts counted with the model's tokenizer and chat template, report.</summary>
    private static async Task<int> RunAsync(ParseResult parse, BenchOptions options, CancellationToken ct)
    {
        DateTimeOffset started = DateTimeOffset.Now;
        BenchArguments args = BenchArguments.Read(parse, options, started);
        using var counter = new PromptTokenCounter(args.ModelPath);
        var prompts = new PromptSource(counter.Count, args.Workload, args.Shape, args.Measure.Seed);
        using ILoggerFactory loggers = Cli.CreateLoggerFactory(parse);
        List<LoadResult> results = await MeasureTargetsAsync(args, prompts, loggers, ct).ConfigureAwait(false);
        return await ReportAsync(parse, args, started, results, ct).ConfigureAwait(false);
    }

    /// <summary>Measures every target (and, in process, every policy and stage layout) in turn; Ctrl+C keeps what ran.</summary>
    private static async Task<List<LoadResult>> MeasureTargetsAsync(BenchArguments args, PromptSource prompts, ILoggerFactory loggers, CancellationToken ct)
    {
        int requests = args.Workload.Count * args.Shape.Turns;
        var results = new List<LoadResult>();
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };

        // A connection per request: llama-server (cpp-httplib) can drop a kept-alive connection when its HTTP threads
        // are all busy, and a request sent on it then fails ("response ended prematurely") under exactly the loads measured.
        http.DefaultRequestHeaders.ConnectionClose = true;
        var layerCount = new Lazy<int>(() => Planning.ModelSpec.FromGguf(Gguf.GgufReader.Read(args.ModelPath)).LayerCount);
        try
        {
            foreach (string target in args.Targets)
            {
                if (target == InProcess)
                {
                    foreach (SchedulingPolicy policy in args.Engine.Policies)
                    {
                        foreach ((int stages, bool pipelined) in args.Layouts)
                        {
                            string label = stages == 1 ? InProcess : string.Create(CultureInfo.InvariantCulture, $"{stages} stages{(pipelined ? string.Empty : ", no pp")}");
                            results.Add(await MeasureOrFailAsync(label, Cli.PolicyName(policy), requests, () => MeasureInProcessAsync(args, args.EngineOptions(policy, pipelined, stages, layerCount), label, Cli.PolicyName(policy), prompts, loggers, ct)).ConfigureAwait(false));
                            ct.ThrowIfCancellationRequested();
                        }
                    }
                }
                else
                {
                    results.Add(await MeasureOrFailAsync(target, null, requests, () => target switch
                    {
                        LlamaServer => MeasureLlamaServerAsync(args, LlamaServerSetup.SameBudget, target, http, prompts, loggers, ct),
                        LlamaServerDefaults => MeasureLlamaServerAsync(args, LlamaServerSetup.Defaults, target, http, prompts, loggers, ct),
                        _ => MeasureUrlAsync(args, http, target, prompts, ct),
                    }).ConfigureAwait(false));
                    ct.ThrowIfCancellationRequested();
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Ctrl+C: what ran so far is still reported.
        }

        return results;
    }

    /// <summary>Measures one target; one that cannot be reached or started is reported as failed, so the others still run.</summary>
    private static async Task<LoadResult> MeasureOrFailAsync(string target, string? policy, int requests, Func<Task<LoadResult>> measure)
    {
        try
        {
            return await measure().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TimeoutException or LlamaException)
        {
            await Console.Error.WriteLineAsync($"llmpq: {target}{(policy is null ? string.Empty : $" ({policy})")} failed: {ex.Message}").ConfigureAwait(false);
            return new LoadResult { Target = target, Policy = policy, Requests = requests, Failed = requests, Errors = [ex.Message] };
        }
    }

    private static async Task<LoadResult> MeasureInProcessAsync(BenchArguments args, LlmPqOptions engine, string label, string policy, PromptSource prompts, ILoggerFactory loggers, CancellationToken ct)
    {
        await using var client = LlmPqChatClient.Create(engine, loggers);
        await client.StartAsync(ct).ConfigureAwait(false);
        return await TargetMeasurement.MeasureAsync(client, label, policy, prompts, args.OfferedQps, args.Measure, ct).ConfigureAwait(false);
    }

    /// <summary>Measures llama-server with its prompt cache on, as users run it: no two rounds of prompts share more than the workload shares on purpose.</summary>
    private static async Task<LoadResult> MeasureLlamaServerAsync(BenchArguments args, LlamaServerSetup setup, string label, HttpClient http, PromptSource prompts, ILoggerFactory loggers, CancellationToken ct)
    {
        await using LlamaServerProcess server = await LlamaServerProcess.StartAsync(args.ModelPath, args.EngineOptions(), setup, loggers.CreateLogger("LlmPq.Benchmarking.LlamaServer"), ct).ConfigureAwait(false);
        using var client = OpenAITarget.Create(http, server.BaseUri, args.ModelName);
        return await TargetMeasurement.MeasureAsync(client, label, null, prompts, args.OfferedQps, args.Measure, ct).ConfigureAwait(false);
    }

    private static async Task<LoadResult> MeasureUrlAsync(BenchArguments args, HttpClient http, string url, PromptSource prompts, CancellationToken ct)
    {
        using var client = OpenAITarget.Create(http, ApiBase(url), args.ModelName, args.ApiKey);
        return await TargetMeasurement.MeasureAsync(client, url, null, prompts, args.OfferedQps, args.Measure, ct).ConfigureAwait(false);
    }

    /// <summary>Writes the results folder, prints the table or JSON, and chooses the exit code (130 after Ctrl+C, 1 when a request failed).</summary>
    private static async Task<int> ReportAsync(ParseResult parse, BenchArguments args, DateTimeOffset started, List<LoadResult> results, CancellationToken ct)
    {
        string command = "llmpq " + string.Join(' ', parse.Tokens.Select(token => token.Value.Contains(' ', StringComparison.Ordinal) ? $"\"{token.Value}\"" : token.Value));
        EngineSettings engine = args.Engine;
        var settings = new BenchSettings(args.ModelPath, args.WorkloadDescription, args.Measure.Seed, args.Measure.Warmup, args.Measure.TimeLimit?.TotalSeconds, engine.MaxSequences, engine.TokenBudget, engine.ContextLength, engine.Threads, args.Measure.TbtSloMs, args.Measure.DelaySloMs, args.Shape.Turns, args.Shape.SharedPrefixTokens);
        var report = new BenchReport(command, started, ct.IsCancellationRequested, settings, results);
        IReadOnlyList<string> files = report.Write(args.OutputFolder);
        if (args.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report.Runs, BenchReport.Json));
        }
        else
        {
            report.Print(Console.Out);
        }

        await Console.Error.WriteLineAsync($"llmpq: results in {args.OutputFolder} ({string.Join(", ", files.Select(Path.GetFileName))})").ConfigureAwait(false);
        return ct.IsCancellationRequested ? 130 : results.Any(r => r.Failed > 0) ? 1 : 0;
    }

    /// <summary>The base address the client adds <c>v1/chat/completions</c> to: the URL without a trailing /v1.</summary>
    private static Uri ApiBase(string url)
    {
        string trimmed = url.TrimEnd('/');
        trimmed = trimmed.EndsWith("/v1", StringComparison.OrdinalIgnoreCase) ? trimmed[..^3] : trimmed;
        return new Uri(trimmed + "/");
    }

    /// <summary>The options <c>bench</c> declares.</summary>
    private sealed class BenchOptions
    {
        public Option<FileInfo?> Model { get; } = new("--model", "-m") { Description = "GGUF model of the in-process and llama-server targets, and the tokenizer of the prompts (default: a generated 8-layer, 256-wide model)." };

        public Option<string[]> Target { get; } = new("--target") { Description = "in-process; llama-server (started from the native build with the engine's token budget as -b/-ub and a KV cache per sequence); llama-server-defaults (as users start it: its own -b 2048 -ub 512, one KV cache for all slots); or an OpenAI-compatible http(s) URL. llama-server keeps its prompt cache on. Repeat or separate with commas to compare.", DefaultValueFactory = _ => [InProcess] };

        public Option<int> Requests { get; } = new("--requests", "-n") { Description = "Requests per run (with --trace: the first N of it).", DefaultValueFactory = _ => 32 };

        public Option<double> Qps { get; } = new("--qps") { Description = "Poisson arrival rate in requests per second; 0 sends all at once (with --trace: its own times). With --capacity: the first rate tried (0: the completion rate of one all-at-once run).", DefaultValueFactory = _ => 0 };

        public Option<LengthDistribution> PromptTokens { get; } = new("--prompt-tokens") { Description = "Prompt length in tokens: N, uniform:MIN:MAX or zipf:MIN:MAX[:EXPONENT].", CustomParser = ParseLength, DefaultValueFactory = _ => new LengthDistribution.Fixed(128) };

        public Option<LengthDistribution> OutputTokens { get; } = new("--output-tokens") { Description = "Output limit in tokens: N, uniform:MIN:MAX or zipf:MIN:MAX[:EXPONENT].", CustomParser = ParseLength, DefaultValueFactory = _ => new LengthDistribution.Fixed(64) };

        public Option<int> Turns { get; } = new("--turns") { Description = "Turns per conversation: each turn sends the earlier messages and answers, then a new message of --prompt-tokens, when the answer before it ended; --requests conversations run at once (or arrive at --qps).", DefaultValueFactory = _ => 1 };

        public Option<int> SharedPrefixTokens { get; } = new("--shared-prefix-tokens") { Description = "Tokens of a text that starts the first message of every request of a run (each run and probe has its own), before its --prompt-tokens of its own.", DefaultValueFactory = _ => 0 };

        public Option<FileInfo?> Trace { get; } = new("--trace") { Description = $"CSV trace ('{BenchWorkload.TraceHeader}'): its lengths, and its arrivals unless --qps or --capacity sets a rate." };

        public Option<int> Seed { get; } = new("--seed") { Description = "Seed of the lengths, arrivals and prompt words.", DefaultValueFactory = _ => 1 };

        public Option<int> Warmup { get; } = new("--warmup") { Description = "Short requests sent to each target before it is measured.", DefaultValueFactory = _ => 1 };

        public Option<double?> TimeLimit { get; } = new("--time-limit") { Description = "Seconds a run (or a capacity probe) may take; requests then in flight count as cut off." };

        public Option<bool> Capacity { get; } = new("--capacity") { Description = "Search each target's capacity: the highest Poisson rate with P99 TBT and median scheduling delay within their SLOs." };

        public Option<double> TbtSlo { get; } = new("--tbt-slo-ms") { Description = "P99 time-between-tokens limit of the capacity search, in ms.", DefaultValueFactory = _ => 200 };

        public Option<double> DelaySlo { get; } = new("--delay-slo-ms") { Description = "Median scheduling delay limit of the capacity search, in ms (Sarathi-Serve: 2000).", DefaultValueFactory = _ => 2000 };

        public Option<double> Precision { get; } = new("--capacity-precision") { Description = "The search stops when its bracket is narrower than this fraction of the rate.", DefaultValueFactory = _ => 0.05 };

        public Option<int> Probes { get; } = new("--capacity-probes") { Description = "The most rates the search tries per target.", DefaultValueFactory = _ => 12 };

        public Option<string?> ModelName { get; } = new("--model-name") { Description = "Model name sent to URL targets (default: the model file name)." };

        public Option<string?> ApiKey { get; } = new("--api-key") { Description = "Bearer key sent to URL targets." };

        public Option<DirectoryInfo?> Output { get; } = new("--out", "-o") { Description = "Results folder (default: ./bench-results/<timestamp>)." };

        public Option<bool> Json { get; } = new("--json") { Description = "Print the results as JSON (one object per target and policy) instead of the table." };

        public Option<int[]> Stages { get; } = new("--stages") { Description = "Run the in-process target on pipelines of these many stages (1: the engine alone; N: N local stage servers, layers split evenly, the engine in a runner process); repeat or separate with commas.", DefaultValueFactory = _ => [1], CustomParser = ParseStages };

        public Option<string> PipelineParallel { get; } = CreatePipelineParallel();

        /// <summary>Gets the engine's options, shared with <c>serve</c>: the in-process target's settings, and llama-server's where it has them.</summary>
        public EngineCommandOptions Engine { get; } = new(severalPolicies: true);

        /// <summary>Gets the options in the order help lists them.</summary>
        public IEnumerable<Option> All =>
        [
            Model, Target, Requests, Qps, PromptTokens, OutputTokens, Turns, SharedPrefixTokens, Trace, Seed, Warmup, TimeLimit, Capacity, TbtSlo, DelaySlo, Precision, Probes,
            .. Engine.All, ModelName, ApiKey, Output, Json, Stages, PipelineParallel,
        ];

        private static Option<string> CreatePipelineParallel()
        {
            var option = new Option<string>("--pipeline-parallel") { Description = "llama.cpp's pipeline parallelism on pipelines of 2 or more stages: on, off, or both.", DefaultValueFactory = _ => "on" };
            option.AcceptOnlyFromAmong("on", "off", "both");
            return option;
        }

        private static LengthDistribution? ParseLength(ArgumentResult result)
        {
            try
            {
                return LengthDistribution.Parse(result.Tokens.Single().Value);
            }
            catch (FormatException ex)
            {
                result.AddError(ex.Message);
                return null;
            }
        }

        private static int[] ParseStages(ArgumentResult result)
        {
            var counts = new List<int>();
            foreach (string part in result.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
            {
                if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1)
                {
                    result.AddError($"--stages takes stage counts of 1 or more ('{part}' is not one).");
                    return [];
                }

                counts.Add(n);
            }

            return [.. counts];
        }
    }

    /// <summary>What a bench was asked to do, read once from the command line and checked, each error naming its flag.</summary>
    private sealed record BenchArguments(
        string ModelPath,
        string ModelName,
        string? ApiKey,
        IReadOnlyList<string> Targets,
        IReadOnlyList<(int Stages, bool Pipelined)> Layouts,
        IReadOnlyList<BenchRequest> Workload,
        ConversationShape Shape,
        string WorkloadDescription,
        double? OfferedQps,
        MeasureSettings Measure,
        string OutputFolder,
        bool Json,
        EngineSettings Engine)
    {
        public static BenchArguments Read(ParseResult parse, BenchOptions o, DateTimeOffset started)
        {
            string modelPath = parse.GetValue(o.Model)?.FullName ?? Cli.DefaultModel();
            double rate = parse.GetValue(o.Qps);
            if (!(rate >= 0) || !double.IsFinite(rate))
            {
                throw new ArgumentException("--qps must be 0 (all at once) or a positive rate.");
            }

            var measure = new MeasureSettings(
                parse.GetValue(o.Warmup),
                parse.GetValue(o.TimeLimit) is { } limit ? TimeSpan.FromSeconds(Positive(limit, "--time-limit")) : null,
                parse.GetValue(o.Capacity),
                Positive(parse.GetValue(o.TbtSlo), "--tbt-slo-ms"),
                Positive(parse.GetValue(o.DelaySlo), "--delay-slo-ms"),
                parse.GetValue(o.Precision),
                parse.GetValue(o.Probes),
                parse.GetValue(o.Seed),
                rate > 0 ? rate : null);
            if (measure.Warmup < 0 || measure.Probes < 1 || !(measure.Precision is > 0 and < 1))
            {
                throw new ArgumentException("--warmup must be 0 or more, --capacity-probes 1 or more, and --capacity-precision between 0 and 1.");
            }

            var shape = new ConversationShape(AtLeast(parse.GetValue(o.Turns), 1, "--turns"), AtLeast(parse.GetValue(o.SharedPrefixTokens), 0, "--shared-prefix-tokens"));
            (IReadOnlyList<BenchRequest> workload, string description, double? offered) = ReadWorkload(parse, o, measure, shape);
            var args = new BenchArguments(
                modelPath,
                parse.GetValue(o.ModelName) ?? Path.GetFileNameWithoutExtension(modelPath),
                parse.GetValue(o.ApiKey),
                ParseTargets(parse.GetValue(o.Target)!),
                [.. ReadLayouts(parse.GetValue(o.Stages)!, parse.GetValue(o.PipelineParallel)!)],
                workload,
                shape,
                description,
                offered,
                measure,
                parse.GetValue(o.Output)?.FullName ?? Path.GetFullPath(Path.Combine("bench-results", started.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture))),
                parse.GetValue(o.Json),
                o.Engine.Read(parse));

            LlmPqOptions engine = args.EngineOptions();
            ValidateOptionsResult valid = new LlmPqOptionsValidator().Validate(null, engine);
            if (valid.Failed)
            {
                throw new OptionsValidationException(LlmPqOptions.SectionName, typeof(LlmPqOptions), valid.Failures);
            }

            if (args.Targets.Any(t => t is InProcess or LlamaServer or LlamaServerDefaults) && workload.Max(shape.TokensAtLastAnswer) is var longest)
            {
                if (longest > engine.ContextLength)
                {
                    throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"A request of the workload needs {longest} tokens (shared prefix, and prompt and output of every turn); --ctx is {engine.ContextLength}. Raise --ctx or shorten the lengths, --turns or --shared-prefix-tokens."));
                }

                // The engine and llama-server both hold a conversation to the model's training context, whatever --ctx says.
                long trained = Planning.ModelSpec.FromGguf(Gguf.GgufReader.Read(modelPath)).ContextLength;
                if (trained > 0 && longest > trained)
                {
                    throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"A request of the workload needs {longest} tokens (shared prefix, and prompt and output of every turn); the model was trained for {trained} tokens, the most a conversation holds on the in-process and llama-server targets whatever --ctx says. Shorten the lengths, --turns or --shared-prefix-tokens, or use a model with a longer context ('llmpq make-model --ctx')."));
                }
            }

            return args;
        }

        /// <summary>A fresh engine configuration of the command line's settings, its queue long enough for the whole workload.</summary>
        public LlmPqOptions EngineOptions()
        {
            var options = new LlmPqOptions { ModelPath = ModelPath };
            Engine.Fill(options);
            options.MaxQueueLength = Math.Max(options.MaxQueueLength, Workload.Count);
            return options;
        }

        /// <summary>
        /// A fresh engine configuration for one in-process run: the command line's settings, the policy, and the model's
        /// layers split evenly over <paramref name="stages"/> local stage servers (none for one stage), each with the engine's threads.
        /// </summary>
        public LlmPqOptions EngineOptions(SchedulingPolicy policy, bool pipelined, int stages, Lazy<int> layerCount)
        {
            LlmPqOptions options = EngineOptions();
            options.SchedulingPolicy = policy;
            options.PipelineParallelism = pipelined;
            if (stages == 1)
            {
                return options;
            }

            int layers = layerCount.Value;
            if (stages > layers)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"--stages {stages} is more than the model's {layers} layers."));
            }

            for (int i = 0; i < stages; i++)
            {
                options.Stages.Add(new LlmPqStageOptions { Layers = (layers * (i + 1) / stages) - (layers * i / stages), Threads = options.Threads, Device = "CPU" });
            }

            options.RunnerPath = Cli.RunnerPath;
            return options;
        }

        /// <summary>The stage counts and pipeline-parallelism settings to run; one stage has no pipeline to parallelize.</summary>
        private static IEnumerable<(int Stages, bool Pipelined)> ReadLayouts(int[] counts, string pipelineParallel) =>
            counts.Distinct().SelectMany(n => n == 1 ? [(1, true)]
                : pipelineParallel == "both" ? [(n, true), (n, false)]
                : new[] { (n, pipelineParallel == "on") });

        private static (IReadOnlyList<BenchRequest> Requests, string Description, double? Qps) ReadWorkload(ParseResult parse, BenchOptions o, MeasureSettings measure, ConversationShape shape)
        {
            var c = CultureInfo.InvariantCulture;
            string reuse = (shape.Turns > 1 ? string.Create(c, $", {shape.Turns} turns each") : string.Empty)
                + (shape.SharedPrefixTokens > 0 ? string.Create(c, $", after a shared prefix of {shape.SharedPrefixTokens} tokens") : string.Empty);
            double rate = parse.GetValue(o.Qps);
            string arrivals = measure.Capacity ? "Poisson arrivals at the searched rate" : rate > 0 ? string.Create(c, $"Poisson arrivals at {rate:G4} req/s") : "all at once";
            if (parse.GetValue(o.Trace) is { } file)
            {
                IReadOnlyList<BenchRequest> rows = BenchWorkload.ReadTrace(file.FullName);
                if (parse.GetResult(o.Requests) is { Implicit: false })
                {
                    rows = [.. rows.Take(Math.Max(1, parse.GetValue(o.Requests)))];
                }

                return rate > 0 && !measure.Capacity
                    ? (BenchWorkload.WithArrivals(rows, rate, measure.Seed), string.Create(c, $"{rows.Count} requests of trace {file.Name}{reuse}, {arrivals}"), rate)
                    : (rows, string.Create(c, $"{rows.Count} requests of trace {file.Name}{reuse}, {(measure.Capacity ? arrivals : "at its times")}"), null);
            }

            int count = parse.GetValue(o.Requests);
            if (count < 1)
            {
                throw new ArgumentException("--requests must be 1 or more.");
            }

            LengthDistribution p = parse.GetValue(o.PromptTokens)!, output = parse.GetValue(o.OutputTokens)!;
            return (BenchWorkload.Synthetic(count, measure.Capacity ? 0 : rate, p, output, measure.Seed), string.Create(c, $"{count} requests, prompt {p} tokens, output {output} tokens{reuse}, {arrivals}, seed {measure.Seed}"), rate > 0 && !measure.Capacity ? rate : null);
        }

        private static List<string> ParseTargets(string[] values)
        {
            var targets = values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct().ToList();
            foreach (string t in targets)
            {
                if (t is not (InProcess or LlamaServer or LlamaServerDefaults) && !(Uri.TryCreate(t, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https"))
                {
                    throw new ArgumentException($"--target '{t}' is not {InProcess}, {LlamaServer}, {LlamaServerDefaults} or an http(s) URL.");
                }
            }

            return targets.Count > 0 ? targets : [InProcess];
        }

        private static int AtLeast(int value, int least, string option) =>
            value >= least ? value : throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{option} must be {least} or more; it is {value}."));

        private static double Positive(double value, string option) =>
            value > 0 && double.IsFinite(value) ? value : throw new ArgumentException($"{option} must be a positive number; it is {value.ToString(CultureInfo.InvariantCulture)}.");
    }
}
