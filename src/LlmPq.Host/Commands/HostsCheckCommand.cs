using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Host.Emulation;
using LlmPq.Planning;
using LlmPq.Runner;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq hosts-check</c>: serves a model on a cluster's emulated hosts, measures a prefill step and a decode step
/// with the link at its declared rate and at a faster one, and sets the hop the difference shows beside the cost
/// model's (<see cref="HopCheck"/>).
/// </summary>
internal static class HostsCheckCommand
{
    private static readonly string[] s_words = ["river", "stone", "lamp", "orbit", "candle", "meadow", "signal", "harbor", "copper", "winter", "garden", "needle"];

    public static Command Create()
    {
        var cluster = new Option<FileInfo>("--cluster", "-c") { Description = "Cluster file of the coordinator and one other host (e.g. docs/clusters/local-2host-emulated.json); its devices, in file order, are the stages.", Required = true };
        var model = new Option<FileInfo?>("--model", "-m") { Description = "GGUF model (default: the generated 8-layer, 256-wide one)." };
        var tokens = new Option<int>("--prompt-words") { Description = "Words of each prefill prompt (about 1.3 tokens each).", DefaultValueFactory = _ => 300 };
        var repeats = new Option<int>("--repeats", "-r") { Description = "Measurements at each rate, alternating the rates; the medians are compared.", DefaultValueFactory = _ => 7 };
        var decodeTokens = new Option<int>("--decode-tokens") { Description = "Tokens each decode measurement generates.", DefaultValueFactory = _ => 24 };
        var factor = new Option<double>("--factor") { Description = "The comparison rate, as a multiple of the declared one.", DefaultValueFactory = _ => 10 };
        var command = new Command("hosts-check", "On emulated hosts (root; see docs/emulated-hosts.md), check the cost model's link term against the hop measured through the pipeline at two tbf rates.")
        {
            cluster, model, tokens, repeats, decodeTokens, factor,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            if (parse.GetValue(repeats) < 1 || parse.GetValue(tokens) < 1 || parse.GetValue(decodeTokens) < 2)
            {
                throw new ArgumentException("--repeats and --prompt-words are at least 1, --decode-tokens at least 2.");
            }

            HopCheck check = HopCheck.For(ClusterSpec.Load(parse.GetValue(cluster)!.FullName), parse.GetValue(factor));
            string modelPath = parse.GetValue(model)?.FullName ?? Cli.DefaultModel();
            ModelSpec spec = ModelSpec.FromGguf(GgufReader.Read(modelPath));
            using ILoggerFactory loggers = Cli.CreateLoggerFactory(parse);
            await using EmulatedHosts hosts = await EmulatedHosts.StartAsync(check.Cluster, loggers, ct).ConfigureAwait(false);
            foreach (string line in hosts.Describe())
            {
                Console.Error.WriteLine($"llmpq: emulated {line}");
            }

            int promptWords = parse.GetValue(tokens);
            await using var pipeline = new LlmPqPipeline(Options(hosts.Cluster, hosts.Cluster.Coordinator, modelPath, spec.LayerCount, promptWords), loggers);
            await pipeline.StartAsync(ct).ConfigureAwait(false);
            using var client = new LlmPqChatClient(pipeline);
            EmulatedHostPlan link = hosts.Plan.Hosts[0];
            double[] rates = [check.Gbps, check.Gbps * check.Factor];
            var samples = rates.ToDictionary(r => r, _ => (Prefill: new List<double>(), Decode: new List<double>()));
            var differences = (Prefill: new List<double>(), Decode: new List<double>());
            await MeasurePrefillAsync(client, promptWords, 0, ct).ConfigureAwait(false); // warm-up: first-use allocations
            long prefillTokens = 0;
            int rounds = parse.GetValue(repeats);
            IProgress<int>? progress = Cli.StatusLine<int>(done => $"llmpq: measured {done} of {rounds} rounds");
            for (int i = 0; i < rounds; i++)
            {
                foreach (double rate in i % 2 == 0 ? rates : rates.Reverse())
                {
                    await hosts.ShapeAsync(link, rate, ct).ConfigureAwait(false);
                    (double seconds, prefillTokens) = await MeasurePrefillAsync(client, promptWords, (2 * i) + 1 + Array.IndexOf(rates, rate), ct).ConfigureAwait(false);
                    samples[rate].Prefill.Add(seconds);
                    samples[rate].Decode.Add(await MeasureDecodeAsync(client, parse.GetValue(decodeTokens), ct).ConfigureAwait(false));
                }

                // Paired within a round, so the machine's load drifting between rounds cancels.
                differences.Prefill.Add(samples[rates[0]].Prefill[^1] - samples[rates[1]].Prefill[^1]);
                differences.Decode.Add(samples[rates[0]].Decode[^1] - samples[rates[1]].Decode[^1]);
                progress?.Report(i + 1);
            }

            Cli.EndStatusLine();
            Console.Write(Report(
                check,
                spec,
                prefillTokens,
                [.. rates.Select(r => (Median(samples[r].Prefill), Median(samples[r].Decode)))],
                (Median(differences.Prefill), Median(differences.Decode))));
            return 0;
        }));
        return command;
    }

    /// <summary>Writes the comparison: per phase, the cost model's hop, its link term and the measured one, and the bytes each implies.</summary>
    /// <param name="check">The check.</param>
    /// <param name="model">The model's shape.</param>
    /// <param name="prefillTokens">The tokens of the measured prefill step.</param>
    /// <param name="steps">The median (prefill, decode) step seconds at the declared rate, then at the faster one.</param>
    /// <param name="differences">The median of each round's step time at the declared rate less the one at the faster rate.</param>
    /// <returns>The report.</returns>
    internal static string Report(HopCheck check, ModelSpec model, long prefillTokens, IReadOnlyList<(double Prefill, double Decode)> steps, (double Prefill, double Decode) differences)
    {
        var text = new StringBuilder();
        LinkSpec link = check.Cluster.Link(check.Host, check.Cluster.Coordinator);
        text.AppendLine(CultureInfo.InvariantCulture, $"link {check.Cluster.Coordinator}–{check.Host}: {check.Gbps:0.###} Gbit/s declared, compared with {check.Gbps * check.Factor:0.###} Gbit/s (tc tbf); {check.Crossings} crossings per step; declared latency {link.LatencyMs:0.###} ms per transfer, not emulated (no netem) and cancelled out of the link terms below");
        text.AppendLine();
        text.AppendLine("phase    tokens  model bytes  model hop ms  model link ms  measured link ms  measured/model  measured bytes  step ms declared  step ms faster");
        foreach ((string phase, long tokens, double declared, double faster, double difference) in new[] { ("prefill", prefillTokens, steps[0].Prefill, steps[1].Prefill, differences.Prefill), ("decode", 1L, steps[0].Decode, steps[1].Decode, differences.Decode) })
        {
            long bytes = model.ActivationBytes(tokens);
            double predicted = check.PredictedLinkSeconds(bytes);
            double measured = check.MeasuredLinkSeconds(difference);
            text.AppendLine(CultureInfo.InvariantCulture, $"{phase,-8} {tokens,6} {check.Crossings * bytes,12} {check.PredictedSeconds(bytes, check.Gbps) * 1e3,13:0.000} {predicted * 1e3,14:0.000} {measured * 1e3,17:0.000} {measured / predicted,15:0.00} {check.BytesIn(measured),15:0} {declared * 1e3,17:0.00} {faster * 1e3,15:0.00}");
        }

        text.AppendLine();
        text.AppendLine("model bytes: hidden × tokens × 4 (F32) per crossing; model hop: ClusterSpec.TransferSeconds over the stage boundaries at the declared link (latency and same-host terms included);");
        text.AppendLine("link ms: the part that the link's rate makes, (t(declared) − t(faster)) × f/(f − 1), from the model, and from the median over rounds of the measured difference; measured bytes: what crosses in that time at the declared rate.");
        return text.ToString();
    }

    // The stages are the cluster's devices in file order, the layers split evenly: the coordinator's devices local
    // servers, the others the emulated hosts' endpoints.
    private static LlmPqOptions Options(ClusterSpec cluster, string coordinator, string modelPath, int layers, int promptWords)
    {
        int budget = Math.Max(512, promptWords * 2); // one prefill step for the whole prompt
        var options = new LlmPqOptions
        {
            ModelPath = modelPath,
            ContextLength = budget + 64,
            MaxSequences = 1,
            TokenBudget = budget,
            MicroBatchSize = budget,
            Threads = cluster.Devices[0].Threads ?? 1,
            RunnerPath = Cli.RunnerPath,
        };
        int count = cluster.Devices.Count;
        for (int i = 0; i < count; i++)
        {
            DeviceSpec device = cluster.Devices[i];
            bool local = device.Host == coordinator && device.Endpoint is null;
            options.Stages.Add(new LlmPq.Stages.LlmPqStageOptions
            {
                Layers = (layers / count) + (i < layers % count ? 1 : 0),
                Endpoint = local ? null : device.Endpoint,
                Device = local && device.IsCpu ? "CPU" : null,
                Threads = device.Threads ?? 0,
            });
        }

        return options;
    }

    // A prompt that shares nothing with the others past the template, and no prompt cache: every prefill is a full one.
    private static async Task<(double Seconds, long Tokens)> MeasurePrefillAsync(IChatClient client, int words, int seed, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        string prompt = string.Join(' ', Enumerable.Range(0, words).Select(_ => s_words[random.Next(s_words.Length)]));
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 1, AdditionalProperties = new() { ["cache_prompt"] = false } };
        var clock = Stopwatch.StartNew();
        ChatResponse response = await client.GetResponseAsync($"{seed}: {prompt}", options, cancellationToken).ConfigureAwait(false);
        return (clock.Elapsed.TotalSeconds, response.Usage?.InputTokenCount ?? throw new InvalidOperationException("The pipeline reported no usage."));
    }

    // The median gap between streamed tokens after the first: one decode step each.
    private static async Task<double> MeasureDecodeAsync(IChatClient client, int tokens, CancellationToken cancellationToken)
    {
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = tokens, AdditionalProperties = new() { ["cache_prompt"] = false } };
        var gaps = new List<double>();
        var clock = Stopwatch.StartNew();
        TimeSpan? last = null;
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Count on.", options, cancellationToken).ConfigureAwait(false))
        {
            if (update.Contents.OfType<TextContent>().Any())
            {
                TimeSpan now = clock.Elapsed;
                if (last is TimeSpan before)
                {
                    gaps.Add((now - before).TotalSeconds);
                }

                last = now;
            }
        }

        return gaps.Count > 0 ? Median(gaps) : throw new InvalidOperationException("The decode measurement streamed fewer than two tokens.");
    }

    private static double Median(List<double> values) => LoadResult.Percentile(values, 50)!.Value;
}
