using System.Diagnostics;
using System.Globalization;
using LlmPq.Host.Commands;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Runner;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Benchmarking;

/// <summary>What <see cref="PlanValidation"/> needs besides the plan: the model, the cluster, the runs.</summary>
/// <param name="Model">The source model's path (what the plans were made for).</param>
/// <param name="Spec">The model's shape.</param>
/// <param name="Indicator">The indicator the plans were made with (to price them again).</param>
/// <param name="ClusterPath">The cluster file.</param>
/// <param name="Cluster">The cluster.</param>
/// <param name="Repeats">Runs of the workload per plan.</param>
/// <param name="Folder">Where the plans (<c>plans/NAME.json</c>) and the report go.</param>
internal sealed record PlanValidationSettings(string Model, ModelSpec Spec, QualityIndicatorTable Indicator, string ClusterPath, ClusterSpec Cluster, int Repeats, string Folder);

/// <summary>
/// Runs a plan and every baseline of it that fits on the cluster, one after another, each quantized and served as
/// <c>llmpq serve --plan</c> serves it, under the planner's workload (B requests of s prompt tokens at once, n output
/// tokens each), and measures what the cost models predict.
/// </summary>
internal static class PlanValidation
{
    /// <summary>
    /// Runs every plan: <paramref name="prepare"/> quantizes the model by a plan and gives the options that serve it
    /// (the plan's file given); each is started, warmed with one short request, run <see cref="PlanValidationSettings.Repeats"/>
    /// times and stopped, with every process it started, before the next. A plan that fails to run gets a note and the
    /// others still run; cancellation stops the one running and ends the run.
    /// </summary>
    public static async Task<PlanValidationReport> RunAsync(
        PlanValidationSettings settings, Plan plan, Func<Plan, string, CancellationToken, Task<LlmPqOptions>> prepare, ILoggerFactory loggers, TextWriter progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(prepare);
        ArgumentNullException.ThrowIfNull(progress);
        var c = CultureInfo.InvariantCulture;
        (string Name, ICostModel Model)[] costModels = CostModels(settings.Cluster);
        (string Name, Plan Plan)[] candidates = [("LlmPq", plan), .. plan.Baselines.Where(b => b.Fits).Select(b => (b.Name, plan.ForBaseline(b)))];
        foreach (BaselinePlan unfit in plan.Baselines.Where(b => !b.Fits))
        {
            progress.WriteLine($"{unfit.Name}: does not fit, not run ({unfit.Note})");
        }

        string[] prompts = Prompts(settings.Model, plan.Workload);
        var rows = new List<PlanValidationRow>();
        string plans = Path.Combine(settings.Folder, "plans");
        Directory.CreateDirectory(plans);
        for (int i = 0; i < candidates.Length; i++)
        {
            (string name, Plan candidate) = candidates[i];
            PredictedPerformance[] predicted = [.. costModels.Select(m => Planner.Evaluate(candidate, settings.Spec, settings.Cluster, settings.Indicator, m.Model))];
            string layout = Layout(candidate);
            string label = string.Create(c, $"[{i + 1}/{candidates.Length}] {name}");
            progress.WriteLine($"{label}: {layout}");
            string file = Path.Combine(plans, FileName(name) + ".json");
            await File.WriteAllTextAsync(file, candidate.ToJson(), cancellationToken).ConfigureAwait(false);
            try
            {
                MeasuredPerformance measured = await MeasureAsync(settings, candidate, file, prompts, prepare, loggers, progress, label, cancellationToken).ConfigureAwait(false);
                rows.Add(new PlanValidationRow(name, layout, predicted, measured));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // One plan that cannot run (a stage out of memory, a refused model) must not hide the others' numbers.
                progress.WriteLine($"{label}: did not run: {ex.Message}");
                rows.Add(new PlanValidationRow(name, layout, predicted, null, $"did not run: {ex.Message}"));
            }
        }

        return new PlanValidationReport(settings.Model, settings.ClusterPath, plan.Workload, settings.Repeats, [.. costModels.Select(m => m.Name)], rows);
    }

    /// <summary>
    /// Gets the cost models to compare: the planner's own (a device's profile where it has one, else the roofline), and
    /// the roofline alone beside it when some device is profiled.
    /// </summary>
    public static (string Name, ICostModel Model)[] CostModels(ClusterSpec cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return cluster.Devices.Any(d => d.Profile is not null)
            ? [("profiled", new ProfiledCostModel()), ("roofline", new RooflineCostModel())]
            : [("roofline", new ProfiledCostModel())];
    }

    /// <summary>A plan's stages in a few words: <c>s0 0-3 q8_0×4, s1 4-7 q4_K×4</c>.</summary>
    public static string Layout(Plan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return string.Join(", ", plan.Stages.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Device.Name} {s.LayerStart}-{s.LayerEnd - 1} {PlanTable.TypeCounts(s.LayerTypes)}")));
    }

    private static async Task<MeasuredPerformance> MeasureAsync(
        PlanValidationSettings settings, Plan plan, string planFile, string[] prompts, Func<Plan, string, CancellationToken, Task<LlmPqOptions>> prepare, ILoggerFactory loggers, TextWriter progress, string label, CancellationToken cancellationToken)
    {
        var c = CultureInfo.InvariantCulture;
        var clock = Stopwatch.StartNew();
        LlmPqOptions options = await prepare(plan, planFile, cancellationToken).ConfigureAwait(false);
        progress.WriteLine(string.Create(c, $"{label}: quantized in {clock.Elapsed.TotalSeconds:F1} s ({Path.GetFileName(Path.GetDirectoryName(options.ModelPath))}/{Path.GetFileName(options.ModelPath)})"));

        clock.Restart();
        await using var client = LlmPqChatClient.Create(options, loggers);
        await client.StartAsync(cancellationToken).ConfigureAwait(false);

        // Prompts are not taken from the cache: every repeat prefills all of them, as the workload does once.
        var chat = new ChatOptions
        {
            Temperature = 0.7f,
            Seed = 7,
            MaxOutputTokens = plan.Workload.GeneratedTokens,
            AdditionalProperties = new() { ["cache_prompt"] = false },
        };

        // A first run of the workload pays for loading the weights into the stages, allocating the graphs and compiling
        // both processes' side of the stream; not part of the measurement.
        await LoadGenerator.RunConcurrentAsync(client, prompts, chat, cancellationToken).ConfigureAwait(false);
        string processes = client.GetService<LlmPqPipeline>() is { } pipeline
            ? string.Create(c, $"{pipeline.Stages.Count} stage servers (pid {string.Join(", ", pipeline.Stages.Select(s => s.ProcessId?.ToString(c) ?? s.Endpoint))}) and the runner (pid {pipeline.RunnerProcessId})")
            : "the engine in process";
        progress.WriteLine(string.Create(c, $"{label}: started {processes} and ran the workload once untimed in {clock.Elapsed.TotalSeconds:F1} s"));

        var repeats = new List<MeasuredPerformance>(settings.Repeats);
        for (int r = 0; r < settings.Repeats; r++)
        {
            clock.Restart();
            LoadRun run = await LoadGenerator.RunConcurrentAsync(client, prompts, chat, cancellationToken).ConfigureAwait(false);
            MeasuredPerformance measured = MeasuredPerformance.From(run, plan.Workload.GeneratedTokens);
            repeats.Add(measured);
            progress.WriteLine(string.Create(c, $"{label}: run {r + 1}/{settings.Repeats} in {clock.Elapsed.TotalSeconds:F1} s: {measured.ThroughputTokensPerSecond:F1} tok/s, prefill {measured.PrefillSeconds:F3} s, decode {measured.DecodeSeconds:F3} s (predicted {plan.Predicted.ThroughputTokensPerSecond:F1} tok/s)"));
        }

        await client.StopAsync(cancellationToken).ConfigureAwait(false);
        return MeasuredPerformance.Median(repeats);
    }

    /// <summary>B prompts of s tokens each as the model's chat template counts them, no two sharing a prefix.</summary>
    private static string[] Prompts(string model, Workload workload)
    {
        using var counter = new PromptTokenCounter(model);
        var builder = new PromptBuilder(counter.Count);
        return [.. Enumerable.Range(0, workload.BatchSize).Select(i => builder.Build(string.Create(CultureInfo.InvariantCulture, $"Request {i}:"), i, workload.PromptTokens))];
    }

    private static string FileName(string name) =>
        string.Concat(name.ToLowerInvariant().Select(ch => char.IsAsciiLetterOrDigit(ch) ? ch : '-')).Trim('-');
}
