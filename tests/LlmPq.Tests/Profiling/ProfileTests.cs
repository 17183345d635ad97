using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Host.Profiling;
using LlmPq.Planning;

namespace LlmPq.Tests.Profiling;

/// <summary>Profiles in the cluster file, the fit that makes them, and the cost model that reads them.</summary>
public sealed class ProfileTests
{
    private const string Cluster = """
        {
          // two hosts, a link and a coordinator the profile must leave alone
          "devices": [
            { "kind": "CPU", "name": "cpu", "memoryGiB": 1, "threads": 2, "host": "a" },
            { "kind": "T4", "count": 2, "host": "b" }
          ],
          "links": [ { "hosts": ["a", "b"], "gbps": 1, "latencyMs": 0.5 } ],
          "coordinator": "a"
        }
        """;

    private static readonly ModelSpec s_model = ModelSpec.Preset("llama-3.1-8b");

    private static DeviceProfile Synthetic(string? shape, HopProfile? hop = null) => new(
        s_model.Layers[0].MatrixParameters,
        [new TypeProfile(GgmlType.Q4_K, new LayerTimeFit(2e-4, 3e-6, 4e-10) { RSquared = 0.99, Points = 5 }, new LayerTimeFit(1e-4, 5e-5, 2e-9))])
    {
        Model = "synthetic",
        ModelShape = shape,
        Hop = hop,
    };

    private static string Json(object value) => JsonSerializer.Serialize(value, PlanningJson.Options);

    [Fact]
    public void Profiles_round_trip_through_the_cluster_file_and_the_rest_of_it_stays()
    {
        DeviceProfile profile = Synthetic("abc", new HopProfile(0.3, 2.5) { RSquared = 0.9 });
        var profiles = new Dictionary<string, DeviceProfile> { ["cpu"] = profile, ["T4-1"] = Synthetic("abc") };

        ClusterSpec written = ClusterSpec.Parse(ClusterSpec.WithProfiles(Cluster, profiles));
        ClusterSpec original = ClusterSpec.Parse(Cluster);

        Assert.Equal(Json(profile), Json(written.Devices[0].Profile!));

        // An entry of several devices holds one profile for all of them.
        Assert.Equal(Json(profiles["T4-1"]), Json(written.Devices[1].Profile!));
        Assert.Equal(Json(profiles["T4-1"]), Json(written.Devices[2].Profile!));
        Assert.Equal(Json(original.Devices.Select(d => d with { Profile = null })), Json(written.Devices.Select(d => d with { Profile = null })));
        Assert.Equal(Json(original.Links), Json(written.Links));
        Assert.Equal("a", written.Coordinator);
    }

    [Fact]
    public void A_profile_file_named_by_the_cluster_file_gives_the_devices_their_profiles()
    {
        string folder = TestModels.TempPath("profiles");
        Directory.CreateDirectory(folder);
        string profilePath = Path.Combine(folder, "measured.json");
        File.WriteAllText(profilePath, ClusterSpec.WriteProfileFile(profilePath, new Dictionary<string, DeviceProfile> { ["cpu"] = Synthetic("abc") }));
        string clusterPath = Path.Combine(folder, "cluster.json");
        File.WriteAllText(clusterPath, Cluster.Replace("\"coordinator\": \"a\"", "\"coordinator\": \"a\", \"profiles\": \"measured.json\"", StringComparison.Ordinal));

        ClusterSpec cluster = ClusterSpec.Load(clusterPath);

        Assert.Equal(profilePath, ClusterSpec.ProfileFile(clusterPath));
        Assert.Equal(Json(Synthetic("abc")), Json(cluster.Devices[0].Profile!));
        Assert.Null(cluster.Devices[1].Profile);

        File.WriteAllText(profilePath, ClusterSpec.WriteProfileFile(profilePath, new Dictionary<string, DeviceProfile> { ["gone"] = Synthetic("abc") }));
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.Load(clusterPath));
        Assert.Contains("'gone'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fit_recovers_known_coefficients_and_the_profiled_cost_model_returns_them()
    {
        var known = new LayerTimeFit(2e-4, 3e-6, 4e-10);
        var decodeKnown = new LayerTimeFit(1e-4, 5e-5, 2e-9);
        ProfileGrid grid = ProfileGrid.For(ClusterSpec.Parse(Cluster), new Workload(32, 512, 100), quick: false);
        double[][] prefillRows = [.. grid.Prefill.Select(DeviceProfiler.PrefillRow)];
        double[][] decodeRows = [.. grid.Decode.Select(DeviceProfiler.DecodeRow)];

        LayerTimeFit prefill = DeviceProfiler.Fit(prefillRows, [.. grid.Prefill.Select(p => known.Seconds(p.Sequences * p.Tokens, (p.Tokens + 1) / 2.0))]);
        LayerTimeFit decode = DeviceProfiler.Fit(decodeRows, [.. grid.Decode.Select(d => decodeKnown.Seconds(d.Batch, d.Context + 1))]);

        foreach ((LayerTimeFit fit, LayerTimeFit truth) in new[] { (prefill, known), (decode, decodeKnown) })
        {
            Assert.Equal(truth.Fixed, fit.Fixed, truth.Fixed * 1e-6);
            Assert.Equal(truth.PerToken, fit.PerToken, truth.PerToken * 1e-6);
            Assert.Equal(truth.PerTokenContext, fit.PerTokenContext, truth.PerTokenContext * 1e-6);
            Assert.Equal(1, fit.RSquared!.Value, 1e-6);
            Assert.Equal(0, fit.MaxRelativeResidual!.Value, 1e-4);
        }

        var device = new DeviceSpec
        {
            Name = "cpu", Kind = "CPU", Host = "a",
            Profile = new DeviceProfile(s_model.Layers[0].MatrixParameters, [new TypeProfile(GgmlType.Q4_K, prefill, decode)]),
        };
        var cost = new ProfiledCostModel();
        Assert.Equal(known.Seconds(512, 100 + (513 / 2.0)), cost.PrefillSeconds(device, s_model.Layers[0], GgmlType.Q4_K, 512, 100), 1e-9);
        Assert.Equal(decodeKnown.Seconds(8, 600), cost.DecodeSeconds(device, s_model.Layers[0], GgmlType.Q4_K, 8, 600), 1e-9);

        // A type the profile lacks is the roofline calibrated on the device: scaled as the measured type is.
        var roofline = new RooflineCostModel();
        double calibration = decodeKnown.Seconds(8, 600) / roofline.DecodeSeconds(device, s_model.Layers[0], GgmlType.Q4_K, 8, 600);
        Assert.NotEqual(1, calibration, 2);
        Assert.Equal(roofline.DecodeSeconds(device, s_model.Layers[0], GgmlType.F16, 8, 600) * calibration, cost.DecodeSeconds(device, s_model.Layers[0], GgmlType.F16, 8, 600), 1e-9);

        // A device without a profile is the roofline's.
        DeviceSpec bare = device with { Profile = null };
        Assert.Equal(roofline.DecodeSeconds(bare, s_model.Layers[0], GgmlType.F16, 8, 600), cost.DecodeSeconds(bare, s_model.Layers[0], GgmlType.F16, 8, 600));
    }

    [Fact]
    public void The_fit_keeps_coefficients_non_negative_and_says_how_far_off_it_is()
    {
        // Times that fall with tokens: the best non-negative fit is a constant, and its residuals show it.
        double[][] rows = [[1, 1, 1], [1, 2, 4], [1, 4, 16], [1, 8, 64]];
        LayerTimeFit fit = DeviceProfiler.Fit(rows, [4.0, 3.0, 2.0, 1.0]);

        Assert.True(fit.Fixed > 0 && fit.PerToken == 0 && fit.PerTokenContext == 0, $"{fit}");
        Assert.Equal(2.5, fit.Fixed, 1e-9);
        Assert.True(fit.RSquared < 0.01);
        Assert.Equal(1.5, fit.MaxRelativeResidual!.Value, 1e-9);
    }

    [Fact]
    public void A_profile_of_another_shape_is_refused_and_one_of_the_same_shape_is_taken()
    {
        ModelSpec other = ModelSpec.Preset("opt-13b");
        string shape = Planner.ShapeFingerprint(s_model);
        ClusterSpec cluster = ClusterSpec.Parse(ClusterSpec.WithProfiles(Cluster, new Dictionary<string, DeviceProfile> { ["cpu"] = Synthetic(shape) }));

        cluster.CheckProfiles(s_model);
        var ex = Assert.Throws<InvalidDataException>(() => cluster.CheckProfiles(other));
        Assert.Contains("cpu", ex.Message, StringComparison.Ordinal);
        Assert.Contains(shape, ex.Message, StringComparison.Ordinal);
        Assert.Contains("Rerun llmpq profile", ex.Message, StringComparison.Ordinal);

        // A profile written by hand, with no shape, is taken for any model.
        ClusterSpec.Parse(ClusterSpec.WithProfiles(Cluster, new Dictionary<string, DeviceProfile> { ["cpu"] = Synthetic(null) })).CheckProfiles(other);
    }

    [Fact]
    public void A_measured_hop_replaces_the_declared_link_of_its_device_only()
    {
        var hop = new HopProfile(2, 0.5);
        ClusterSpec plain = ClusterSpec.Parse(Cluster);
        ClusterSpec measured = ClusterSpec.Parse(ClusterSpec.WithProfiles(Cluster, new Dictionary<string, DeviceProfile> { ["T4-0"] = Synthetic("abc", hop) }));
        const long Bytes = 1 << 20;

        // T4-0 → cpu: T4-0's leg to the coordinator is measured, cpu's own (on the coordinator) is the same-host default.
        double expected = hop.ToLink("b", "a").Seconds(Bytes) + plain.Link("a", "a").Seconds(Bytes);
        Assert.Equal(expected, measured.TransferSeconds(measured.Devices[1], measured.Devices[0], Bytes), 1e-12);
        Assert.NotEqual(plain.TransferSeconds(plain.Devices[1], plain.Devices[0], Bytes), measured.TransferSeconds(measured.Devices[1], measured.Devices[0], Bytes));
        Assert.Equal(plain.TransferSeconds(plain.Devices[0], plain.Devices[0], Bytes), measured.TransferSeconds(measured.Devices[0], measured.Devices[0], Bytes));
    }

    [Fact]
    public void Writing_profiles_for_a_device_the_cluster_lacks_is_refused()
    {
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.WithProfiles(Cluster, new Dictionary<string, DeviceProfile> { ["nope"] = Synthetic("abc") }));
        Assert.Contains("'nope'", ex.Message, StringComparison.Ordinal);
    }
}
