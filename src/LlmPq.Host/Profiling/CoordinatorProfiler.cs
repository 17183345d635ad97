using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Planning;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Host.Profiling;

/// <summary>
/// Measures the coordinator's cost of an engine iteration outside <c>llama_decode</c> (<see cref="CoordinatorProfile"/>):
/// the engine's decode step on the 1-layer probe, in this process, minus that probe's <c>llama_decode</c> at the same
/// batch, at one sequence and at the workload's B, fitted as a fixed cost plus a cost per sequence.
/// </summary>
internal static class CoordinatorProfiler
{
    private const int PromptTokens = 32;
    private const int OutputTokens = 17;
    private const int Repeats = 3;

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
        var chat = new ChatOptions
        {
            Temperature = 0.7f,
            Seed = 7,
            MaxOutputTokens = OutputTokens,
            AdditionalProperties = new() { ["cache_prompt"] = false },
        };
        string[] prompts;
        using (var counter = new PromptTokenCounter(path))
        {
            var builder = new PromptBuilder(counter.Count);
            prompts = [.. Enumerable.Range(0, batch).Select(i => builder.Build(string.Create(CultureInfo.InvariantCulture, $"Request {i}:"), i, PromptTokens))];
        }

        double[] step = new double[batches.Length];
        await using (var client = LlmPqChatClient.Create(options, NullLoggerFactory.Instance))
        {
            await client.StartAsync(cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < batches.Length; i++)
            {
                step[i] = double.PositiveInfinity;
                for (int r = 0; r < Repeats; r++)
                {
                    LoadRun run = await LoadGenerator.RunConcurrentAsync(client, prompts[..batches[i]], chat, cancellationToken).ConfigureAwait(false);
                    MeasuredPerformance measured = MeasuredPerformance.From(run, OutputTokens);
                    long steps = Math.Max(1, (measured.OutputTokens / batches[i]) - 1);
                    step[i] = Math.Min(step[i], measured.DecodeSeconds / steps);
                }
            }

            await client.StopAsync(cancellationToken).ConfigureAwait(false);
        }

        return Fit(batches, [.. step.Select((s, i) => Math.Max(0, s - decode[i]))], batch, model.VocabularySize);
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
}
