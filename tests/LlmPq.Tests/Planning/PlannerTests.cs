using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmPq.Gguf;
using LlmPq.Host.Commands;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Planning.Optimizer;
using LlmPq.Tests.Cli;

namespace LlmPq.Tests.Planning;

/// <summary>The planner end to end: inputs → exact optimizer → plan and baselines, and <c>llmpq plan</c>.</summary>
public sealed class PlannerTests
{
    private static readonly Lazy<string> s_eightLayers = new(() => TestModels.Write("eight-layers", new TinyLlamaModelOptions { Layers = 8, EmbeddingLength = 256 }));

    private static readonly string s_cluster = """
        { "devices": [
            { "kind": "CPU", "name": "big", "memoryGiB": 2, "threads": 2, "host": "a" },
            { "kind": "CPU", "name": "small", "memoryGiB": 0.5, "threads": 1, "host": "a" } ] }
        """;

    [Fact]
    public void A_preset_on_a_heterogeneous_cluster_gets_a_feasible_complete_plan()
    {
        ModelSpec model = ModelSpec.Preset("opt-13b");
        ClusterSpec cluster = ClusterSpec.Parse("""{ "devices": [ { "kind": "T4", "count": 2, "host": "a" }, { "kind": "V100-32G", "count": 1, "host": "a" } ] }""");
        Plan plan = Planner.Create(model, cluster, new Workload(8, 128, 32), QualityTarget.Default, QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]));

        Assert.Equal(model.LayerCount, plan.LayerCount);
        Assert.Equal(model.LayerCount, plan.LayerTypes().Count);
        Assert.Equal(cluster.Devices.Count, plan.Stages.Count);
        Assert.All(plan.Stages, s => Assert.True(s.MemoryBytes <= s.Device.MemoryBytes, $"{s.Device.Name}: {s.MemoryBytes} > {s.Device.MemoryBytes}"));
        Assert.All(plan.LayerTypes(), t => Assert.Contains(t, PlanTypes.Default));
        Assert.True(plan.Predicted.ThroughputTokensPerSecond > 0);
        Assert.Equal(["llama.cpp default", "Uniform", "PipeEdge", "AdaBits"], plan.Baselines.Select(b => b.Name));

        // The hard bound: no worse than uniform Q4_K by the indicator.
        double bound = QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]).Omega.Sum(r => r[Array.IndexOf([.. QualityIndicator.CandidateTypes], GgmlType.Q4_K)] ?? 0);
        Assert.True(plan.Indicator <= bound * (1 + 1e-9));

        // The plan is at least as good as every baseline under the objective it minimizes.
        foreach (BaselinePlan b in plan.Baselines.Where(b => b.Predicted is not null && b.Indicator <= bound))
        {
            Assert.True(plan.Predicted.LatencySeconds + (plan.Theta * plan.Indicator) <= b.Predicted!.LatencySeconds + (plan.Theta * b.Indicator) + 1e-6, b.Name);
        }
    }

    [Fact]
    public void Every_prefill_micro_batch_is_a_configuration_and_the_best_is_kept()
    {
        // ξd = ⌈8 / 2⌉ = 4, so ξp ∈ {1, 2, 4}; each reserves its own compute buffer.
        ModelSpec model = ModelSpec.Preset("mistral-7b");
        ClusterSpec cluster = ClusterSpec.Parse("""{ "devices": [ { "kind": "RTX-3090", "count": 1, "host": "a" }, { "kind": "T4", "count": 1, "host": "a" } ] }""");
        var workload = new Workload(8, 256, 32);
        QualityIndicatorTable indicator = QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]);
        var builder = new Planner.ProblemBuilder(model, cluster, workload, QualityTarget.Default, indicator, new ProfiledCostModel());
        PlanningProblem problem = builder.Build();
        Assert.Equal([1, 2, 4], problem.Configurations.Select(c => c.PrefillMicroBatch));
        Assert.True(problem.Configurations[0].ReservedBytes < problem.Configurations[2].ReservedBytes);

        PlanningSolution[] alone = [.. problem.Configurations.Select(c => PlanOptimizer.Solve(problem with { Configurations = [c] }))];
        PlanningSolution best = alone.MinBy(s => s.Objective)!;
        Plan plan = Planner.Create(model, cluster, workload, QualityTarget.Default, indicator);
        Assert.Equal(best.PrefillMicroBatch, plan.PrefillMicroBatch);
        Assert.Equal(best.LatencySeconds + (plan.Theta * best.Omega), plan.Predicted.LatencySeconds + (plan.Theta * plan.Indicator), 1e-9);
        Assert.All(plan.Stages, s => Assert.True(s.MemoryBytes <= s.Device.MemoryBytes, $"{s.Device.Name}: {s.MemoryBytes} > {s.Device.MemoryBytes}"));
    }

    [Fact]
    public void A_profiled_device_is_priced_by_its_profile()
    {
        // A profile measured on this model's layers with a fixed time per layer step at every type: whatever the plan
        // chooses, its one stage takes a step per layer plus the output layer's, scaled by its weights.
        ModelSpec model = ModelSpec.Preset("mistral-7b");
        long layerParameters = model.Layers[0].MatrixParameters;
        var prefill = new LayerTimeFit(3e-3, 0, 0);
        var decode = new LayerTimeFit(5e-4, 0, 0);
        var profile = new DeviceProfile(layerParameters, [.. PlanTypes.All.Select(t => new TypeProfile(t, prefill, decode))]);
        ClusterSpec cluster = ClusterSpec.Parse($$"""{ "devices": [ { "kind": "A100-80G", "name": "gpu", "profile": {{JsonSerializer.Serialize(profile, PlanningJson.Options)}} } ] }""");

        Plan plan = Planner.Create(model, cluster, new Workload(4, 128, 16), QualityTarget.Default, QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]));

        StagePlan stage = Assert.Single(plan.Stages);
        double steps = model.LayerCount + ((double)model.Output.MatrixParameters / layerParameters);
        Assert.Equal(steps * prefill.Fixed, stage.PrefillSeconds, 1e-12);
        Assert.Equal(steps * decode.Fixed, stage.DecodeSeconds, 1e-12);
    }

    [Fact]
    public void Llmpq_plan_says_which_devices_are_profiled_and_which_use_the_roofline()
    {
        string cluster = TestModels.TempPath("profiled-cluster.json");
        File.WriteAllText(cluster, """
            { "devices": [
                { "kind": "A100-80G", "name": "measured", "host": "a",
                  "profile": { "layerParameters": 1000000, "types": [ { "type": "q4_K", "prefill": { "fixed": 0.001, "perToken": 1e-6, "perTokenContext": 0 },
                                                                       "decode": { "fixed": 0.001, "perToken": 1e-7, "perTokenContext": 0 } } ] } },
                { "kind": "A100-80G", "name": "catalog", "host": "a" } ] }
            """);

        CliRunner.Result run = CliRunner.Run("plan", "--preset", "mistral-7b", "--cluster", cluster, "--batch", "4", "--prompt", "128", "--generate", "16");

        Assert.True(run.ExitCode == 0, run.StandardError);
        Assert.Contains("cost model: profiled measured (q4_K); roofline catalog and the types a profile lacks", run.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void The_plan_round_trips_through_json_and_bad_plans_are_refused()
    {
        ModelSpec model = ModelSpec.Preset("mistral-7b");
        ClusterSpec cluster = ClusterSpec.Parse("""{ "devices": [ { "kind": "RTX-3090", "count": 1, "host": "a" }, { "kind": "T4", "count": 1, "host": "a" } ] }""");
        Plan plan = Planner.Create(model, cluster, new Workload(4, 128, 16), QualityTarget.Default, QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]));

        Plan back = Plan.FromJson(plan.ToJson());
        Assert.Equal(plan.LayerTypes(), back.LayerTypes());
        Assert.Equal(plan.Stages.Select(s => (s.Device.Name, s.LayerStart, s.LayerEnd)), back.Stages.Select(s => (s.Device.Name, s.LayerStart, s.LayerEnd)));
        Assert.Equal(plan.ModelShape, Planner.ShapeFingerprint(model));

        using JsonDocument doc = JsonDocument.Parse(plan.ToJson());
        JsonElement stage = doc.RootElement.GetProperty("stages")[0];
        Assert.True(stage.GetProperty("device").TryGetProperty("kind", out _));
        Assert.True(doc.RootElement.GetProperty("predicted").TryGetProperty("throughputTokensPerSecond", out _));

        string broken = plan.ToJson().Replace("\"layerStart\": 0", "\"layerStart\": 1", StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => Plan.FromJson(broken));
    }

    [Fact]
    public void A_model_that_cannot_fit_is_a_clear_error_with_the_shortfall()
    {
        ModelSpec model = ModelSpec.Preset("llama-3.1-70b");
        ClusterSpec cluster = ClusterSpec.Parse("""{ "devices": [ { "kind": "T4", "count": 1, "host": "a" } ] }""");
        PlanningException ex = Assert.Throws<PlanningException>(() => Planner.Create(model, cluster, new Workload(1, 128, 16), new QualityTarget(0, null), QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)])));
        Assert.Contains("GiB", ex.Message, StringComparison.Ordinal);
        Assert.True(ex.ShortfallBytes > 10L << 30, ex.Message); // ~28 GiB at Q3_K against a 14.8 GiB T4
    }

    [Fact]
    public void Llmpq_plan_on_a_generated_model_and_a_cpu_cluster_writes_a_plan_for_that_model()
    {
        string model = TestModels.Small;
        string cluster = TestModels.TempPath("cluster.json");
        File.WriteAllText(cluster, s_cluster);
        string output = TestModels.TempPath("plan.json");

        CliRunner.Result run = CliRunner.Run("plan", "--model", model, "--cluster", cluster, "--batch", "4", "--prompt", "64", "--generate", "16", "--out", output);
        Assert.True(run.ExitCode == 0, run.StandardError);
        Assert.Contains("baseline", run.StandardOutput, StringComparison.Ordinal);

        Plan plan = Plan.Load(output);
        Assert.Equal(Planner.ShapeFingerprint(ModelSpec.FromGguf(GgufReader.Read(model))), plan.ModelShape);
        Assert.Equal(QualityIndicator.WeightsMethod, plan.IndicatorMethod);
        Assert.Equal(["big", "small"], plan.Stages.Select(s => s.Device.Name).Order());
    }

    [Fact]
    public void Llmpq_plan_writes_and_prints_baselines_that_do_not_fit_as_such()
    {
        // Two 20 MiB devices and a 45 MiB F16 model: the plan fits by quantizing, some baselines do not (issue 13).
        string output = TestModels.TempPath("plan.json");
        CliRunner.Result run = PlanOnTwoSmallDevices(memoryGiB: 0.02, "--out", output);
        Assert.True(run.ExitCode == 0, run.StandardError);

        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(output));
        JsonElement[] unfit = [.. json.RootElement.GetProperty("baselines").EnumerateArray().Where(b => !b.TryGetProperty("predicted", out _))];
        Assert.NotEmpty(unfit);
        Assert.All(unfit, b =>
        {
            Assert.False(b.GetProperty("fits").GetBoolean());
            Assert.False(b.TryGetProperty("indicator", out _));
            Assert.Matches($@"(?m)^{Regex.Escape(b.GetProperty("name").GetString()!)} +does not fit ", run.StandardOutput);
        });

        Plan plan = Plan.Load(output);
        Assert.All(plan.Baselines.Where(b => !b.Fits), b => Assert.Null(b.Indicator));
        Assert.Contains(plan.Baselines, b => b.Fits && b.Indicator is > 0);
    }

    [Fact]
    public void Llmpq_plan_says_how_much_memory_is_missing_in_a_unit_that_shows_it()
    {
        // Two 5 MiB devices cannot hold the 8-layer model at any type: they lack some MiB, which is not "0.00 GiB".
        CliRunner.Result run = PlanOnTwoSmallDevices(memoryGiB: 0.005);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Matches(@"short by [1-9][0-9]*\.[0-9]{2} MiB", run.StandardError);
        Assert.DoesNotContain("0.00 GiB", run.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_quantized_by_its_plan_keeps_the_plans_shape_and_serve_accepts_it()
    {
        string source = s_eightLayers.Value;
        string planPath = TestModels.TempPath("plan.json");
        CliRunner.Result planned = PlanOnTwoSmallDevices(memoryGiB: 0.02, "--out", planPath);
        Assert.True(planned.ExitCode == 0, planned.StandardError);
        string quantized = TestModels.TempPath("planned.gguf");
        CliRunner.Result quantize = CliRunner.Run("quantize", "--model", source, "--plan", planPath, "--out", quantized);
        Assert.True(quantize.ExitCode == 0, quantize.StandardError);

        // What the fingerprint must not see: llama.cpp writes the copy's tensors in another order and at other types.
        GgufFile before = GgufReader.Read(source);
        GgufFile after = GgufReader.Read(quantized);
        Assert.NotEqual(before.Tensors.Select(t => t.Name), after.Tensors.Select(t => t.Name));
        Assert.NotEqual(before.Tensors.OrderBy(t => t.Name).Select(t => t.Type), after.Tensors.OrderBy(t => t.Name).Select(t => t.Type));

        Assert.Equal(Planner.ShapeFingerprint(ModelSpec.FromGguf(before)), Planner.ShapeFingerprint(ModelSpec.FromGguf(after)));
        (Plan plan, string? warning) = PlannedModel.Load(quantized, planPath);
        Assert.Null(warning);
        Assert.Equal(Plan.Load(planPath).ModelShape, plan.ModelShape);
    }

    // llmpq plan of an 8-layer, 256-wide F16 model (45 MiB) on two CPU devices of memoryGiB each.
    private static CliRunner.Result PlanOnTwoSmallDevices(double memoryGiB, params string[] extra)
    {
        string model = s_eightLayers.Value;
        string cluster = TestModels.TempPath("small-devices.json");
        string memory = memoryGiB.ToString(CultureInfo.InvariantCulture);
        File.WriteAllText(cluster, $$"""
            { "devices": [
                { "kind": "CPU", "name": "a", "memoryGiB": {{memory}}, "threads": 1, "host": "h" },
                { "kind": "CPU", "name": "b", "memoryGiB": {{memory}}, "threads": 1, "host": "h" } ] }
            """);
        return CliRunner.Run(["plan", "--model", model, "--cluster", cluster, "--batch", "4", "--prompt", "64", "--generate", "16", .. extra]);
    }

    [Fact]
    public void Llmpq_plan_refuses_an_unknown_device_kind_in_one_line()
    {
        string cluster = TestModels.TempPath("bad-cluster.json");
        File.WriteAllText(cluster, """{ "devices": [ { "kind": "GTX-480", "count": 1 } ] }""");
        CliRunner.Result run = CliRunner.Run("plan", "--preset", "opt-13b", "--cluster", cluster);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("GTX-480", run.StandardError, StringComparison.Ordinal);
        Assert.Contains("T4", run.StandardError, StringComparison.Ordinal);
        Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
