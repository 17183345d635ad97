using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public sealed class MemoryModelTests
{
    private static readonly ModelSpec s_model = ModelSpec.Preset("llama-3.1-8b");
    private static readonly Workload s_workload = new(batchSize: 32, promptTokens: 512, generatedTokens: 100);

    private static DeviceSpec Device(string kind) => new() { Name = kind, Kind = kind, Host = "h" };

    [Fact]
    public void Kv_cache_holds_every_sequence_at_full_length()
    {
        var memory = new MemoryModel(s_model, s_workload);
        Assert.Equal(32L * 612 * (2 * 8 * 128 * 2), memory.KvCacheBytes(s_model.Layers[0]));
        Assert.Equal(0, memory.KvCacheBytes(s_model.Output));
        Assert.Equal(s_model.Layers[0].WeightBytes(GgmlType.Q4_K) + memory.KvCacheBytes(s_model.Layers[0]), memory.LayerBytes(s_model.Layers[0], GgmlType.Q4_K));
    }

    [Fact]
    public void Stage_bytes_sum_layers_compute_buffer_and_reserve()
    {
        var memory = new MemoryModel(s_model, s_workload);
        DeviceSpec gpu = Device("A100-40G");
        (LayerSpec, GgmlType)[] first = [(s_model.Layers[0], GgmlType.Q4_K), (s_model.Layers[1], GgmlType.Q8_0)];
        long expected = memory.LayerBytes(s_model.Layers[0], GgmlType.Q4_K) + memory.LayerBytes(s_model.Layers[1], GgmlType.Q8_0)
            + memory.ComputeBufferBytes(512, holdsOutput: false) + MemoryModel.GpuReserveBytes;
        Assert.Equal(expected, memory.StageBytes(gpu, first, 512));

        (LayerSpec, GgmlType)[] last = [(s_model.Layers[31], GgmlType.Q4_K), (s_model.Output, GgmlType.Q8_0)];
        long expectedLast = memory.LayerBytes(s_model.Layers[31], GgmlType.Q4_K) + s_model.Output.WeightBytes(GgmlType.Q8_0)
            + memory.ComputeBufferBytes(512, holdsOutput: true) + MemoryModel.GpuReserveBytes;
        Assert.Equal(expectedLast, memory.StageBytes(gpu, last, 512));

        Assert.Equal(expected - MemoryModel.GpuReserveBytes, memory.StageBytes(Device("CPU"), first, 512));
        Assert.Equal(0, MemoryModel.ReserveBytes(Device("CPU")));
    }

    [Fact]
    public void Compute_buffer_follows_llama_cpp()
    {
        var memory = new MemoryModel(s_model, s_workload);

        // In a layer: the FFN's gate and up activations; on the last stage: the logits of every token, and two activations.
        Assert.Equal(4L * 512 * 2 * 14336, memory.ComputeBufferBytes(512, holdsOutput: false));
        Assert.Equal(4L * 512 * (128256 + (2 * 4096)), memory.ComputeBufferBytes(512, holdsOutput: true));
        Assert.Equal(memory.ComputeBufferBytes(512, false) / 4, memory.ComputeBufferBytes(128, false));

        // Without flash attention the scores and mask of the whole cache: 32 heads + 1.
        var noFlash = new MemoryModel(s_model, s_workload) { FlashAttention = false };
        Assert.Equal(4L * 512 * ((2 * 14336) + (32L * 612 * 33)), noFlash.ComputeBufferBytes(512, holdsOutput: false));
    }

    [Fact]
    public void The_input_layer_is_counted_apart()
    {
        var memory = new MemoryModel(ModelSpec.Preset("opt-13b"), s_workload);
        long embedding = GgmlTypes.TensorBytes(GgmlType.Q8_0, [5120, 50272]);
        Assert.Equal(embedding + (5120L * 2050 * 4), memory.InputBytes(GgmlType.Q8_0));
    }

    [Fact]
    public void A_model_that_fits_at_q4_k_does_not_at_f16()
    {
        // llama-3.1-8b on one L4 (22.5 GiB), 12 GiB of KV cache: 4.2 GiB of weights at Q4_K fit beside it, 14 GiB at F16 do not.
        var memory = new MemoryModel(s_model, new Workload(batchSize: 32, promptTokens: 2048, generatedTokens: 1024));
        DeviceSpec l4 = Device("L4");
        long Stage(GgmlType type) => memory.StageBytes(l4, [.. s_model.Layers.Select(l => (l, type)), (s_model.Output, PlanTypes.OutputType(s_model))], 512);
        Assert.True(Stage(GgmlType.Q4_K) < l4.MemoryBytes);
        Assert.True(Stage(GgmlType.F16) > l4.MemoryBytes);
    }
}
