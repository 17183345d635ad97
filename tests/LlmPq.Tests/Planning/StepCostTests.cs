using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Host.Profiling;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;

namespace LlmPq.Tests.Planning;

/// <summary>
/// The costs of a step outside the layers (the coordinator's iteration, every stage's RPC step, the attention mask)
/// and the rule that stages sharing one machine's cores add up instead of overlapping.
/// </summary>
public sealed class StepCostTests
{
    private const double PrefillFixed = 2e-3;
    private const double DecodeFixed = 1e-3;
    private const double HopMs = 0.5;
    private const double CoordinatorFixedMs = 0.3;
    private const double CoordinatorPerSequenceMs = 0.1;

    private static readonly ModelSpec s_model = ModelSpec.Preset("llama-3.1-8b");
    private static readonly QualityIndicatorTable s_indicator = QualityIndicator.Fallback([.. s_model.Layers.Select(l => l.Parameters)]);
    private static readonly Workload s_workload = new(4, 64, 16);

    // Every type costs a fixed time per layer and step; the hop costs its latency (its bandwidth is too high to count).
    private static string Cluster(string secondHost, bool coordinator = true, string pipeline = "")
    {
        string prefill = $$"""{ "fixed": {{PrefillFixed}}, "perToken": 0, "perTokenContext": 0 }""";
        string decode = $$"""{ "fixed": {{DecodeFixed}}, "perToken": 0, "perTokenContext": 0 }""";
        string types = string.Join(", ", PlanTypes.All.Select(t => $$"""{ "type": "{{GgmlTypes.Name(t)}}", "prefill": {{prefill}}, "decode": {{decode}} }"""));
        string profile = $$"""{ "layerParameters": {{s_model.Layers[0].MatrixParameters}}, "types": [ {{types}} ], "hop": { "latencyMs": {{HopMs}}, "gbps": 1e9 } }""";
        string links = secondHost == "h"
            ? """{ "hosts": ["h", "h"], "gbps": 1e9 }"""
            : $$"""{ "hosts": ["h", "h"], "gbps": 1e9 }, { "hosts": ["{{secondHost}}", "{{secondHost}}"], "gbps": 1e9 }""";
        string step = coordinator ? $$""", "coordinatorProfile": { "fixedMs": {{CoordinatorFixedMs}}, "perSequenceMs": {{CoordinatorPerSequenceMs}}{{pipeline}} }""" : string.Empty;
        return $$"""
            { "devices": [
                { "kind": "CPU", "name": "a", "memoryGiB": 24, "threads": 1, "host": "h", "profile": {{profile}} },
                { "kind": "CPU", "name": "b", "memoryGiB": 24, "threads": 1, "host": "{{secondHost}}", "profile": {{profile}} } ],
              "links": [ {{links}} ],
              "coordinator": "h"{{step}} }
            """;
    }

    [Fact]
    public void On_shared_cores_a_phase_is_every_stage_in_turn_plus_the_hops_and_the_coordinator_of_each_step()
    {
        ClusterSpec cluster = ClusterSpec.Parse(Cluster("h"));
        Assert.True(cluster.SharesCompute);

        Plan plan = Planner.Create(s_model, cluster, s_workload, QualityTarget.Default, s_indicator);

        int devices = cluster.Devices.Count, batch = s_workload.BatchSize, prompt = s_workload.PromptTokens;
        double steps = s_workload.ExpectedGeneratedTokens;
        double output = (double)s_model.Output.MatrixParameters / s_model.Layers[0].MatrixParameters;
        double layers = s_model.LayerCount;

        // Decode: all B sequences in one step through every stage, μn steps; each step every stage's RPC and the coordinator sampling B.
        double decode = steps * (((layers + output) * DecodeFixed) + (devices * HopMs / 1000) + ((CoordinatorFixedMs + (CoordinatorPerSequenceMs * batch)) / 1000));

        // Prefill: m_p micro-batch passes through every stage; the engine's iterations each cost the coordinator's fixed time, and B sequences get a first token.
        int xiP = plan.PrefillMicroBatch, xiD = (batch + devices - 1) / devices;
        int passes = (batch + xiP - 1) / xiP;
        int budget = Math.Max(xiD, xiP * prompt * devices);
        int iterations = ((batch * prompt) + budget - 1) / budget;
        double prefill = (passes * (((layers + output) * PrefillFixed) + (devices * HopMs / 1000)))
            + ((iterations * CoordinatorFixedMs) + (batch * CoordinatorPerSequenceMs)) / 1000;

        Assert.Equal(prefill, plan.Predicted.PrefillSeconds, prefill * 1e-6);
        Assert.Equal(decode, plan.Predicted.DecodeSeconds, decode * 1e-6);

        // The stages' own times are per micro-batch and per step, and they add up to the phases' layer time.
        Assert.Equal((layers + output) * DecodeFixed, plan.Stages.Sum(s => s.DecodeSeconds) - ((devices * HopMs) + CoordinatorFixedMs + (CoordinatorPerSequenceMs * batch)) / 1000, 1e-9);

        // Planner.Evaluate prices the plan the same way, so that validation compares what the optimizer minimized.
        PredictedPerformance again = Planner.Evaluate(plan, s_model, cluster, s_indicator, new ProfiledCostModel());
        Assert.Equal(plan.Predicted.PrefillSeconds, again.PrefillSeconds, prefill * 1e-9);
        Assert.Equal(plan.Predicted.DecodeSeconds, again.DecodeSeconds, decode * 1e-9);
    }

    [Theory]
    [InlineData(2, true)]
    [InlineData(3, false)]
    public void A_decode_step_measured_through_as_many_stages_replaces_the_hops_and_the_coordinator(int stages, bool used)
    {
        const double PipelineFixedMs = 1.5, PipelinePerSequenceMs = 0.75;
        ClusterSpec measured = ClusterSpec.Parse(Cluster("h", pipeline: $$""", "pipeline": { "stages": {{stages}}, "fixedMs": {{PipelineFixedMs}}, "perSequenceMs": {{PipelinePerSequenceMs}} }"""));
        ClusterSpec added = ClusterSpec.Parse(Cluster("h"));

        Plan plan = Planner.Create(s_model, measured, s_workload, QualityTarget.Default, s_indicator);
        Plan reference = Planner.Create(s_model, added, s_workload, QualityTarget.Default, s_indicator);

        // Decode: the layers in turn and, per step, the step measured through both stages instead of its parts added up.
        double steps = s_workload.ExpectedGeneratedTokens;
        double layers = s_model.LayerCount + ((double)s_model.Output.MatrixParameters / s_model.Layers[0].MatrixParameters);
        double decode = steps * ((layers * DecodeFixed) + ((PipelineFixedMs + (PipelinePerSequenceMs * s_workload.BatchSize)) / 1000));
        Assert.Equal(used ? decode : reference.Predicted.DecodeSeconds, plan.Predicted.DecodeSeconds, decode * 1e-6);
        Assert.Equal(reference.Predicted.PrefillSeconds, plan.Predicted.PrefillSeconds, 1e-12);
        Assert.Equal(plan.Predicted.DecodeSeconds, Planner.Evaluate(plan, s_model, measured, s_indicator, new ProfiledCostModel()).DecodeSeconds, decode * 1e-9);
    }

    [Fact]
    public void A_decode_step_measured_through_a_pipeline_is_not_used_where_the_stages_have_cores_of_their_own()
    {
        ClusterSpec measured = ClusterSpec.Parse(Cluster("x", pipeline: """, "pipeline": { "stages": 2, "fixedMs": 1.5, "perSequenceMs": 0.75 }"""));
        Assert.False(measured.SharesCompute);
        Assert.Null(measured.PipelineStep);

        Plan plan = Planner.Create(s_model, measured, s_workload, QualityTarget.Default, s_indicator);
        Plan reference = Planner.Create(s_model, ClusterSpec.Parse(Cluster("x")), s_workload, QualityTarget.Default, s_indicator);

        Assert.Equal(reference.Predicted.DecodeSeconds, plan.Predicted.DecodeSeconds, 1e-12);
    }

    [Fact]
    public void Stages_on_devices_of_their_own_overlap_as_LLM_PQ_has_them()
    {
        ClusterSpec cluster = ClusterSpec.Parse(Cluster("g", coordinator: false));
        Assert.False(cluster.SharesCompute);

        Plan plan = Planner.Create(s_model, cluster, s_workload, QualityTarget.Default, s_indicator);

        // LLM-PQ's decode: Σ_j Tdec_j + (max(m_d, N)·μn − 1)·max_j Tdec_j over one micro-batch's step.
        int devices = cluster.Devices.Count;
        int xiD = (s_workload.BatchSize + devices - 1) / devices;
        int md = (s_workload.BatchSize + xiD - 1) / xiD;
        double weight = (Math.Max(md, devices) * s_workload.ExpectedGeneratedTokens) - 1;
        double expected = plan.Stages.Sum(s => s.DecodeSeconds) + (weight * plan.Stages.Max(s => s.DecodeSeconds));
        Assert.Equal(expected, plan.Predicted.DecodeSeconds, expected * 1e-9);
    }

    [Theory]
    [InlineData("""{ "devices": [ { "kind": "CPU", "count": 3 } ] }""", true)]
    [InlineData("""{ "devices": [ { "kind": "CPU", "host": "a" }, { "kind": "CPU", "host": "b" } ], "coordinator": "a" }""", false)]
    [InlineData("""{ "devices": [ { "kind": "CPU" }, { "kind": "CPU", "endpoint": "127.0.0.1:50052" } ] }""", false)]
    [InlineData("""{ "devices": [ { "kind": "CPU" }, { "kind": "T4" } ] }""", false)]
    public void Only_CPU_devices_of_the_coordinator_s_machine_without_an_endpoint_share_its_cores(string json, bool shares)
    {
        Assert.Equal(shares, ClusterSpec.Parse(json).SharesCompute);
    }

    [Fact]
    public void The_profile_grid_decodes_all_B_sequences_where_the_stages_share_the_cores()
    {
        var workload = new Workload(6, 128, 48);

        ProfileGrid shared = ProfileGrid.For(ClusterSpec.Parse("""{ "devices": [ { "kind": "CPU", "count": 3 } ] }"""), workload, quick: false);
        ProfileGrid apart = ProfileGrid.For(ClusterSpec.Parse("""{ "devices": [ { "kind": "CPU", "host": "a" }, { "kind": "CPU", "host": "b" }, { "kind": "CPU", "host": "c" } ], "coordinator": "a" }"""), workload, quick: false);

        Assert.Equal([1, 2, 6], shared.Decode.Select(d => d.Batch).Distinct().Order());
        Assert.Equal([1, 2], apart.Decode.Select(d => d.Batch).Distinct().Order());
    }

    [Fact]
    public void A_stage_step_costs_a_measured_hop_once_and_a_declared_link_for_each_transfer()
    {
        ClusterSpec cluster = ClusterSpec.Parse("""
            { "devices": [
                { "kind": "CPU", "name": "p", "profile": { "layerParameters": 1, "types": [ { "type": "f16", "prefill": { "fixed": 0, "perToken": 0, "perTokenContext": 0 }, "decode": { "fixed": 0, "perToken": 0, "perTokenContext": 0 } } ], "hop": { "latencyMs": 0.4, "gbps": 8 } } },
                { "kind": "CPU", "name": "q" } ],
              "links": [ { "hosts": ["local", "local"], "gbps": 16, "latencyMs": 0.1 } ] }
            """);

        // The hop was measured per step (every round trip of it): its latency once, the bytes both ways at its bandwidth.
        Assert.Equal(0.4e-3 + (3000 * 8 / 8e9), cluster.StageStepSeconds(cluster.Devices[0], 1000, 2000), 1e-15);

        // A declared link is per transfer: the input sent and the output read back.
        Assert.Equal(0.2e-3 + (3000 * 8 / 16e9), cluster.StageStepSeconds(cluster.Devices[1], 1000, 2000), 1e-15);
    }

    [Theory]
    [InlineData(1, 1, 2 * 256)]
    [InlineData(6, 177, 2 * 6 * 256)]
    [InlineData(128, 128, 2 * 128 * 256)]
    [InlineData(300, 300, 2 * 300 * 512)]
    public void The_attention_mask_is_F16_over_the_cells_padded_to_256(long tokens, long cells, long bytes)
    {
        Assert.Equal(bytes, ModelSpec.AttentionMaskBytes(tokens, cells));
    }

    [Fact]
    public void The_coordinator_profile_round_trips_through_the_cluster_file_and_an_older_file_without_one_loads()
    {
        const string Older = """{ "devices": [ { "kind": "CPU", "name": "a" } ], "links": [] }""";
        var profile = new CoordinatorProfile(0.25, 0.125) { Sequences = 6, Vocabulary = 32000, Pipeline = new PipelineStepProfile(3, 1.25, 0.5) };

        ClusterSpec written = ClusterSpec.Parse(ClusterSpec.WithCoordinatorProfile(Older, profile));

        Assert.Equal(JsonSerializer.Serialize(profile, PlanningJson.Options), JsonSerializer.Serialize(written.CoordinatorProfile, PlanningJson.Options));
        Assert.Equal(0.25e-3 + (6 * 0.125e-3), written.CoordinatorProfile!.Seconds(6), 1e-15);
        Assert.Equal(1.25e-3 + (6 * 0.5e-3), written.CoordinatorProfile.Pipeline!.Seconds(6), 1e-15);
        Assert.Null(ClusterSpec.Parse(Older).CoordinatorProfile);
    }

    [Fact]
    public void A_negative_coordinator_profile_is_refused_with_what_to_do()
    {
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.Parse("""{ "devices": [ { "kind": "CPU" } ], "coordinatorProfile": { "fixedMs": -1, "perSequenceMs": 0 } }"""));

        Assert.Contains("coordinatorProfile", ex.Message, StringComparison.Ordinal);
        Assert.Contains("rerun llmpq profile", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{ "stages": 0, "fixedMs": 1, "perSequenceMs": 0 }""")]
    [InlineData("""{ "stages": 2, "fixedMs": 1, "perSequenceMs": -0.5 }""")]
    public void A_pipeline_step_of_no_stages_or_negative_time_is_refused_with_what_to_do(string pipeline)
    {
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.Parse($$"""{ "devices": [ { "kind": "CPU" } ], "coordinatorProfile": { "fixedMs": 1, "perSequenceMs": 0, "pipeline": {{pipeline}} } }"""));

        Assert.Contains("coordinatorProfile.pipeline", ex.Message, StringComparison.Ordinal);
        Assert.Contains("rerun llmpq profile", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_coordinator_fit_recovers_a_fixed_cost_and_a_cost_per_sequence()
    {
        int[] batches = [1, 4, 8];
        double[] seconds = [.. batches.Select(b => 0.4e-3 + (b * 0.05e-3))];

        CoordinatorProfile fit = CoordinatorProfiler.Fit(batches, seconds, 8, 32000);

        Assert.Equal(0.4, fit.FixedMs, 1e-6);
        Assert.Equal(0.05, fit.PerSequenceMs, 1e-6);
        Assert.Equal(8, fit.Sequences);
    }
}
