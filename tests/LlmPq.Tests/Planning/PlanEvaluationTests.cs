using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Planning.Optimizer;

namespace LlmPq.Tests.Planning;

/// <summary><see cref="Planner.Evaluate"/> (a given plan under a given cost model) and <see cref="Plan.ForBaseline"/>.</summary>
public sealed class PlanEvaluationTests
{
    private static readonly ModelSpec s_model = ModelSpec.Preset("opt-13b");
    private static readonly QualityIndicatorTable s_indicator = QualityIndicator.Fallback([.. s_model.Layers.Select(l => l.Parameters)]);
    private static readonly ClusterSpec s_cluster = ClusterSpec.Parse("""{ "devices": [ { "kind": "T4", "count": 2, "host": "a" }, { "kind": "V100-32G", "count": 1, "host": "a" } ] }""");
    private static readonly Workload s_workload = new(8, 128, 32);

    [Fact]
    public void The_plan_and_every_baseline_as_a_plan_are_priced_again_as_the_planner_priced_them()
    {
        Plan plan = Planner.Create(s_model, s_cluster, s_workload, QualityTarget.Default, s_indicator);

        AssertSame(plan.Predicted, Planner.Evaluate(plan, s_model, s_cluster, s_indicator, new ProfiledCostModel()));
        Assert.Contains(plan.Baselines, b => b.Fits);
        foreach (BaselinePlan baseline in plan.Baselines.Where(b => b.Fits))
        {
            Plan asPlan = plan.ForBaseline(baseline);

            Assert.Equal(baseline.Stages.Select(Layout), asPlan.Stages.Select(Layout));
            Assert.Equal(baseline.PrefillMicroBatch, asPlan.PrefillMicroBatch);
            Assert.Equal(plan.DecodeMicroBatch, asPlan.DecodeMicroBatch);
            Assert.Equal(plan.ModelShape, asPlan.ModelShape);
            Assert.Equal(plan.Workload, asPlan.Workload);
            Assert.Empty(asPlan.Baselines);
            Assert.True(asPlan.TokenBudget >= asPlan.PrefillMicroBatch * s_workload.PromptTokens * asPlan.Stages.Count, baseline.Name);
            AssertSame(baseline.Predicted!, Planner.Evaluate(asPlan, s_model, s_cluster, s_indicator, new ProfiledCostModel()));
        }
    }

    [Fact]
    public void Baselines_other_than_Uniform_run_with_the_prefill_micro_batch_equal_to_the_decode_micro_batch()
    {
        Plan plan = Planner.Create(s_model, s_cluster, s_workload, QualityTarget.Default, s_indicator);

        Assert.All(plan.Baselines.Where(b => b.Fits && b.Name != "Uniform"), b => Assert.Equal(plan.DecodeMicroBatch, plan.ForBaseline(b).PrefillMicroBatch));
    }

    [Fact]
    public void A_baseline_from_an_older_plan_file_without_its_micro_batch_runs_with_the_decode_micro_batch()
    {
        Plan plan = Planner.Create(s_model, s_cluster, s_workload, QualityTarget.Default, s_indicator);
        BaselinePlan baseline = plan.Baselines.First(b => b.Fits) with { PrefillMicroBatch = 0 };

        Assert.Equal(plan.DecodeMicroBatch, plan.ForBaseline(baseline).PrefillMicroBatch);
    }

    [Fact]
    public void A_baseline_that_does_not_fit_is_no_plan()
    {
        Plan plan = Planner.Create(s_model, s_cluster, s_workload, QualityTarget.Default, s_indicator);

        var ex = Assert.Throws<ArgumentException>(() => plan.ForBaseline(new BaselinePlan("PipeEdge", null, null, [], "nothing fits")));
        Assert.Contains("does not fit", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_plan_of_another_model_or_cluster_is_refused_with_what_differs()
    {
        Plan plan = Planner.Create(s_model, s_cluster, s_workload, QualityTarget.Default, s_indicator);
        ModelSpec other = ModelSpec.Preset("opt-30b");
        ClusterSpec renamed = ClusterSpec.Parse("""{ "devices": [ { "kind": "T4", "name": "x", "host": "a" }, { "kind": "T4", "name": "y", "host": "a" }, { "kind": "V100-32G", "name": "z", "host": "a" } ] }""");

        Assert.Contains("shape", Assert.Throws<ArgumentException>(() => Planner.Evaluate(plan, other, s_cluster, QualityIndicator.Fallback([.. other.Layers.Select(l => l.Parameters)]), new RooflineCostModel())).Message, StringComparison.Ordinal);
        Assert.Contains("is not in the cluster", Assert.Throws<ArgumentException>(() => Planner.Evaluate(plan, s_model, renamed, s_indicator, new RooflineCostModel())).Message, StringComparison.Ordinal);
        Assert.Contains("prefill micro-batch", Assert.Throws<ArgumentException>(() => Planner.Evaluate(plan with { PrefillMicroBatch = 1000 }, s_model, s_cluster, s_indicator, new RooflineCostModel())).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_plan_that_no_longer_fits_its_devices_is_a_planning_error()
    {
        Plan plan = Planner.Create(s_model, s_cluster, s_workload, QualityTarget.Default, s_indicator);
        ClusterSpec tiny = ClusterSpec.Parse("""{ "devices": [ { "kind": "T4", "count": 2, "host": "a", "memoryGiB": 1 }, { "kind": "V100-32G", "count": 1, "host": "a", "memoryGiB": 1 } ] }""");

        Assert.Throws<PlanningException>(() => Planner.Evaluate(plan, s_model, tiny, s_indicator, new RooflineCostModel()));
    }

    [Fact]
    public void With_a_profiled_device_the_same_plans_are_priced_by_the_profile_and_by_the_roofline()
    {
        // A synthetic profile far slower than the roofline, for every candidate type, on one of three CPU devices.
        string fit = """{ "fixed": 1.0, "perToken": 1e-3, "perTokenContext": 0 }""";
        string types = string.Join(", ", PlanTypes.Default.Select(t => $$"""{ "type": "{{GgmlTypes.Name(t)}}", "prefill": {{fit}}, "decode": {{fit}} }"""));
        ModelSpec model = ModelSpec.Preset("llama-3.1-8b");
        QualityIndicatorTable indicator = QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]);
        ClusterSpec cluster = ClusterSpec.Parse($$"""
            { "devices": [
                { "kind": "CPU", "name": "a", "memoryGiB": 16, "threads": 2, "host": "h",
                  "profile": { "layerParameters": {{model.Layers[0].MatrixParameters}}, "types": [ {{types}} ] } },
                { "kind": "CPU", "name": "b", "memoryGiB": 16, "threads": 2, "host": "h" } ] }
            """);
        Plan plan = Planner.Create(model, cluster, new Workload(4, 64, 16), QualityTarget.Default, indicator);

        (string Name, ICostModel Model)[] costModels = PlanValidation.CostModels(cluster);

        Assert.Equal(["profiled", "roofline"], costModels.Select(m => m.Name));
        PredictedPerformance profiled = Planner.Evaluate(plan, model, cluster, indicator, costModels[0].Model);
        PredictedPerformance roofline = Planner.Evaluate(plan, model, cluster, indicator, costModels[1].Model);
        AssertSame(plan.Predicted, profiled);
        Assert.True(profiled.DecodeSeconds > roofline.DecodeSeconds, $"profiled decode {profiled.DecodeSeconds} s, roofline {roofline.DecodeSeconds} s");
        Assert.Equal(["roofline"], PlanValidation.CostModels(s_cluster).Select(m => m.Name));
    }

    private static string Layout(StagePlan s) => $"{s.Device.Name} {s.LayerStart}-{s.LayerEnd} {string.Join(' ', s.LayerTypes)} {s.MemoryBytes} {s.PrefillSeconds} {s.DecodeSeconds}";

    // Equal but for the order of summing the layers' times.
    private static void AssertSame(PredictedPerformance expected, PredictedPerformance actual)
    {
        Assert.Equal(expected.ThroughputTokensPerSecond, actual.ThroughputTokensPerSecond, expected.ThroughputTokensPerSecond * 1e-9);
        Assert.Equal(expected.PrefillSeconds, actual.PrefillSeconds, expected.PrefillSeconds * 1e-9);
        Assert.Equal(expected.DecodeSeconds, actual.DecodeSeconds, expected.DecodeSeconds * 1e-9);
    }
}
