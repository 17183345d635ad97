using System.Text.Json.Nodes;
using LlmPq.Gguf;
using LlmPq.Planning;
using LlmPq.Tests.Cli;

namespace LlmPq.Tests.Profiling;

/// <summary><c>llmpq profile</c> on a tiny model, as a user runs it, and what <c>llmpq plan</c> makes of the result.</summary>
[Collection(NativeTests.Name)]
public sealed class ProfileCommandTests
{
    private const string Cluster = """{"devices":[{"kind":"CPU","name":"cpu","memoryGiB":1,"threads":1},{"kind":"CPU","name":"other","memoryGiB":1,"threads":1}]}""";

    // Wide enough that a layer's decode (about a millisecond on one thread) stands out of a stage server's round-trip
    // jitter on a busy machine; narrower layers left both types' fits at zero under CI's load.
    private static readonly Lazy<string> s_twoLayers = new(() => TestModels.Write("two-layers", new TinyLlamaModelOptions { Layers = 2, EmbeddingLength = 512, FeedForwardLength = 1536, HeadCount = 8, KvHeadCount = 8, VocabularyPath = TestModels.VocabularyPath }));

    private static string[] Profile(string cluster, string cache, params string[] more) =>
        ["profile", "--model", s_twoLayers.Value, "--cluster", cluster, "--device", "cpu", "--types", "f16,q8_0", "--quick", "--batch", "2", "--prompt", "128", "--generate", "16", "--cache", cache, .. more];

    private static (string Cluster, string Cache) Files()
    {
        string folder = TestModels.TempPath("profile");
        Directory.CreateDirectory(folder);
        string cluster = Path.Combine(folder, "cluster.json");
        File.WriteAllText(cluster, Cluster);
        return (cluster, Path.Combine(folder, "cache"));
    }

    [Fact]
    public void A_profile_of_a_tiny_model_is_written_into_the_cluster_file_reused_and_used_by_plan()
    {
        (string cluster, string cache) = Files();

        CliRunner.Result run = CliRunner.Run(Profile(cluster, cache));

        Assert.True(run.ExitCode == 0, run.StandardError);
        DeviceSpec profiled = ClusterSpec.Load(cluster).Devices[0];
        Assert.NotNull(profiled.Profile);
        // A type whose long probe noise made no slower than its short one is left to the roofline (a warning says so).
        string[] types = [.. profiled.Profile.Types.Select(t => GgmlTypes.Name(t.Type))];
        Assert.NotEmpty(types);
        Assert.Subset(new HashSet<string> { "f16", "q8_0" }, types.ToHashSet());
        Assert.Equal(Planner.ShapeFingerprint(ModelSpec.FromGguf(GgufReader.Read(s_twoLayers.Value))), profiled.Profile.ModelShape);
        Assert.All(profiled.Profile.Types, t => Assert.NotNull(t.Prefill.RSquared));
        Assert.Null(ClusterSpec.Load(cluster).Devices[1].Profile);
        Assert.Contains("cpu (CPU, 1 threads)", run.StandardOutput, StringComparison.Ordinal);

        // The coordinator's iteration, measured on the probe in this process, goes into the cluster file beside the devices.
        CoordinatorProfile coordinator = ClusterSpec.Load(cluster).CoordinatorProfile!;
        Assert.NotNull(coordinator);
        Assert.True(coordinator.FixedMs >= 0 && coordinator.PerSequenceMs >= 0, $"{coordinator}");
        Assert.Equal(2, coordinator.Sequences);
        Assert.Contains("coordinator (this process):", run.StandardOutput, StringComparison.Ordinal);

        // The other device has no profile to price its probe layer with: no step through the pipeline, and it says why.
        Assert.Null(coordinator.Pipeline);
        Assert.Contains("the decode step through the pipeline was not measured: other has no profile of this model", run.StandardError, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(cache, "*.json"));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(cluster)!, "*.partial"));

        CliRunner.Result again = CliRunner.Run(Profile(cluster, cache));
        Assert.True(again.ExitCode == 0, again.StandardError);
        Assert.Contains("measured before", again.StandardError, StringComparison.Ordinal);

        CliRunner.Result plan = CliRunner.Run("plan", "--model", s_twoLayers.Value, "--cluster", cluster, "--batch", "2", "--prompt", "32", "--generate", "8", "--quality", "none");
        Assert.True(plan.ExitCode == 0, plan.StandardError);
        Assert.Contains($"cost model: profiled cpu ({string.Join(", ", types)}); roofline other and the types a profile lacks; coordinator ", plan.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("the stages share this machine's cores, so their times add up", plan.StandardOutput, StringComparison.Ordinal);

        // The same profile for a model of another shape is refused.
        CliRunner.Result refused = CliRunner.Run("plan", "--model", TestModels.Small, "--cluster", cluster, "--batch", "2", "--prompt", "32", "--generate", "8");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("Rerun llmpq profile", refused.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void With_every_device_profiled_on_shared_cores_a_decode_step_is_measured_through_their_pipeline()
    {
        (string cluster, string cache) = Files();

        // Both devices are alike: measured once, then the step through a stage server for each, behind the runner.
        CliRunner.Result run = CliRunner.Run("profile", "--model", s_twoLayers.Value, "--cluster", cluster, "--types", "f16", "--quick", "--batch", "2", "--prompt", "128", "--generate", "16", "--cache", cache);

        Assert.True(run.ExitCode == 0, run.StandardError);
        PipelineStepProfile pipeline = ClusterSpec.Load(cluster).CoordinatorProfile!.Pipeline!;
        Assert.Equal(2, pipeline.Stages);
        Assert.True(double.IsFinite(pipeline.FixedMs) && pipeline.FixedMs >= 0 && double.IsFinite(pipeline.PerSequenceMs) && pipeline.PerSequenceMs >= 0, $"{pipeline}");
        Assert.Equal(2, pipeline.Sequences);
        Assert.Contains("pipeline (the runner and 2 local stage servers", run.StandardOutput, StringComparison.Ordinal);

        CliRunner.Result plan = CliRunner.Run("plan", "--model", s_twoLayers.Value, "--cluster", cluster, "--batch", "2", "--prompt", "32", "--generate", "8", "--quality", "none");
        Assert.True(plan.ExitCode == 0, plan.StandardError);
        Assert.Contains("a decode step through the 2 stages measured at", plan.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void The_pipeline_probe_has_its_layers_in_one_type_and_its_head_in_another()
    {
        string folder = TestModels.TempPath("probes");
        Directory.CreateDirectory(folder);
        ModelSpec model = ModelSpec.FromGguf(GgufReader.Read(s_twoLayers.Value));

        GgufFile probe = GgufReader.Read(Host.Profiling.ProbeModels.Write(model, 3, GgmlType.F16, folder, GgmlType.Q8_0));

        Assert.Equal(3, ModelSpec.FromGguf(probe).LayerCount);
        Assert.Equal(GgmlType.Q8_0, probe.Tensors.Single(t => t.Name == "output.weight").Type);
        Assert.All(probe.Tensors.Where(t => t.Layer is not null && t.Shape.Count == 2), t => Assert.Equal(GgmlType.F16, t.Type));
        Assert.Equal(GgmlType.F16, GgufReader.Read(Host.Profiling.ProbeModels.Write(model, 3, GgmlType.F16, folder)).Tensors.Single(t => t.Name == "output.weight").Type);
    }

    [Fact]
    public void A_profile_file_is_written_beside_and_named_in_the_cluster_file()
    {
        (string cluster, string cache) = Files();
        string profiles = Path.Combine(Path.GetDirectoryName(cluster)!, "measured.json");

        CliRunner.Result run = CliRunner.Run(Profile(cluster, cache, "--profile-file", profiles));

        Assert.True(run.ExitCode == 0, run.StandardError);
        Assert.Equal("measured.json", JsonNode.Parse(File.ReadAllText(cluster))!["profiles"]!.GetValue<string>());
        Assert.Null(JsonNode.Parse(File.ReadAllText(cluster))!["devices"]![0]!["profile"]);
        Assert.NotNull(ClusterSpec.Load(cluster).Devices[0].Profile);

        // The coordinator is no device of the profile file: its profile stays in the cluster file.
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(cluster))!["coordinatorProfile"]);
        Assert.Null(JsonNode.Parse(File.ReadAllText(profiles))!["coordinatorProfile"]);
    }

    [Fact]
    public void An_unknown_device_or_a_missing_model_is_a_clear_error_and_writes_nothing()
    {
        (string cluster, string cache) = Files();

        CliRunner.Result unknown = CliRunner.Run(["profile", "--model", s_twoLayers.Value, "--cluster", cluster, "--device", "gpu9", "--cache", cache]);
        CliRunner.Result missing = CliRunner.Run(["profile", "--model", Path.Combine(Path.GetDirectoryName(cluster)!, "none.gguf"), "--cluster", cluster, "--cache", cache]);

        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("--device 'gpu9' is no device of the cluster file; its devices: cpu, other", unknown.StandardError, StringComparison.Ordinal);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("none.gguf does not exist", missing.StandardError, StringComparison.Ordinal);
        Assert.Equal(Cluster, File.ReadAllText(cluster));
        Assert.False(Directory.Exists(cache));
    }
}
