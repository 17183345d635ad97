using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Planning;
using LlmPq.Stages;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Host.Profiling;

/// <summary>
/// Measures the coordinator's cost of an engine iteration outside <c>llama_decode</c> (<see cref="CoordinatorProfile"/>):
/// the engine's decode step on the 1-layer probe, in this process, minus that probe's <c>llama_decode</c> at the same
/// batch, at one sequence and at the workload's B, fitted as a fixed cost plus a cost per sequence; and, for a cluster
/// whose stages share this machine's cores, a decode step through its pipeline outside the layers and the head
/// (<see cref="PipelineStepProfile"/>), fitted the same way.
/// </summary>
internal static class CoordinatorProfiler
{
    private const int PromptTokens = 32;
    private const int OutputTokens = 17;
    private const int Repeats = 3;

    // Through a pipeline the steps spread more (its processes share the cores): more and longer runs.
    private const int PipelineRepeats = 5;
    private const int PipelineOutputTokens = 33;

    /// <summary>Measures the coordinator on this machine.</summary>
    /// <param name="model">The profiled model's shape (the probe has its widths and vocabulary).</param>
    /// <param name="batch">The workload's B, the most sequences a step samples.</param>
    /// <param name="probes">The folder of the probe models.</param>
    /// <param name="threads">This process's threads (0: every core).</param>
    /// <param name="cancellationToken">Cancels the measurement.</param>
    /// <returns>The profile.</returns>
    public static async Task<CoordinatorProfile> MeasureAsync(ModelSpec model, int batch, string probes, int threads, CancellationToken cancellationToken)
    {
        string path = ProbeModels.Write(model, ProbeModels.Short, GgmlType.F16, probes);
        int[] batches = [.. new[] { 1, batch }.Distinct()];
        int context = PromptTokens + (OutputTokens / 2);

        // The probe's own llama_decode at each batch, in this process, as the engine runs it.
        var local = new DeviceSpec { Name = "coordinator", Kind = "CPU", Host = "local", MemoryGiB = 1 };
        var grid = new ProfileGrid([new PrefillPoint(1, PromptTokens)], [.. batches.Select(b => new DecodePoint(b, context))], Repeats);
        double[] decode;
        using (ProbeTimer timer = ProbeTimer.Open(path, local, grid, threads))
        {
            timer.Fill(batch, context, cancellationToken);
            decode = [.. grid.Decode.Select(d => timer.Decode(d, cancellationToken))];
        }

        // The engine's whole step at each batch, the fastest of a few runs.
        var options = new LlmPqOptions
        {
            ModelPath = path,
            MaxSequences = batch,
            ContextLength = 4 * (PromptTokens + OutputTokens),
            TokenBudget = Math.Max(256, batch * 2 * PromptTokens),
            Threads = threads,
        };
        double[] step = await StepSecondsAsync(options, batches, OutputTokens, Repeats, warmUp: false, Enumerable.Min, cancellationToken).ConfigureAwait(false);
        return Fit(batches, [.. step.Select((s, i) => Math.Max(0, s - decode[i]))], batch, model.VocabularySize);
    }

    /// <summary>
    /// Measures a decode step through the pipeline that serves a cluster whose devices share this machine's cores
    /// (<see cref="PipelineStepProfile"/>): a probe of one layer per device, each on a local stage server with the
    /// device's threads and the head (in the plans' type) on the last, behind the runner, as <c>serve --plan</c> starts them; minus what
    /// <paramref name="cost"/> prices those layers and that head at, so the planner adds back exactly what was taken.
    /// </summary>
    /// <param name="model">The profiled model's shape (the probe has its widths and vocabulary).</param>
    /// <param name="cluster">The cluster, its devices profiled, in the order their stages run.</param>
    /// <param name="batch">The workload's B, the most sequences a step holds.</param>
    /// <param name="probes">The folder of the probe models.</param>
    /// <param name="cost">The cost model the planner prices layers with.</param>
    /// <param name="cancellationToken">Cancels the measurement.</param>
    /// <returns>The profile.</returns>
    public static async Task<PipelineStepProfile> MeasurePipelineAsync(ModelSpec model, ClusterSpec cluster, int batch, string probes, ICostModel cost, CancellationToken cancellationToken)
    {
        // The head in the type plans give it: the layer fits price it least well, and what they miss is then measured here.
        IReadOnlyList<DeviceSpec> devices = cluster.Devices;
        GgmlType head = PlanTypes.OutputType(model);
        string path = ProbeModels.Write(model, devices.Count, GgmlType.F16, probes, head);
        int[] batches = [.. new[] { 1, batch }.Distinct()];
        var options = new LlmPqOptions
        {
            ModelPath = path,
            MaxSequences = batch,
            ContextLength = 4 * (PromptTokens + PipelineOutputTokens),
            TokenBudget = Math.Max(256, batch * 2 * PromptTokens),

            // As serve --plan runs stages that want more threads than this machine has: one after another.
            PipelineParallelism = !PlanStages.Oversubscribed(devices.Select(d => d.Threads ?? 0), Environment.ProcessorCount),
        };
        foreach (DeviceSpec device in devices)
        {
            options.Stages.Add(new LlmPqStageOptions { Layers = 1, Device = "CPU", Threads = device.Threads ?? 0 });
        }

        // Contention is part of what is measured, so the typical run, as plan --validate reports it, not the fastest.
        double[] step = await StepSecondsAsync(options, batches, PipelineOutputTokens, PipelineRepeats, warmUp: true, MeasuredPerformance.MedianOf, cancellationToken).ConfigureAwait(false);
        ModelSpec probe = ModelSpec.FromGguf(GgufReader.Read(path));
        long context = PromptTokens + (PipelineOutputTokens / 2);
        double Compute(int b) =>
            devices.Sum(d => cost.DecodeSeconds(d, probe.Layers[0], GgmlType.F16, b, context)) + cost.DecodeSeconds(devices[^1], probe.Output, head, b, 0);
        CoordinatorProfile fit = Fit(batches, [.. step.Select((s, i) => Math.Max(0, s - Compute(batches[i])))], batch, model.VocabularySize);
        return new PipelineStepProfile(devices.Count, fit.FixedMs, fit.PerSequenceMs) { Sequences = batch };
    }

    /// <summary>Fits the coordinator's seconds per step at each batch as fixed + per sequence × batch (neither negative).</summary>
    /// <param name="batches">The batches measured.</param>
    /// <param name="seconds">The seconds per step outside <c>llama_decode</c> at each.</param>
    /// <param name="batch">The largest batch, recorded.</param>
    /// <param name="vocabulary">The vocabulary sampled over, recorded.</param>
    /// <returns>The profile in milliseconds.</returns>
    public static CoordinatorProfile Fit(IReadOnlyList<int> batches, IReadOnlyList<double> seconds, int batch, long vocabulary)
    {
        LeastSquaresFit fit = LeastSquares.FitNonNegative([.. batches.Select(b => new double[] { 1, b })], seconds);
        return new CoordinatorProfile(Math.Round(fit.Coefficients[0] * 1000, 4), Math.Round(fit.Coefficients[1] * 1000, 4))
        {
            Sequences = batch,
            Vocabulary = vocabulary,
        };
    }

    /// <summary>The engine's decode step at each batch, over some runs of that many prompts, aggregated.</summary>
    private static async Task<double[]> StepSecondsAsync(LlmPqOptions options, int[] batches, int outputTokens, int repeats, bool warmUp, Func<IEnumerable<double>, double> aggregate, CancellationToken cancellationToken)
    {
        var chat = new ChatOptions
        {
            Temperature = 0.7f,
            Seed = 7,
            MaxOutputTokens = outputTokens,
            AdditionalProperties = new() { ["cache_prompt"] = false },
        };
        string[] prompts;
        using (var counter = new PromptTokenCounter(options.ModelPath))
        {
            var builder = new PromptBuilder(counter.Count);
            prompts = [.. Enumerable.Range(0, batches.Max()).Select(i => builder.Build(string.Create(CultureInfo.InvariantCulture, $"Request {i}:"), i, PromptTokens))];
        }

        double[] step = new double[batches.Length];
        await using (var client = LlmPqChatClient.Create(options, NullLoggerFactory.Instance))
        {
            await client.StartAsync(cancellationToken).ConfigureAwait(false);
            if (warmUp)
            {
                await LoadGenerator.RunConcurrentAsync(client, prompts, chat, cancellationToken).ConfigureAwait(false);
            }

            for (int i = 0; i < batches.Length; i++)
            {
                var runs = new List<double>(repeats);
                for (int r = 0; r < repeats; r++)
                {
                    LoadRun run = await LoadGenerator.RunConcurrentAsync(client, prompts[..batches[i]], chat, cancellationToken).ConfigureAwait(false);
                    MeasuredPerformance measured = MeasuredPerformance.From(run, outputTokens);
                    long steps = Math.Max(1, (measured.OutputTokens / batches[i]) - 1);
                    runs.Add(measured.DecodeSeconds / steps);
                }

                step[i] = aggregate(runs);
            }

            await client.StopAsync(cancellationToken).ConfigureAwait(false);
        }

        return step;
    }
}
