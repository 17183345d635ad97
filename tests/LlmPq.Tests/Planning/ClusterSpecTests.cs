using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public sealed class ClusterSpecTests
{
    private const string TwoHosts = """
        {
          "devices": [
            { "kind": "V100-32G", "count": 1, "host": "a" },
            { "kind": "T4", "count": 3, "host": "b" }
          ],
          "links": [ { "hosts": ["a", "b"], "gbps": 10, "latencyMs": 0.2 } ]
        }
        """;

    [Fact]
    public void Counts_expand_into_named_devices_with_catalog_figures()
    {
        ClusterSpec cluster = ClusterSpec.Parse(TwoHosts);

        Assert.Equal(["V100-32G-0", "T4-0", "T4-1", "T4-2"], cluster.Devices.Select(d => d.Name));
        Assert.Equal(["a", "b", "b", "b"], cluster.Devices.Select(d => d.Host));
        Assert.Equal("a", cluster.Coordinator);
        DeviceSpec t4 = cluster.Devices[1];
        Assert.Equal("T4", t4.Kind);
        Assert.Equal((long)(14.76 * (1L << 30)), t4.MemoryBytes);
        Assert.Equal(65, t4.Tflops);
        Assert.Equal(320, t4.BandwidthGBps);
        Assert.False(t4.IsCpu);
    }

    [Fact]
    public void Names_memory_endpoint_threads_and_profile_are_read()
    {
        ClusterSpec cluster = ClusterSpec.Parse("""
            {
              "devices": [
                { "kind": "a100-80g", "name": "big", "memoryGiB": 70, "endpoint": "10.0.0.2:50052" },
                { "kind": "CPU", "name": "cpu", "memoryGiB": 64, "threads": 8,
                  "profile": { "layerParameters": 1000, "model": "m",
                               "types": [ { "type": "q4_k", "prefill": { "fixed": 0.001, "perToken": 1e-5, "perTokenContext": 0 },
                                            "decode": { "fixed": 0.002, "perToken": 1e-6, "perTokenContext": 1e-9 } } ] } },
                { "kind": "T4", "name": "small", "count": 2 }
              ],
              // comments and trailing commas are fine
            }
            """);

        Assert.Equal(["big", "cpu", "small-0", "small-1"], cluster.Devices.Select(d => d.Name));
        DeviceSpec big = cluster.Devices[0];
        Assert.Equal("A100-80G", big.Kind);
        Assert.Equal(70L << 30, big.MemoryBytes);
        Assert.Equal("10.0.0.2:50052", big.Endpoint);
        Assert.Equal("local", big.Host);

        DeviceSpec cpu = cluster.Devices[1];
        Assert.True(cpu.IsCpu);
        Assert.Equal(DeviceCatalog.Get("CPU").Tflops * 8 / DeviceCatalog.Get("CPU").Threads, cpu.Tflops, 9);
        TypeProfile measured = Assert.Single(cpu.Profile!.Types);
        Assert.Equal(GgmlType.Q4_K, measured.Type);
        Assert.Equal(0.002 + (4 * 1e-6) + (4 * 100 * 1e-9), measured.Decode.Seconds(4, 100), 12);
    }

    [Fact]
    public void A_profile_round_trips_through_the_cluster_file()
    {
        // As a measuring tool would write it: the profile's own JSON, pasted into a device of the cluster file.
        var profile = new DeviceProfile(123_456_789, [
            new TypeProfile(GgmlType.Q4_K, new LayerTimeFit(1.25e-3, 3.5e-6, 7e-10), new LayerTimeFit(2.5e-3, 4.5e-7, 1.5e-9)),
            new TypeProfile(GgmlType.F16, new LayerTimeFit(0, 1e-5, 0), new LayerTimeFit(1e-4, 0, 0)),
        ]) { Model = "measured-on" };
        string json = JsonSerializer.Serialize(profile, PlanningJson.Options);

        ClusterSpec cluster = ClusterSpec.Parse($$"""{ "devices": [ { "kind": "CPU", "name": "cpu", "threads": 4, "profile": {{json}} } ] }""");

        DeviceProfile back = Assert.Single(cluster.Devices).Profile!;
        Assert.Equal(profile.LayerParameters, back.LayerParameters);
        Assert.Equal(profile.Model, back.Model);
        Assert.Equal(profile.Types, back.Types);
        Assert.Equal(json, JsonSerializer.Serialize(back, PlanningJson.Options));
    }

    [Theory]
    [InlineData("""{"devices": [{"kind": "T5"}]}""", "unknown device kind 'T5'")]
    [InlineData("""{"devices": [{"count": 2}]}""", "\"kind\" is missing")]
    [InlineData("""{"devices": []}""", "\"devices\" is missing or empty")]
    [InlineData("""{"devices": [{"kind": "T4", "count": 0}]}""", "count is 0")]
    [InlineData("""{"devices": [{"kind": "T4", "name": "x"}, {"kind": "L4", "name": "x"}]}""", "'x' is used 2 times")]
    [InlineData("""{"devices": [{"kind": "T4", "memoryGiB": -1}]}""", "memoryGiB is a positive number")]
    [InlineData("""{"devices": [{"kind": "T4", "threads": 4}]}""", "threads applies to CPU devices")]
    [InlineData("""{"devices": [{"kind": "CPU", "threads": 0}]}""", "threads is at least 1")]
    [InlineData("""{"devices": [{"kind": "T4", "count": 2, "endpoint": "h:1"}]}""", "give each device its own entry")]
    [InlineData("""{"devices": [{"kind": "T4", "endpoint": "h:99999"}]}""", "not host:port")]
    [InlineData("""{"devices": [{"kind": "T4", "host": "a"}], "links": [{"hosts": ["a", "c"], "gbps": 1}]}""", "host 'c' has no device")]
    [InlineData("""{"devices": [{"kind": "T4", "host": "a"}, {"kind": "T4", "host": "b"}], "links": [{"hosts": ["a", "b"], "gbps": -1}]}""", "gbps is the link's bandwidth")]
    [InlineData("""{"devices": [{"kind": "T4", "host": "a"}, {"kind": "T4", "host": "b"}], "links": [{"hosts": ["a", "b"], "gbps": 1, "latencyMs": -2}]}""", "latencyMs is milliseconds")]
    [InlineData("""{"devices": [{"kind": "T4", "host": "a"}, {"kind": "T4", "host": "b"}], "links": [{"hosts": ["a", "b"], "gbps": 1}, {"hosts": ["b", "a"], "gbps": 2}]}""", "linked twice")]
    [InlineData("""{"devices": [{"kind": "T4", "host": "a"}], "links": [{"hosts": ["a"], "gbps": 1}]}""", "names two hosts")]
    [InlineData("""{"devices": [{"kind": "T4", "memoryGb": 12}]}""", "memoryGb")]
    [InlineData("""{"devices": [{"kind": "T4", "count": "two"}]}""", "not a cluster file")]
    [InlineData("""{"devices": [""", "not a cluster file")]
    [InlineData("""{"devices": [{"kind": "CPU", "profile": {"layerParameters": 0, "types": []}}]}""", "layerParameters")]
    public void Invalid_clusters_say_what_to_fix(string json, string expected)
    {
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.Parse(json));
        Assert.StartsWith("cluster: ", ex.Message, StringComparison.Ordinal);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_kind_lists_every_known_kind()
    {
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.Parse("""{"devices": [{"kind": "GTX-1080"}]}"""));
        Assert.All(DeviceCatalog.Kinds, kind => Assert.Contains(kind.Name, ex.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void Load_names_the_file_in_its_errors()
    {
        string path = TestModels.TempPath("cluster.json");
        File.WriteAllText(path, TwoHosts);
        Assert.Equal(4, ClusterSpec.Load(path).Devices.Count);

        File.WriteAllText(path, """{"devices": [{"kind": "T5"}]}""");
        var ex = Assert.Throws<InvalidDataException>(() => ClusterSpec.Load(path));
        Assert.StartsWith(path + ": cluster: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Links_default_by_whether_hosts_differ()
    {
        ClusterSpec cluster = ClusterSpec.Parse("""
            {"devices": [{"kind": "T4", "host": "a"}, {"kind": "T4", "host": "b"}, {"kind": "T4", "host": "c"}],
             "links": [{"hosts": ["b", "a"], "gbps": 25, "latencyMs": 0.01}, {"hosts": ["c", "c"], "gbps": 100}]}
            """);

        Assert.Equal((25.0, 0.01), (cluster.Link("a", "b").Gbps, cluster.Link("a", "b").LatencyMs));
        Assert.Equal((LinkSpec.NetworkGbps, LinkSpec.NetworkLatencyMs), (cluster.Link("a", "c").Gbps, cluster.Link("a", "c").LatencyMs));
        Assert.Equal((LinkSpec.SameHostGbps, LinkSpec.SameHostLatencyMs), (cluster.Link("a", "a").Gbps, cluster.Link("a", "a").LatencyMs));
        Assert.Equal((100.0, LinkSpec.SameHostLatencyMs), (cluster.Link("c", "c").Gbps, cluster.Link("c", "c").LatencyMs));
        Assert.Equal(0.001 + 0.8, new LinkSpec(["x", "y"], 10, 1).Seconds(1_000_000_000), 12);
    }

    [Fact]
    public void Transfers_between_stages_pass_through_the_coordinator()
    {
        ClusterSpec cluster = ClusterSpec.Parse(TwoHosts);
        DeviceSpec v100 = cluster.Devices[0];
        DeviceSpec t4a = cluster.Devices[1];
        DeviceSpec t4b = cluster.Devices[2];
        const long Bytes = 4 * 7168 * 512;

        Assert.Equal(0, cluster.TransferSeconds(t4a, t4a, Bytes));
        double network = cluster.Link("a", "b").Seconds(Bytes);
        double local = cluster.Link("a", "a").Seconds(Bytes);
        Assert.Equal(local + network, cluster.TransferSeconds(v100, t4a, Bytes), 12);

        // Two servers on host b still talk through the client on host a: the network twice.
        Assert.Equal(2 * network, cluster.TransferSeconds(t4a, t4b, Bytes), 12);
    }

    [Fact]
    public void Json_form_is_a_cluster_file()
    {
        ClusterSpec cluster = ClusterSpec.Parse(TwoHosts);
        string json = JsonSerializer.Serialize(cluster, PlanningJson.Options);
        Assert.DoesNotContain("tflops", json, StringComparison.OrdinalIgnoreCase);

        ClusterSpec back = ClusterSpec.Parse(json);
        Assert.Equal(cluster.Devices, back.Devices);
        Assert.Equal(json, JsonSerializer.Serialize(back, PlanningJson.Options));
    }

    [Fact]
    public void Catalog_has_the_required_kinds()
    {
        string[] required = ["T4", "P100-12G", "V100-32G", "A100-40G", "A100-80G", "A800-80G", "A10", "L4", "RTX-3090", "RTX-4090", "H100-80G", "H200", "CPU"];
        Assert.All(required, name => Assert.True(DeviceCatalog.TryGet(name, out _), name));
        Assert.All(DeviceCatalog.Kinds, k => Assert.True(k.MemoryGiB > 0 && k.Tflops > 0 && k.BandwidthGBps > 0, k.Name));
        Assert.Equal(DeviceCatalog.Get("A100-80G") with { Name = "A800-80G" }, DeviceCatalog.Get("a800-80g"));
        Assert.Throws<ArgumentException>(() => DeviceCatalog.Get("B200"));
    }
}
