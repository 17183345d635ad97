using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public sealed class CostModelTests
{
    private static readonly ModelSpec s_model = ModelSpec.Preset("llama-3.1-8b");
    private static readonly LayerSpec s_layer = s_model.Layers[0];
    private static readonly RooflineCostModel s_roofline = new();
    private static readonly int[] s_chunks = [1, 16, 128, 512, 2048];
    private static readonly int[] s_batches = [1, 4, 16, 64, 256];
    private static readonly long[] s_contexts = [1, 512, 4096, 32768];

    private static DeviceSpec Device(string kind) => new() { Name = kind, Kind = kind, Host = "h" };

    public static TheoryData<string> Kinds => new(DeviceCatalog.Kinds.Select(k => k.Name));

    [Theory]
    [MemberData(nameof(Kinds))]
    public void More_tokens_or_context_take_longer(string kind)
    {
        DeviceSpec device = Device(kind);
        foreach (GgmlType type in PlanTypes.All)
        {
            double[] prefill = [.. s_chunks.Select(c => s_roofline.PrefillSeconds(device, s_layer, type, c, 0))];
            Assert.True(IsNonDecreasing(prefill), $"{kind} {type} prefill: {string.Join(", ", prefill)}");
            Assert.True(prefill[^1] > prefill[0]);

            double[] decode = [.. s_batches.Select(b => s_roofline.DecodeSeconds(device, s_layer, type, b, 1024))];
            Assert.True(IsNonDecreasing(decode), $"{kind} {type} decode: {string.Join(", ", decode)}");

            double[] longer = [.. s_contexts.Select(k => s_roofline.DecodeSeconds(device, s_layer, type, 8, k))];
            Assert.True(IsNonDecreasing(longer) && longer[^1] > longer[0], $"{kind} {type} context: {string.Join(", ", longer)}");
            Assert.True(s_roofline.PrefillSeconds(device, s_layer, type, 512, 8192) > s_roofline.PrefillSeconds(device, s_layer, type, 512, 0));
        }
    }

    [Theory]
    [InlineData("T4")]
    [InlineData("A100-80G")]
    [InlineData("RTX-4090")]
    [InlineData("H100-80G")]
    public void Fewer_bits_decode_faster_on_a_gpu(string kind)
    {
        // Decode of a small batch reads the weights: time follows bytes.
        DeviceSpec device = Device(kind);
        double[] times = [.. PlanTypes.All.Select(t => s_roofline.DecodeSeconds(device, s_layer, t, 1, 512))];
        Assert.True(IsNonDecreasing([.. times.Reverse()]), string.Join(", ", times));
        Assert.True(times[0] > 3 * times[^1]);
    }

    [Fact]
    public void Faster_devices_take_less_time()
    {
        string[] slowToFast = ["T4", "V100-32G", "A100-80G", "H100-80G", "H200"];
        foreach (GgmlType type in (GgmlType[])[GgmlType.F16, GgmlType.Q4_K])
        {
            double[] prefill = [.. slowToFast.Select(k => s_roofline.PrefillSeconds(Device(k), s_layer, type, 512, 0))];
            double[] decode = [.. slowToFast.Select(k => s_roofline.DecodeSeconds(Device(k), s_layer, type, 16, 1024))];
            Assert.True(IsNonDecreasing([.. prefill.Reverse()]), string.Join(", ", prefill));
            Assert.True(IsNonDecreasing([.. decode.Reverse()]), string.Join(", ", decode));
        }

        Assert.True(
            s_roofline.PrefillSeconds(Device("CPU"), s_layer, GgmlType.F16, 512, 0)
            > 10 * s_roofline.PrefillSeconds(Device("T4"), s_layer, GgmlType.F16, 512, 0));
    }

    [Fact]
    public void Roofline_takes_the_larger_of_compute_and_memory_time()
    {
        DeviceSpec a100 = Device("A100-80G");
        double flopsPerSecond = 312e12 * 0.5;
        double bytesPerSecond = 2039e9 * 0.7;

        // One token: the weights dominate.
        Assert.Equal(s_layer.WeightBytes(GgmlType.F16) / bytesPerSecond, s_roofline.DecodeSeconds(a100, s_layer, GgmlType.F16, 1, 0), 12);

        // A long chunk: the FLOPs do.
        const int Tokens = 4096;
        double flops = (Tokens * (double)s_layer.FlopsPerToken) + (Tokens * (double)s_layer.AttentionFlops(1) * ((Tokens + 1) / 2.0));
        Assert.Equal(flops / flopsPerSecond, s_roofline.PrefillSeconds(a100, s_layer, GgmlType.F16, Tokens, 0), 9);
    }

    [Fact]
    public void Cpu_threads_scale_compute()
    {
        DeviceSpec two = Device("CPU") with { Threads = 2 };
        DeviceSpec eight = Device("CPU") with { Threads = 8 };
        Assert.Equal(4 * two.Tflops, eight.Tflops, 9);
        Assert.True(s_roofline.PrefillSeconds(eight, s_layer, GgmlType.F16, 512, 0) < s_roofline.PrefillSeconds(two, s_layer, GgmlType.F16, 512, 0));
    }

    [Fact]
    public void A_profile_replaces_the_roofline_for_its_types_and_calibrates_it_for_the_others()
    {
        var fit = new LayerTimeFit(Fixed: 1e-3, PerToken: 1e-5, PerTokenContext: 1e-8);
        var profile = new DeviceProfile(s_layer.MatrixParameters, [new TypeProfile(GgmlType.Q4_K, fit, fit with { Fixed = 2e-3 })]);
        DeviceSpec measured = Device("T4") with { Profile = profile };
        var model = new ProfiledCostModel();

        Assert.Equal(1e-3 + (512 * 1e-5) + (512 * 1e-8 * (100 + 256.5)), model.PrefillSeconds(measured, s_layer, GgmlType.Q4_K, 512, 100), 12);
        Assert.Equal(2e-3 + (8 * 1e-5) + (8 * 1e-8 * 1000), model.DecodeSeconds(measured, s_layer, GgmlType.Q4_K, 8, 1000), 12);
        double calibration = model.DecodeSeconds(measured, s_layer, GgmlType.Q4_K, 8, 1000) / s_roofline.DecodeSeconds(measured, s_layer, GgmlType.Q4_K, 8, 1000);
        Assert.Equal(s_roofline.DecodeSeconds(measured, s_layer, GgmlType.Q8_0, 8, 1000) * calibration, model.DecodeSeconds(measured, s_layer, GgmlType.Q8_0, 8, 1000), 12);
        Assert.Equal(s_roofline.DecodeSeconds(Device("T4"), s_layer, GgmlType.Q4_K, 8, 1000), model.DecodeSeconds(Device("T4"), s_layer, GgmlType.Q4_K, 8, 1000));

        // Scaled by weights to a layer twice the size.
        var wide = s_layer with { Matrices = [.. s_layer.Matrices, .. s_layer.Matrices] };
        Assert.Equal(2 * model.DecodeSeconds(measured, s_layer, GgmlType.Q4_K, 8, 1000), model.DecodeSeconds(measured, wide, GgmlType.Q4_K, 8, 1000), 12);
    }

    [Fact]
    public void Arguments_are_checked()
    {
        DeviceSpec t4 = Device("T4");
        Assert.Throws<ArgumentOutOfRangeException>(() => s_roofline.PrefillSeconds(t4, s_layer, GgmlType.F16, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => s_roofline.DecodeSeconds(t4, s_layer, GgmlType.F16, 1, -1));
        Assert.Throws<ArgumentException>(() => s_roofline.DecodeSeconds(t4, new LayerSpec(0, [new MatrixSpec("x", 100, 1)], 0, 0, 0, 0), GgmlType.Q4_K, 1, 0));
    }

    private static bool IsNonDecreasing(double[] values) => values.Zip(values.Skip(1)).All(p => p.Second >= p.First);
}
