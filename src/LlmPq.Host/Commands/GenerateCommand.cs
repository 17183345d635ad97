using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LlmPq.Engine;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq generate</c>: one greedy (or sampled) generation through the binding, optionally timed against llama-bench.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "GGUF model file.", Required = true };
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text.", DefaultValueFactory = _ => "Once upon a time" };
        var tokens = new Option<int>("--tokens", "-n") { Description = "Tokens to generate.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "0 samples greedily.", DefaultValueFactory = _ => 0f };
        var seed = new Option<uint>("--seed") { Description = "Seed of the random draw.", DefaultValueFactory = _ => 42u };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var compare = new Option<bool>("--compare-llama-bench") { Description = "Also time llama-bench of the same build on the same file (-p 0 -n N) and print the ratio." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("generate", "Generate text from a prompt with one sequence (the first-tokens path; a speed check against llama-bench).")
        {
            model, prompt, tokens, temperature, seed, threads, compare, json,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            using var loggers = Cli.CreateLoggerFactory(parse);
            LlamaBackend.EnsureInitialized(loggers);
            string path = parse.GetValue(model)!.FullName;
            int n = parse.GetValue(tokens);
            int t = parse.GetValue(threads) is > 0 and var tv ? tv : Environment.ProcessorCount;
            using LlamaModel m = LlamaModel.Load(path);
            using var context = new LlamaContext(m, new LlamaContextOptions { ContextLength = 2048, Threads = t });
            using var sampler = new LlamaSampler(m, new SamplingSettings { Temperature = parse.GetValue(temperature), Seed = parse.GetValue(seed) });
            int[] promptTokens = m.Tokenize(parse.GetValue(prompt)!, addSpecial: true, parseSpecial: false);
            GenerationResult result = SingleSequenceGenerator.Generate(context, sampler, promptTokens, n, ct);
            string text = m.Detokenize([.. result.Tokens]);
            double? anchor = parse.GetValue(compare) ? await LlamaBenchDecodeSpeedAsync(path, result.Tokens.Count, t, loggers.CreateLogger("LlmPq.Generate"), ct).ConfigureAwait(false) : null;

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    promptTokens = promptTokens.Length,
                    tokens = result.Tokens,
                    text,
                    prefillMs = result.PrefillTime.TotalMilliseconds,
                    decodeTokensPerSecond = result.DecodeTokensPerSecond,
                    llamaBenchTokensPerSecond = anchor,
                }));
            }
            else
            {
                Console.WriteLine(text);
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{promptTokens.Length} prompt tokens, {result.Tokens.Count} generated, {result.DecodeTokensPerSecond:F1} tokens/s decode ({t} threads)"));
                if (anchor is double a)
                {
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"llama-bench tg{result.Tokens.Count}: {a:F1} tokens/s; LlmPq/llama-bench = {result.DecodeTokensPerSecond / a:F2}"));
                }
            }

            return 0;
        }));
        return command;
    }

    /// <summary>Runs llama-bench of the same build on the same file and returns its mean token-generation speed.</summary>
    private static async Task<double> LlamaBenchDecodeSpeedAsync(string model, int tokens, int threads, ILogger logger, CancellationToken cancellationToken)
    {
        var c = CultureInfo.InvariantCulture;
        string[] arguments = ["-m", model, "-p", "0", "-n", tokens.ToString(c), "-t", threads.ToString(c), "-r", "3", "-o", "json"];
        await using ChildProcess bench = await ChildProcess.StartAsync(NativeLibraryLoader.ToolPath("llama-bench"), arguments, logger, keepStandardOutput: true).ConfigureAwait(false);
        using JsonDocument doc = JsonDocument.Parse(await bench.WaitForSuccessAsync(cancellationToken).ConfigureAwait(false));
        return doc.RootElement[0].GetProperty("avg_ts").GetDouble();
    }
}
