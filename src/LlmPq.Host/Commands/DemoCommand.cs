using System.CommandLine;
using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Planning;
using LlmPq.Runner;
using LlmPq.Stages;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq demo</c>: the whole way on the embedded default. A generated model, a heterogeneous cluster of three CPU
/// stages on this machine, the plan, the model quantized by it, the stage servers and the engine's runner process
/// started, several concurrent streaming chats through <see cref="LlmPqChatClient"/>, and the serving statistics.
/// </summary>
internal static class DemoCommand
{
    // Three stages of different sizes on one machine; docs/clusters/local-cpu-3stage.json is the same cluster.
    private const string Cluster = """
        { "devices": [ { "kind": "CPU", "name": "s0", "memoryGiB": 1,    "threads": 2 },
                       { "kind": "CPU", "name": "s1", "memoryGiB": 0.5,  "threads": 1 },
                       { "kind": "CPU", "name": "s2", "memoryGiB": 0.25, "threads": 1 } ] }
        """;

    public static Command Create()
    {
        var requests = new Option<int>("--requests") { Description = "Concurrent chats.", DefaultValueFactory = _ => 6 };
        var tokens = new Option<int>("--output-tokens") { Description = "Tokens per answer.", DefaultValueFactory = _ => 48 };
        var command = new Command("demo", "Plan a generated model on a local heterogeneous cluster, quantize it, serve it on a pipeline of stage processes, and stream concurrent chats.")
        {
            requests, tokens,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var c = CultureInfo.InvariantCulture;
            string source = Cli.DefaultModel();
            TinyLlamaModelOptions shape = Cli.DefaultModelShape;
            Console.WriteLine(string.Create(c, $"model    {source}: llama, {shape.Layers} layers × {shape.EmbeddingLength} wide, F16, random weights, real 32000-token tokenizer"));
            Console.WriteLine(string.Create(c, $"cluster  3 CPU stages on this machine: s0 1 GiB 2 threads, s1 0.5 GiB 1 thread, s2 0.25 GiB 1 thread"));
            Console.WriteLine();

            using var loggers = Cli.CreateLoggerFactory(parse);
            int parallel = parse.GetValue(requests);
            var workload = new Workload(parallel, 128, parse.GetValue(tokens));
            (Plan plan, string model) = await PlannedModel.PlanAndQuantizeAsync(source, ClusterSpec.Parse(Cluster), workload, loggers, ct).ConfigureAwait(false);
            PlanTable.Print(Console.Out, plan);
            Console.WriteLine();
            Console.WriteLine(string.Create(c, $"quantized {model} by the plan ({new FileInfo(model).Length / (double)(1 << 20):F1} MiB)"));

            var options = new LlmPqOptions { ModelPath = model, ContextLength = 512, RunnerPath = Cli.RunnerPath };
            PlanStages.Apply(options, plan);
            await using var client = LlmPqChatClient.Create(options, loggers);
            await client.StartAsync(ct).ConfigureAwait(false);
            PrintLayout(client.GetService<LlmPqPipeline>()!, plan, options);

            // One chat streamed to the screen, then many at once for the statistics.
            var chatOptions = new ChatOptions { Temperature = 0.7f, Seed = 7, MaxOutputTokens = parse.GetValue(tokens) };
            Console.Write("user     Tell me about heterogeneous GPU clusters.\nllmpq    ");
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Tell me about heterogeneous GPU clusters.", chatOptions, ct).ConfigureAwait(false))
            {
                Console.Write(update.Text);
            }

            Console.WriteLine("\n         (random weights: the words are nonsense, the tokens, batching, pipeline and timing are real)\n");
            string[] prompts = [.. Enumerable.Range(0, parallel).Select(i => $"Chat {i}: what is the best way to serve a model on mixed GPUs?")];
            LoadResult r = LoadResult.From(await LoadGenerator.RunConcurrentAsync(client, prompts, chatOptions, ct).ConfigureAwait(false));
            Console.WriteLine(string.Create(c, $"serving  {r.Completed} concurrent streaming chats in {r.WallSeconds:F2} s, {r.Failed} failed"));
            Console.WriteLine(string.Create(c, $"         throughput {r.ThroughputTokensPerSecond:F0} tokens/s"));
            Console.WriteLine(string.Create(c, $"         TTFT p50 {r.TtftP50Ms:F1} ms, p99 {r.TtftP99Ms:F1} ms"));
            Console.WriteLine(string.Create(c, $"         TBT  p50 {r.TbtP50Ms:F2} ms, p99 {r.TbtP99Ms:F2} ms, max {r.TbtMaxMs:F2} ms"));
            await client.StopAsync(ct).ConfigureAwait(false);
            Console.WriteLine("stopped  the runner and every stage server");
            return r.Failed == 0 ? 0 : 1;
        }));
        return command;
    }

    private static void PrintLayout(LlmPqPipeline pipeline, Plan plan, LlmPqOptions options)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"pipeline engine in runner process {pipeline.RunnerProcessId}; stages:"));
        IReadOnlyList<StageStatus> stages = pipeline.Stages;
        for (int i = 0; i < plan.Stages.Count; i++)
        {
            StagePlan s = plan.Stages[i];
            StageStatus status = stages[i];
            string types = PlanTable.TypeCounts(s.LayerTypes);
            Console.WriteLine(string.Create(c, $"         {i}: {s.Device.Name} ggml-rpc-server pid {status.ProcessId} on {status.Endpoint}, {s.Device.Threads} thread(s), layers {s.LayerStart}-{s.LayerEnd - 1} ({types}){(i == plan.Stages.Count - 1 ? " + output" : string.Empty)}"));
        }

        string overlap = options.PipelineParallelism ? "micro-batches pipelined across the stages" : $"the stages in turn (they want more threads than this machine's {Environment.ProcessorCount} cores)";
        Console.WriteLine(string.Create(c, $"         n_batch {options.TokenBudget}, n_ubatch {options.MicroBatchSize}, {options.MaxSequences} sequences, {overlap}"));
        Console.WriteLine();
    }
}
