using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LlmPq.Gguf;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Quantization;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary>The way from a model and a cluster to what the pipeline serves: a plan, and the model quantized by it.</summary>
internal static partial class PlannedModel
{
    // Past this the cache says how to prune it, once per new model.
    private const long LargeCache = 20L << 30;

    /// <summary>
    /// Plans <paramref name="model"/> on <paramref name="cluster"/> (the indicator from its weights) and quantizes it by
    /// the plan, once: the result is kept at <see cref="OutputPath"/> and reused while the source and the plan are the same.
    /// </summary>
    /// <returns>The plan and the quantized model's path.</returns>
    public static async Task<(Plan Plan, string Model)> PlanAndQuantizeAsync(string model, ClusterSpec cluster, Workload workload, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        ModelSpec spec = ModelSpec.FromGguf(GgufReader.Read(model));
        QualityIndicatorTable indicator = QualityIndicator.Compute(model, cancellationToken: cancellationToken);
        Plan plan = Planner.Create(spec, cluster, workload, QualityTarget.Default, indicator, cancellationToken: cancellationToken);
        return (plan, await QuantizeAsync(model, plan, loggers, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Quantizes <paramref name="model"/> by <paramref name="plan"/>, once: the result is kept at <see cref="OutputPath"/> and reused while the source and the plan's types are the same.</summary>
    /// <returns>The quantized model's path.</returns>
    public static async Task<string> QuantizeAsync(string model, Plan plan, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        string output = OutputPath(model, plan);
        if (File.Exists(output))
        {
            // The cache's record of use: 'llmpq planned-cache --prune' removes models unused for a while.
            try
            {
                File.SetLastAccessTimeUtc(output, DateTime.UtcNow);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Another user's cache file, or pruned this instant: the model is still there or quantized again below.
            }
        }

        if (!File.Exists(output))
        {
            // Quantize under a name of its own and rename, so that a concurrent run never reads a half-written model.
            Directory.CreateDirectory(Path.GetDirectoryName(output)!);
            string partial = string.Create(CultureInfo.InvariantCulture, $"{output}.{Guid.NewGuid():N}.partial.gguf");
            try
            {
                await PlanQuantizer.QuantizeAsync(model, plan, partial, loggerFactory: loggers, cancellationToken: cancellationToken).ConfigureAwait(false);
                File.Move(partial, output, overwrite: true);
            }
            finally
            {
                File.Delete(partial);
            }

            IReadOnlyList<PlannedModelCache.Entry> cached = PlannedModelCache.List(CacheFolder);
            long bytes = cached.Sum(e => e.Bytes);
            if (bytes > LargeCache)
            {
                LogLargeCache(loggers.CreateLogger(typeof(PlannedModel)), cached.Count, bytes / (double)(1L << 30), CacheFolder);
            }
        }

        return output;
    }

    [LoggerMessage(320, LogLevel.Warning, "{Count} planned models take {GiB:0.0} GiB in {Folder}; 'llmpq planned-cache --prune' removes those unused for 7 days.")]
    private static partial void LogLargeCache(ILogger logger, int count, double giB, string folder);

    /// <summary>
    /// Quantizes <paramref name="model"/> by the plan written at <paramref name="planPath"/> and gives the options that
    /// serve it as <c>llmpq serve --model QUANTIZED --plan PLAN</c> does: the plan read back and checked against the
    /// quantized model, the engine's defaults, the plan's stages, token budget, micro-batch and sequences.
    /// </summary>
    /// <param name="model">The source model.</param>
    /// <param name="plan">The plan (written at <paramref name="planPath"/>).</param>
    /// <param name="planPath">The plan's file.</param>
    /// <param name="contextLength">Tokens per sequence.</param>
    /// <param name="loggers">The quantizer's loggers.</param>
    /// <param name="cancellationToken">Cancels the quantization.</param>
    /// <returns>The pipeline's options.</returns>
    public static async Task<LlmPqOptions> PipelineOptionsAsync(string model, Plan plan, string planPath, int contextLength, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        string quantized = await QuantizeAsync(model, plan, loggers, cancellationToken).ConfigureAwait(false);
        (Plan served, string? warning) = Load(quantized, planPath);
        if (warning is not null)
        {
            throw new InvalidDataException(warning);
        }

        var options = new LlmPqOptions { ModelPath = quantized, ContextLength = contextLength, RunnerPath = Cli.RunnerPath };
        PlanStages.Apply(options, served);
        return options;
    }

    /// <summary>
    /// Gets where the model quantized by <paramref name="plan"/> is kept: in this user's local data folder (not the shared
    /// temporary folder, where other users could replace it), in a folder named by a hash of the source's path, size and
    /// time and of the plan's types (all the quantizer reads of it), under the source's name (which becomes the served
    /// model's id).
    /// </summary>
    public static string OutputPath(string model, Plan plan)
    {
        var source = new FileInfo(model);
        string key = string.Create(CultureInfo.InvariantCulture, $"{source.FullName}\n{source.Length}\n{source.LastWriteTimeUtc.Ticks}\n{plan.EmbeddingType} {plan.OutputType} {string.Join(' ', plan.LayerTypes())}");
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16];
        return Path.Combine(CacheFolder, hash, Path.GetFileNameWithoutExtension(model) + ".planned.gguf");
    }

    /// <summary>Gets the folder that holds the planned models, one folder each (<see cref="PlannedModelCache"/> lists and prunes it).</summary>
    public static string CacheFolder =>
        Path.Combine(
            Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create) is { Length: > 0 } data ? data : Path.GetTempPath(),
            "llmpq",
            "planned");

    /// <summary>Reads a plan for <paramref name="model"/>, refusing one made for another model.</summary>
    /// <returns>The plan, and a warning when the model's layer types are not the plan's (it was not quantized by it).</returns>
    public static (Plan Plan, string? Warning) Load(string model, string planPath)
    {
        Plan plan = Plan.Load(planPath);
        GgufFile file = GgufReader.Read(model);
        PlanQuantizer.CheckPlanFits(ModelSpec.FromGguf(file), plan, model);
        IReadOnlyList<GgmlType> types = plan.LayerTypes();
        bool asPlanned = file.Tensors.Where(t => t.Layer is int && GgufModelReader.IsQuantized(t)).All(t => t.Type == types[t.Layer!.Value]);
        return (plan, asPlanned ? null : $"{model}'s layer types are not the plan's; 'llmpq quantize --model {model} --plan {planPath} --out OUT' writes the planned model.");
    }
}
