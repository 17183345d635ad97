using LlmPq.Gguf;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;

namespace LlmPq.Tests.Stages;

/// <summary>A heterogeneous cluster of CPU stages on one machine, as <c>docs/clusters/local-cpu-3stage.json</c> declares it.</summary>
public sealed class LocalCpuClusterTests
{
    [Fact]
    public void The_example_declares_three_cpu_stages_with_their_budgets_and_threads()
    {
        ClusterSpec cluster = ClusterSpec.Load(ExamplePath());
        Assert.Equal(["s0", "s1", "s2"], cluster.Devices.Select(d => d.Name));
        Assert.All(cluster.Devices, d => Assert.True(d.IsCpu));
        Assert.All(cluster.Devices, d => Assert.Equal("local", d.Host));
        Assert.Equal([1.0, 0.5, 0.25], cluster.Devices.Select(d => d.MemoryGiB!.Value));
        Assert.Equal([2, 1, 1], cluster.Devices.Select(d => d.Threads!.Value));
        Assert.Equal([1L << 30, 1L << 29, 1L << 28], cluster.Devices.Select(d => d.MemoryBytes));
    }

    [Fact]
    public void Threads_scale_compute_and_bandwidth_up_to_what_was_measured()
    {
        DeviceKind cpu = DeviceCatalog.Get("CPU");
        DeviceSpec Cpu(int? threads) => new() { Name = "c", Kind = "CPU", Host = "h", Threads = threads };

        Assert.Equal(cpu.BandwidthGBps, Cpu(null).BandwidthGBps);
        Assert.Equal(cpu.BandwidthGBps / cpu.Threads, Cpu(1).BandwidthGBps, 9);
        Assert.Equal(cpu.BandwidthGBps, Cpu(cpu.Threads).BandwidthGBps, 9);
        Assert.Equal(cpu.BandwidthGBps, Cpu(4 * cpu.Threads).BandwidthGBps, 9);
        Assert.Equal(cpu.Tflops / cpu.Threads, Cpu(1).Tflops, 9);
        Assert.Equal(4 * cpu.Tflops, Cpu(4 * cpu.Threads).Tflops, 9);

        // One thread at one stage: its layers take twice the time of the measured two, in either phase.
        var layer = ModelSpec.Preset("mistral-7b").Layers[0];
        var roofline = new RooflineCostModel();
        Assert.Equal(2 * roofline.DecodeSeconds(Cpu(2), layer, GgmlType.Q4_K, 1, 512), roofline.DecodeSeconds(Cpu(1), layer, GgmlType.Q4_K, 1, 512), 9);
        Assert.Equal(2 * roofline.PrefillSeconds(Cpu(2), layer, GgmlType.Q4_K, 128, 0), roofline.PrefillSeconds(Cpu(1), layer, GgmlType.Q4_K, 128, 0), 9);
    }

    [Fact]
    public void The_planner_keeps_every_stage_within_its_budget()
    {
        string path = TestModels.Write("cluster", new TinyLlamaModelOptions { Layers = 8, EmbeddingLength = 256, FeedForwardLength = 512 });
        ModelSpec model = ModelSpec.FromGguf(GgufReader.Read(path));
        ClusterSpec cluster = ClusterSpec.Load(ExamplePath());

        Plan plan = Planner.Create(model, cluster, new Workload(4, 64, 16), QualityTarget.Default, QualityIndicator.Fallback([.. model.Layers.Select(l => l.Parameters)]));

        Assert.Equal(model.LayerCount, plan.LayerTypes().Count);
        Assert.All(plan.Stages, s => Assert.True(s.MemoryBytes <= s.Device.MemoryBytes, $"{s.Device.Name}: {s.MemoryBytes} > {s.Device.MemoryBytes}"));
        Assert.All(plan.Stages, s => Assert.Equal(cluster.Devices.Single(d => d.Name == s.Device.Name).MemoryBytes, s.Device.MemoryBytes));
    }

    private static string ExamplePath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "docs", "clusters", "local-cpu-3stage.json");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("docs/clusters/local-cpu-3stage.json is not above the test's folder");
    }
}
