using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using LlmPq.Host.Benchmarking;
using LlmPq.Native;
using LlmPq.Scheduling;
using LlmPq.Stages;
using Microsoft.Extensions.AI;
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

    public static Command Create()
    {
        var model = new Option<FileInfo?>("--model", "-m") { Description = "GGUF model of the in-process and llama-server targets, and the tokenizer of the prompts (default: a generated 8-layer, 256-wide model)." };
        var target = new Option<string[]>("--target") { Description = "in-process, llama-server (started from the native build), or an OpenAI-compatible http(s) URL; repeat or separate with commas to compare.", DefaultValueFactory = _ => [InProcess] };
        var policy = new Option<string[]>("--policy") { Description = $"In-process scheduling policy: {string.Join(", ", Enum.GetValues<SchedulingPolicy>().Select(Cli.PolicyName))}, or all; repeat or separate with commas to compare.", DefaultValueFactory = _ => [Cli.PolicyName(SchedulingPolicy.Sarathi)] };
        var requests = new Option<int>("--requests", "-n") { Description = "Requests per run (with --trace: the first N of it).", DefaultValueFactory = _ => 32 };
        var qps = new Option<double>("--qps") { Description = "Poisson arrival rate in requests per second; 0 sends all at once (with --trace: its own times). With --capacity: the first rate tried (0: the completion rate of one all-at-once run).", DefaultValueFactory = _ => 0 };
        var promptTokens = new Option<LengthDistribution>("--prompt-tokens") { Description = "Prompt length in tokens: N, uniform:MIN:MAX or zipf:MIN:MAX[:EXPONENT].", CustomParser = ParseLength, DefaultValueFactory = _ => new LengthDistribution.Fixed(128) };
        var outputTokens = new Option<LengthDistribution>("--output-tokens") { Description = "Output limit in tokens: N, uniform:MIN:MAX or zipf:MIN:MAX[:EXPONENT].", CustomParser = ParseLength, DefaultValueFactory = _ => new LengthDistribution.Fixed(64) };
        var trace = new Option<FileInfo?>("--trace") { Description = $"CSV trace ('{BenchWorkload.TraceHeader}'): its lengths, and its arrivals unless --qps or --capacity sets a rate." };
        var seed = new Option<int>("--seed") { Description = "Seed of the lengths, arrivals and prompt words.", DefaultValueFactory = _ => 1 };
        var warmup = new Option<int>("--warmup") { Description = "Short requests sent to each target before it is measured.", DefaultValueFactory = _ => 1 };
        var timeLimit = new Option<double?>("--time-limit") { Description = "Seconds a run (or a capacity probe) may take; requests then in flight count as cut off." };
        var capacity = new Option<bool>("--capacity") { Description = "Search each target's capacity: the highest Poisson rate with P99 TBT and median scheduling delay within their SLOs." };
        var tbtSlo = new Option<double>("--tbt-slo-ms") { Description = "P99 time-between-tokens limit of the capacity search, in ms.", DefaultValueFactory = _ => 200 };
        var delaySlo = new Option<double>("--delay-slo-ms") { Description = "Median scheduling delay limit of the capacity search, in ms (Sarathi-Serve: 2000).", DefaultValueFactory = _ => 2000 };
        var precision = new Option<double>("--capacity-precision") { Description = "The search stops when its bracket is narrower than this fraction of the rate.", DefaultValueFactory = _ => 0.05 };
        var probes = new Option<int>("--capacity-probes") { Description = "The most rates the search tries per target.", DefaultValueFactory = _ => 12 };
        var parallel = new Option<int>("--parallel") { Description = "Sequences decoded together (LlmPq MaxSequences, llama-server -np).", DefaultValueFactory = _ => 8 };
        var budget = new Option<int>("--token-budget") { Description = "Tokens per iteration (LlmPq TokenBudget, llama-server -b/-ub).", DefaultValueFactory = _ => 256 };
        var ctx = new Option<int>("--ctx") { Description = "Context per sequence.", DefaultValueFactory = _ => 1024 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var modelName = new Option<string?>("--model-name") { Description = "Model name sent to URL targets (default: the model file name)." };
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer key sent to URL targets." };
        var output = new Option<DirectoryInfo?>("--out", "-o") { Description = "Results folder (default: ./bench-results/<timestamp>)." };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON (one object per target and policy) instead of the table." };
        var stages = new Option<int[]>("--stages") { Description = "Run the in-process target on pipelines of these many stages (1: the engine alone; N: N local stage servers, layers split evenly, the engine in a runner process); repeat or separate with commas.", DefaultValueFactory = _ => [1], CustomParser = ParseStages };
        var tbtTarget = new Option<double?>("--tbt-target-ms") { Description = "In-process: choose the token budget per iteration to keep time between tokens under this target (--token-budget is then the largest)." };
        var pipelineParallel = new Option<string>("--pipeline-parallel") { Description = "llama.cpp's pipeline parallelism on pipelines of 2 or more stages: on, off, or both.", DefaultValueFactory = _ => "on" };
        pipelineParallel.AcceptOnlyFromAmong("on", "off", "both");
        var command = new Command("bench", "Load-test targets with Poisson, burst or trace arrivals: TTFT, TBT, end-to-end latency, scheduling delay, throughput, and capacity under SLOs.")
        {
            model, target, policy, requests, qps, promptTokens, outputTokens, trace, seed, warmup, timeLimit, capacity, tbtSlo, delaySlo, precision, probes,
            parallel, budget, ctx, threads, modelName, apiKey, output, json, stages, pipelineParallel, tbtTarget,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            DateTimeOffset started = DateTimeOffset.Now;
            string modelPath = parse.GetValue(model)?.FullName ?? Cli.DefaultModel();
            var options = new LlmPqOptions
            {
                ModelPath = modelPath,
                MaxSequences = parse.GetValue(parallel),
                TokenBudget = parse.GetValue(budget),
                ContextLength = parse.GetValue(ctx),
                Threads = parse.GetValue(threads),
                TbtTarget = parse.GetValue(tbtTarget) is double ms ? TimeSpan.FromMilliseconds(ms) : null,
            };
            ValidateOptionsResult valid = new LlmPqOptionsValidator().Validate(null, options);
            if (valid.Failed)
            {
                throw new OptionsValidationException(LlmPqOptions.SectionName, typeof(LlmPqOptions), valid.Failures);
            }

            double rate = parse.GetValue(qps);
            if (!(rate >= 0) || !double.IsFinite(rate))
            {
                throw new ArgumentException("--qps must be 0 (all at once) or a positive rate.");
            }

            var run = new RunSettings(
                parse.GetValue(warmup),
                parse.GetValue(timeLimit) is { } limit ? TimeSpan.FromSeconds(Positive(limit, "--time-limit")) : null,
                parse.GetValue(capacity),
                Positive(parse.GetValue(tbtSlo), "--tbt-slo-ms"),
                Positive(parse.GetValue(delaySlo), "--delay-slo-ms"),
                parse.GetValue(precision),
                parse.GetValue(probes),
                parse.GetValue(seed),
                rate > 0 ? rate : null);
            if (run.Warmup < 0 || run.Probes < 1 || !(run.Precision is > 0 and < 1))
            {
                throw new ArgumentException("--warmup must be 0 or more, --capacity-probes 1 or more, and --capacity-precision between 0 and 1.");
            }

            List<string> targets = ParseTargets(parse.GetValue(target)!);
            List<SchedulingPolicy> policies = Cli.ParsePolicies(parse.GetValue(policy)!);
            (IReadOnlyList<BenchRequest> workload, string description, double? offered) = BuildWorkload(parse, trace, requests, qps, promptTokens, outputTokens, run);
            if (targets.Any(t => t is InProcess or LlamaServer) && workload.Max(r => r.PromptTokens + r.OutputTokens) is var longest && longest > options.ContextLength)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"A request of the workload needs {longest} tokens (prompt and output); --ctx is {options.ContextLength}. Raise --ctx or shorten the lengths."));
            }

            options.MaxQueueLength = Math.Max(options.MaxQueueLength, workload.Count);
            BenchPrompt[] prompts = BuildPrompts(modelPath, workload);
            string folder = parse.GetValue(output)?.FullName ?? Path.GetFullPath(Path.Combine("bench-results", started.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)));

            var results = new List<LoadResult>();
            using ILoggerFactory loggers = Cli.CreateLoggerFactory(parse);
            using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };

            // A connection per request: llama-server (cpp-httplib) can drop a kept-alive connection when its HTTP threads
            // are all busy, and a request sent on it then fails ("response ended prematurely") under exactly the loads measured.
            http.DefaultRequestHeaders.ConnectionClose = true;
            string name = parse.GetValue(modelName) ?? Path.GetFileNameWithoutExtension(modelPath);

            // A target that cannot be reached or started is reported as failed, and the others still run.
            async Task MeasureOrFailAsync(string target, string? policy, Func<Task<LoadResult>> measure)
            {
                try
                {
                    results.Add(await measure().ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException or TimeoutException or LlamaException)
                {
                    await Console.Error.WriteLineAsync($"llmpq: {target}{(policy is null ? string.Empty : $" ({policy})")} failed: {ex.Message}").ConfigureAwait(false);
                    results.Add(new LoadResult { Target = target, Policy = policy, Requests = prompts.Length, Failed = prompts.Length, Errors = [ex.Message] });
                }

                ct.ThrowIfCancellationRequested();
            }

            var layerCount = new Lazy<int>(() => Planning.ModelSpec.FromGguf(Gguf.GgufReader.Read(modelPath)).LayerCount);
            try
            {
                foreach (string t in targets)
                {
                    if (t == InProcess)
                    {
                        foreach (SchedulingPolicy p in policies)
                        {
                            foreach ((int count, bool pipelined) in Layouts(parse.GetValue(stages)!, parse.GetValue(pipelineParallel)!))
                            {
                                string label = count == 1 ? InProcess : string.Create(CultureInfo.InvariantCulture, $"{count} stages{(pipelined ? string.Empty : ", no pp")}");
                                await MeasureOrFailAsync(label, Cli.PolicyName(p), async () =>
                                {
                                    options.SchedulingPolicy = p;
                                    options.PipelineParallelism = pipelined;
                                    SplitEvenly(options, layerCount, count);
                                    await using var client = LlmPqChatClient.Create(options, loggers);
                                    await client.StartAsync(ct).ConfigureAwait(false);
                                    return await MeasureAsync(client, label, Cli.PolicyName(p), prompts, offered, run, ct).ConfigureAwait(false);
                                }).ConfigureAwait(false);
                            }
                        }
                    }
                    else if (t == LlamaServer)
                    {
                        await MeasureOrFailAsync(LlamaServer, null, async () =>
                        {
                            await using LlamaServerProcess server = await LlamaServerProcess.StartAsync(modelPath, options, [], loggers.CreateLogger("LlmPq.Benchmarking.LlamaServer"), ct).ConfigureAwait(false);
                            // llama-server keeps each slot's last prompt and reuses its prefix; the probes of a capacity
                            // search resend the same prompts, which would skip their prefill. The engine caches nothing.
                            using var client = new OpenAIHttpChatClient(http, server.BaseUri, name, extra: new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["cache_prompt"] = false });
                            return await MeasureAsync(client, LlamaServer, null, prompts, offered, run, ct).ConfigureAwait(false);
                        }).ConfigureAwait(false);
                    }
                    else
                    {
                        await MeasureOrFailAsync(t, null, async () =>
                        {
                            using var client = new OpenAIHttpChatClient(http, ApiBase(t), name, parse.GetValue(apiKey));
                            return await MeasureAsync(client, t, null, prompts, offered, run, ct).ConfigureAwait(false);
                        }).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Ctrl+C: what ran so far is still reported below.
            }

            string command = "llmpq " + string.Join(' ', parse.Tokens.Select(token => token.Value.Contains(' ', StringComparison.Ordinal) ? $"\"{token.Value}\"" : token.Value));
            var settings = new BenchSettings(modelPath, description, run.Seed, run.Warmup, run.TimeLimit?.TotalSeconds, options.MaxSequences, options.TokenBudget, options.ContextLength, options.Threads, run.TbtSloMs, run.DelaySloMs);
            var report = new BenchReport(command, started, ct.IsCancellationRequested, settings, results);
            IReadOnlyList<string> files = report.Write(folder);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(report.Runs, BenchReport.Json));
            }
            else
            {
                report.Print(Console.Out);
            }

            await Console.Error.WriteLineAsync($"llmpq: results in {folder} ({string.Join(", ", files.Select(Path.GetFileName))})").ConfigureAwait(false);
            return ct.IsCancellationRequested ? 130 : results.Any(r => r.Failed > 0) ? 1 : 0;
        }));
        return command;
    }

    /// <summary>The stage counts and pipeline-parallelism settings to run; one stage has no pipeline to parallelize.</summary>
    private static IEnumerable<(int Stages, bool Pipelined)> Layouts(int[] counts, string pipelineParallel) =>
        counts.Distinct().SelectMany(n => n == 1 ? [(1, true)]
            : pipelineParallel == "both" ? [(n, true), (n, false)]
            : new[] { (n, pipelineParallel == "on") });

    /// <summary>Splits the model's layers evenly over <paramref name="count"/> local stage servers (none for one stage); each server gets the engine's threads.</summary>
    private static void SplitEvenly(LlmPqOptions options, Lazy<int> layerCount, int count)
    {
        options.Stages.Clear();
        if (count == 1)
        {
            return;
        }

        int layers = layerCount.Value;
        if (count > layers)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"--stages {count} is more than the model's {layers} layers."));
        }

        for (int i = 0; i < count; i++)
        {
            options.Stages.Add(new LlmPqStageOptions { Layers = (layers * (i + 1) / count) - (layers * i / count), Threads = options.Threads, Device = "CPU" });
        }

        options.RunnerPath = Cli.RunnerPath;
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

    /// <summary>Warms a target up, measures its idle TTFT, then runs the workload once or searches its capacity.</summary>
    private static async Task<LoadResult> MeasureAsync(IChatClient client, string target, string? policy, BenchPrompt[] prompts, double? offered, RunSettings run, CancellationToken ct)
    {
        string label = policy is null ? target : $"{target} ({policy})";
        for (int i = 0; i < run.Warmup; i++)
        {
            await client.GetResponseAsync(prompts[i % prompts.Length].Text, new ChatOptions { Temperature = 0, MaxOutputTokens = 4 }, ct).ConfigureAwait(false);
        }

        IReadOnlyList<IdlePoint> idle = await MeasureIdleAsync(client, prompts, ct).ConfigureAwait(false);
        using var engineDelays = new EngineSchedulingDelays();
        engineDelays.Drain();
        LoadResult Summarize(LoadRun r, double? qps) => LoadResult.From(r, idle, engineDelays.Drain()) with { Target = target, Policy = policy, Qps = qps };

        if (!run.Capacity)
        {
            return Summarize(await RunOnceAsync(client, label, prompts, run.TimeLimit, ct).ConfigureAwait(false), offered);
        }

        // Without a start rate, start near the top: the rate the target completes requests at when all arrive at once.
        double start = run.StartQps
            ?? (LoadResult.From(await RunOnceAsync(client, $"{label} all at once, for the start rate", Paced(prompts, 0, run.Seed), run.TimeLimit, ct).ConfigureAwait(false)).RequestsPerSecond is > 0 and var burst ? burst : 1);
        var tried = new List<CapacityProbe>();
        LoadResult? best = null, last = null;
        CapacityBounds bounds = await CapacitySearch.FindAsync(start, run.Precision, run.Probes, async (rate, token) =>
        {
            LoadRun probe = await RunOnceAsync(client, string.Create(CultureInfo.InvariantCulture, $"{label} probe {tried.Count + 1} at {rate:G3} req/s"), Paced(prompts, rate, run.Seed), run.TimeLimit, token).ConfigureAwait(false);
            if (token.IsCancellationRequested)
            {
                return null;
            }

            LoadResult result = Summarize(probe, rate);
            bool passed = CapacitySearch.Meets(result, run.TbtSloMs, run.DelaySloMs);
            tried.Add(new CapacityProbe(rate, passed, result.TbtP99Ms, result.SchedulingDelayP50Ms, result.Completed, result.Failed, result.Cancelled + result.NotSent, result.Errors.Count > 0 ? result.Errors[0] : null));
            last = result;
            best = passed && (best?.Qps ?? 0) < rate ? result : best;
            return passed;
        }, ct).ConfigureAwait(false);

        LoadResult shown = best ?? last ?? new LoadResult { Target = target, Policy = policy, IdleTtft = idle };
        return shown with { Capacity = new CapacityResult(bounds.HighestPassing, run.TbtSloMs, run.DelaySloMs, bounds.Complete, tried) };
    }

    /// <summary>The prompts with Poisson arrivals at <paramref name="rate"/> (0: all at once).</summary>
    private static BenchPrompt[] Paced(BenchPrompt[] prompts, double rate, int seed) =>
        [.. prompts.Zip(BenchWorkload.WithArrivals([.. prompts.Select(p => p.Request)], rate, seed), (p, r) => p with { Request = r })];

    private static async Task<LoadRun> RunOnceAsync(IChatClient client, string label, BenchPrompt[] prompts, TimeSpan? timeLimit, CancellationToken ct)
    {
        var counters = new LoadCounters();
        using var progress = new ProgressLine(label, counters, prompts.Length);
        return await LoadGenerator.RunAsync(client, prompts, new ChatOptions { Temperature = 0, Seed = 1 }, counters, timeLimit, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The TTFT of the workload's prompt lengths (all of them when three or fewer, else the shortest, median and
    /// longest) sent alone; the lower of two tries, at the length the target counted.
    /// </summary>
    private static async Task<IReadOnlyList<IdlePoint>> MeasureIdleAsync(IChatClient client, BenchPrompt[] prompts, CancellationToken ct)
    {
        int[] lengths = [.. prompts.Select(p => p.Request.PromptTokens).Distinct().Order()];
        int[] chosen = lengths.Length <= 3 ? lengths : [lengths[0], lengths[lengths.Length / 2], lengths[^1]];
        var points = new List<IdlePoint>();
        foreach (int length in chosen)
        {
            BenchPrompt prompt = prompts.First(p => p.Request.PromptTokens == length);
            BenchPrompt alone = prompt with { Request = prompt.Request with { Arrival = TimeSpan.Zero, OutputTokens = 2 } };
            var tries = new List<RequestTiming>();
            for (int i = 0; i < 2; i++)
            {
                LoadRun r = await LoadGenerator.RunAsync(client, [alone], new ChatOptions { Temperature = 0, Seed = 1 }, null, null, ct).ConfigureAwait(false);
                tries.AddRange(r.Timings.Where(t => t.Outcome == RequestOutcome.Completed && t.TimeToFirstToken is not null));
            }

            ct.ThrowIfCancellationRequested();
            if (tries.Count > 0)
            {
                RequestTiming fastest = tries.MinBy(t => t.TimeToFirstToken!.Value)!;
                points.Add(new IdlePoint(fastest.PromptTokens, fastest.TimeToFirstToken!.Value.TotalMilliseconds));
            }
        }

        return points;
    }

    private static (IReadOnlyList<BenchRequest> Requests, string Description, double? Qps) BuildWorkload(
        ParseResult parse, Option<FileInfo?> trace, Option<int> requests, Option<double> qps, Option<LengthDistribution> prompt, Option<LengthDistribution> output, RunSettings run)
    {
        var c = CultureInfo.InvariantCulture;
        double rate = parse.GetValue(qps);
        string arrivals = run.Capacity ? "Poisson arrivals at the searched rate" : rate > 0 ? string.Create(c, $"Poisson arrivals at {rate:G4} req/s") : "all at once";
        if (parse.GetValue(trace) is { } file)
        {
            IReadOnlyList<BenchRequest> rows = BenchWorkload.ReadTrace(file.FullName);
            if (parse.GetResult(requests) is { Implicit: false })
            {
                rows = [.. rows.Take(Math.Max(1, parse.GetValue(requests)))];
            }

            return rate > 0 && !run.Capacity
                ? (BenchWorkload.WithArrivals(rows, rate, run.Seed), string.Create(c, $"{rows.Count} requests of trace {file.Name}, {arrivals}"), rate)
                : (rows, string.Create(c, $"{rows.Count} requests of trace {file.Name}, {(run.Capacity ? arrivals : "at its times")}"), null);
        }

        int count = parse.GetValue(requests);
        if (count < 1)
        {
            throw new ArgumentException("--requests must be 1 or more.");
        }

        LengthDistribution p = parse.GetValue(prompt)!, o = parse.GetValue(output)!;
        return (BenchWorkload.Synthetic(count, run.Capacity ? 0 : rate, p, o, run.Seed), string.Create(c, $"{count} requests, prompt {p} tokens, output {o} tokens, {arrivals}, seed {run.Seed}"), rate > 0 && !run.Capacity ? rate : null);
    }

    /// <summary>The prompts, counted with the model's tokenizer and chat template so each has the requested length where the words allow.</summary>
    private static BenchPrompt[] BuildPrompts(string modelPath, IReadOnlyList<BenchRequest> workload)
    {
        using var counter = new PromptTokenCounter(modelPath);
        var builder = new PromptBuilder(counter.Count);
        return [.. workload.Select(r => new BenchPrompt(r, builder.Build(r.Index, r.PromptTokens)))];
    }

    private static List<string> ParseTargets(string[] values)
    {
        var targets = values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct().ToList();
        foreach (string t in targets)
        {
            if (t is not (InProcess or LlamaServer) && !(Uri.TryCreate(t, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https"))
            {
                throw new ArgumentException($"--target '{t}' is not {InProcess}, {LlamaServer} or an http(s) URL.");
            }
        }

        return targets.Count > 0 ? targets : [InProcess];
    }

    /// <summary>The base address the client adds <c>v1/chat/completions</c> to: the URL without a trailing /v1.</summary>
    private static Uri ApiBase(string url)
    {
        string trimmed = url.TrimEnd('/');
        trimmed = trimmed.EndsWith("/v1", StringComparison.OrdinalIgnoreCase) ? trimmed[..^3] : trimmed;
        return new Uri(trimmed + "/");
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

    private static double Positive(double value, string option) =>
        value > 0 && double.IsFinite(value) ? value : throw new ArgumentException($"{option} must be a positive number; it is {value.ToString(CultureInfo.InvariantCulture)}.");

    /// <summary>How each target is measured: warm-up, time limit, and the capacity search.</summary>
    private sealed record RunSettings(int Warmup, TimeSpan? TimeLimit, bool Capacity, double TbtSloMs, double DelaySloMs, double Precision, int Probes, int Seed, double? StartQps);
}
