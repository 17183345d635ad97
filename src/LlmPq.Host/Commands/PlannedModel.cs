using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Quantization;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary>The way from a model and a cluster to what the pipeline serves: a plan, and the model quantized by it.</summary>
internal static class PlannedModel
{
    /// <summary>Plans <paramref name="model"/> on <paramref name="cluster"/> (the indicator from its weights) and quantizes it by the plan beside the default model.</summary>
    /// <returns>The plan and the quantized model's path.</returns>
    public static async Task<(Plan Plan, string Model)> PlanAndQuantizeAsync(string model, ClusterSpec cluster, Workload workload, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        ModelSpec spec = ModelSpec.FromGguf(GgufReader.Read(model));
        QualityIndicatorTable indicator = QualityIndicator.Compute(model, cancellationToken: cancellationToken);
        Plan plan = Planner.Create(spec, cluster, workload, QualityTarget.Default, indicator, cancellationToken: cancellationToken);
        string output = Path.Combine(Path.GetTempPath(), "llmpq", string.Create(CultureInfo.InvariantCulture, $"{Path.GetFileNameWithoutExtension(model)}.planned.gguf"));
        await PlanQuantizer.QuantizeAsync(model, plan, output, loggerFactory: loggers, cancellationToken: cancellationToken).ConfigureAwait(false);
        return (plan, output);
    }

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
