using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Stages;

namespace LlmPq.Tests.Stages;

/// <summary>How a plan becomes the engine's stages: stages that want more threads than the machine has run in turn.</summary>
public sealed class PlanStagesTests
{
    private static readonly ModelSpec s_model = ModelSpec.Preset("llama-3.1-8b");
    private static readonly QualityIndicatorTable s_indicator = QualityIndicator.Fallback([.. s_model.Layers.Select(l => l.Parameters)]);

    private static Plan PlanFor(int threadsA, int threadsB, string? endpointB = null)
    {
        string threads(int t) => t > 0 ? $", \"threads\": {t}" : string.Empty;
        string endpoint = endpointB is null ? string.Empty : $", \"endpoint\": \"{endpointB}\"";
        ClusterSpec cluster = ClusterSpec.Parse($$"""
            { "devices": [
                { "kind": "CPU", "name": "a", "memoryGiB": 24{{threads(threadsA)}} },
                { "kind": "CPU", "name": "b", "memoryGiB": 24{{threads(threadsB)}}{{endpoint}} } ] }
            """);
        return Planner.Create(s_model, cluster, new Workload(4, 64, 16), QualityTarget.Default, s_indicator);
    }

    [Theory]
    [InlineData(1, 1, null, 2, false)]
    [InlineData(2, 1, null, 2, true)]
    [InlineData(0, 1, null, 4, true)] // a device without threads takes every core
    [InlineData(2, 2, "10.0.0.2:50052", 2, false)] // a stage server of its own machine takes none of these cores
    public void Local_stages_wanting_more_threads_than_the_cores_are_oversubscribed(int threadsA, int threadsB, string? endpointB, int cores, bool expected)
    {
        Plan plan = PlanFor(threadsA, threadsB, endpointB);

        Assert.Equal(2, plan.Stages.Count);
        Assert.Equal(expected, PlanStages.Oversubscribed(plan, cores));
    }

    [Fact]
    public void Oversubscribed_stages_are_served_one_after_another_and_others_overlap()
    {
        int cores = Environment.ProcessorCount;
        var options = new LlmPqOptions { ModelPath = "planned.gguf" };

        PlanStages.Apply(options, PlanFor(cores, cores));
        Assert.False(options.PipelineParallelism);

        PlanStages.Apply(options, PlanFor(cores, cores, "10.0.0.2:50052"));
        Assert.True(options.PipelineParallelism);
        Assert.Equal(2, options.Stages.Count);
    }
}
