using System.CommandLine;
using System.Globalization;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq demo</c>: the main job on the embedded default. Today: a generated model served by the
/// continuous-batching engine, several concurrent streaming chats through <see cref="LlmPqChatClient"/>, and the
/// serving statistics. The planner, the quantizer and the multi-stage pipeline join it as they land.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var requests = new Option<int>("--requests") { Description = "Concurrent chats.", DefaultValueFactory = _ => 6 };
        var tokens = new Option<int>("--output-tokens") { Description = "Tokens per answer.", DefaultValueFactory = _ => 48 };
        var command = new Command("demo", "Generate a tiny model, serve it, and stream several concurrent chats through LlmPqChatClient.") { requests, tokens };
        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var c = CultureInfo.InvariantCulture;
            string model = Cli.DefaultModel();
            TinyLlamaModelOptions shape = Cli.DefaultModelShape;
            Console.WriteLine(string.Create(c, $"model    {model}: llama, {shape.Layers} layers × {shape.EmbeddingLength} wide, random weights, real 32000-token tokenizer"));

            var options = new LlmPqOptions { ModelPath = model, ContextLength = 1024, MaxSequences = 4, TokenBudget = 128 };
            using var loggers = Cli.CreateLoggerFactory(parse);
            await using var engine = new LlmPqEngine(options, loggers);
            await engine.StartAsync(ct).ConfigureAwait(false);
            using var client = new LlmPqChatClient(engine, options);
            Console.WriteLine(string.Create(c, $"engine   1 stage (in-process CPU), {options.MaxSequences} sequences, token budget {options.TokenBudget}, {engine.ContextLength} tokens per conversation"));
            Console.WriteLine("pending  planner, quantizer and multi-stage pipeline (the next steps of the project)");
            Console.WriteLine();

            // One chat streamed to the screen, then many at once for the statistics.
            var chatOptions = new ChatOptions { Temperature = 0.7f, Seed = 7, MaxOutputTokens = parse.GetValue(tokens) };
            Console.Write("user     Tell me about heterogeneous GPU clusters.\nllmpq    ");
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Tell me about heterogeneous GPU clusters.", chatOptions, ct).ConfigureAwait(false))
            {
                Console.Write(update.Text);
            }

            Console.WriteLine("\n         (random weights: the words are nonsense, the tokens, batching and timing are real)\n");
            string[] prompts = [.. Enumerable.Range(0, parse.GetValue(requests)).Select(i => $"Chat {i}: what is the best way to serve a model on mixed GPUs?")];
            LoadResult r = LoadResult.From(await LoadGenerator.RunConcurrentAsync(client, prompts, chatOptions, ct).ConfigureAwait(false));
            Console.WriteLine(string.Create(c, $"serving  {r.Completed} concurrent streaming chats in {r.WallSeconds:F2} s, {r.Failed} failed"));
            Console.WriteLine(string.Create(c, $"         throughput {r.ThroughputTokensPerSecond:F0} tokens/s"));
            Console.WriteLine(string.Create(c, $"         TTFT p50 {r.TtftP50Ms:F1} ms, p99 {r.TtftP99Ms:F1} ms"));
            Console.WriteLine(string.Create(c, $"         TBT  p50 {r.TbtP50Ms:F2} ms, p99 {r.TbtP99Ms:F2} ms, max {r.TbtMaxMs:F2} ms"));
            return r.Failed == 0 ? 0 : 1;
        }));
        return command;
    }
}
