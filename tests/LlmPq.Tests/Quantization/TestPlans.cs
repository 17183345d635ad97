using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Quantization;

/// <summary>Plans with chosen layer types for a model file, on one CPU stage.</summary>
public static class TestPlans
{
    public static Plan With(string modelPath, IReadOnlyList<GgmlType> layerTypes, GgmlType embedding = GgmlType.Q8_0, GgmlType output = GgmlType.Q8_0)
    {
        ModelSpec model = ModelSpec.FromGguf(GgufReader.Read(modelPath));
        var device = new PlanDevice("CPU", "cpu", 1L << 30, "local", null);
        return new Plan
        {
            Model = model.Name,
            ModelShape = Planner.ShapeFingerprint(model),
            LayerCount = model.LayerCount,
            Workload = new Workload(1, 64, 16),
            Theta = 0,
            Stages = [new StagePlan(device, 0, model.LayerCount, layerTypes, 0, 0, 0)],
            EmbeddingType = embedding,
            OutputType = output,
            PrefillMicroBatch = 1,
            DecodeMicroBatch = 1,
            TokenBudget = 64,
            Indicator = 0,
            IndicatorMethod = "test",
            Predicted = new PredictedPerformance(0, 0, 0),
        };
    }

    public static Plan Uniform(string modelPath, GgmlType type) =>
        With(modelPath, [.. Enumerable.Repeat(type, ModelSpec.FromGguf(GgufReader.Read(modelPath)).LayerCount)]);
}
