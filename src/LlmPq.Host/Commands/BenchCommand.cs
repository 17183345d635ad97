using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Host.Benchmarking;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq bench</c>: N concurrent streaming requests against the in-process client and against llama-server of
/// the same native build (same model, comparable settings, same OpenAI API), with throughput, TTFT and TBT and
/// their ratios from the same run.
/// </summary>
internal static class BenchCommand
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create()
    {
        var model = new Option<FileInfo?>("--model", "-m") { Description = "GGUF model (default: a generated 8-layer, 256-wide model)." };
        var requests = new Option<int>("--requests", "-n") { Description = "Requests, all sent at once.", DefaultValueFactory = _ => 32 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Approximate prompt length in tokens.", DefaultValueFactory = _ => 128 };
        var outputTokens = new Option<int>("--output-tokens") { Description = "Tokens to generate per request.", DefaultValueFactory = _ => 64 };
        var parallel = new Option<int>("--parallel") { Description = "Sequences decoded together (LlmPq MaxSequences, llama-server -np).", DefaultValueFactory = _ => 8 };
        var budget = new Option<int>("--token-budget") { Description = "Tokens per iteration (LlmPq TokenBudget, llama-server -b/-ub).", DefaultValueFactory = _ => 256 };
        var ctx = new Option<int>("--ctx") { Description = "Context per sequence.", DefaultValueFactory = _ => 1024 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var target = new Option<string>("--target") { Description = "in-process, llama-server, or both.", DefaultValueFactory = _ => "both" };
        target.AcceptOnlyFromAmong("in-process", "llama-server", "both");
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var command = new Command("bench", "Measure throughput, TTFT and TBT of concurrent streaming requests, in-process and against llama-server of the same build.")
        {
            model, requests, promptTokens, outputTokens, parallel, budget, ctx, threads, target, json,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            string modelPath = parse.GetValue(model)?.FullName ?? Cli.DefaultModel();
            var options = new LlmPqOptions
            {
                ModelPath = modelPath,
                MaxSequences = parse.GetValue(parallel),
                TokenBudget = parse.GetValue(budget),
                ContextLength = parse.GetValue(ctx),
                Threads = parse.GetValue(threads),
            };
            string[] prompts = [.. Enumerable.Range(0, parse.GetValue(requests)).Select(i => Prompt(i, parse.GetValue(promptTokens)))];
            var chatOptions = new ChatOptions { Temperature = 0, MaxOutputTokens = parse.GetValue(outputTokens), Seed = 1 };
            string which = parse.GetValue(target)!;
            var results = new List<LoadResult>();

            if (which is "in-process" or "both")
            {
                using var loggers = Cli.CreateLoggerFactory(parse);
                await using var engine = new LlmPqEngine(options, loggers);
                await engine.StartAsync(ct).ConfigureAwait(false);
                using var client = new LlmPqChatClient(engine, options);
                results.Add(await RunAsync("llmpq (in-process)", client, prompts, chatOptions, ct).ConfigureAwait(false));
            }

            if (which is "llama-server" or "both")
            {
                await using LlamaServerProcess server = await LlamaServerProcess.StartAsync(modelPath, options, [], ct).ConfigureAwait(false);
                using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
                using var client = new OpenAIHttpChatClient(http, server.BaseUri, Path.GetFileNameWithoutExtension(modelPath));
                results.Add(await RunAsync("llama-server", client, prompts, chatOptions, ct).ConfigureAwait(false));
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(results, s_json));
            }
            else
            {
                Print(results, options, prompts.Length, chatOptions.MaxOutputTokens!.Value);
            }

            return results.Sum(r => r.Failed) == 0 ? 0 : 1;
        }));
        return command;
    }

    private static async Task<LoadResult> RunAsync(string name, IChatClient client, string[] prompts, ChatOptions options, CancellationToken ct)
    {
        // One short warm-up request so neither side pays first-use costs in the measurement.
        await client.GetResponseAsync("warm up", new ChatOptions { Temperature = 0, MaxOutputTokens = 4 }, ct).ConfigureAwait(false);
        var progress = new Progress<int>(done => Console.Error.Write($"\r{name}: {done}/{prompts.Length} requests done"));
        (IReadOnlyList<RequestTiming> timings, TimeSpan wall) = await LoadGenerator.RunConcurrentAsync(client, prompts, options, progress, ct).ConfigureAwait(false);
        Console.Error.WriteLine();
        return LoadResult.From(name, timings, wall);
    }

    private static void Print(List<LoadResult> results, LlmPqOptions options, int requests, int outputTokens)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"{requests} concurrent requests, {outputTokens} output tokens each, {options.MaxSequences} sequences, token budget {options.TokenBudget}, model {Path.GetFileName(options.ModelPath)}"));
        Console.WriteLine();
        Console.WriteLine(string.Create(c, $"{"target",-22} {"ok",4} {"fail",4} {"tok/s",9} {"TTFT p50",9} {"TTFT p99",9} {"TBT p50",8} {"TBT p99",8} {"TBT max",8}  (ms)"));
        foreach (LoadResult r in results)
        {
            Console.WriteLine(string.Create(c, $"{r.Target,-22} {r.Completed,4} {r.Failed,4} {r.ThroughputTokensPerSecond,9:F1} {r.TtftP50Ms,9:F1} {r.TtftP99Ms,9:F1} {r.TbtP50Ms,8:F2} {r.TbtP99Ms,8:F2} {r.TbtMaxMs,8:F2}"));
        }

        if (results.Count == 2)
        {
            LoadResult a = results[0], b = results[1];
            Console.WriteLine();
            Console.WriteLine(string.Create(c, $"llmpq / llama-server: throughput {a.ThroughputTokensPerSecond / b.ThroughputTokensPerSecond:F2}x, TTFT p50 {a.TtftP50Ms / b.TtftP50Ms:F2}x, TTFT p99 {a.TtftP99Ms / b.TtftP99Ms:F2}x, TBT p50 {a.TbtP50Ms / b.TbtP50Ms:F2}x, TBT p99 {a.TbtP99Ms / b.TbtP99Ms:F2}x (lower is better for TTFT and TBT)"));
        }
    }

    private static string Prompt(int i, int tokens)
    {
        string[] words = ["the", "river", "carries", "light", "across", "old", "stones", "while", "birds", "count", "the", "hours"];
        return string.Join(' ', Enumerable.Range(0, Math.Max(1, tokens - 12)).Select(k => words[(k + i) % words.Length])) + $" (request {i})";
    }
}
