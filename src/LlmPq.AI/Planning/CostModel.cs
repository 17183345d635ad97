using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// The time one layer takes on one device at one weight type, in each phase; what the optimizer and the simulator
/// price plans with.
/// </summary>
/// <remarks>
/// Implementations: <see cref="RooflineCostModel"/> from the catalog's figures, and <see cref="ProfiledCostModel"/>,
/// which uses a device's measured <see cref="DeviceSpec.Profile"/> where it has one. Both are pure functions of their
/// arguments, safe to call from many threads.
/// </remarks>
public interface ICostModel
{
    /// <summary>Gets the seconds one layer takes to prefill a chunk of <paramref name="tokens"/> tokens of one sequence.</summary>
    /// <param name="device">The device.</param>
    /// <param name="layer">The layer (a repeating layer or the model's output layer).</param>
    /// <param name="type">The type of the layer's matrices.</param>
    /// <param name="tokens">The tokens of the chunk; at least 1.</param>
    /// <param name="context">The tokens of the same sequence already in the KV cache before the chunk.</param>
    /// <returns>Seconds.</returns>
    double PrefillSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int tokens, long context);

    /// <summary>Gets the seconds one layer takes for one decode step of <paramref name="batch"/> sequences.</summary>
    /// <param name="device">The device.</param>
    /// <param name="layer">The layer (a repeating layer or the model's output layer).</param>
    /// <param name="type">The type of the layer's matrices.</param>
    /// <param name="batch">The sequences, one new token each; at least 1.</param>
    /// <param name="context">The context length of each sequence (the positions its new token attends to).</param>
    /// <returns>Seconds.</returns>
    double DecodeSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int batch, long context);
}

/// <summary>
/// A roofline from the catalog: each phase takes the longer of its compute time and its memory time, with efficiency
/// factors for what llama.cpp's kernels reach.
/// </summary>
/// <remarks>
/// <para>
/// Compute: 2 FLOPs per weight and token, plus 4 × heads × head width per token and context position (attention),
/// over <see cref="DeviceSpec.Tflops"/> × an efficiency × a per-type factor (the type factor applies to the matrix
/// FLOPs only; attention runs on F16 K and V whatever the weights). Memory: the layer's weight bytes at the type plus
/// the KV cache it reads (F16) over <see cref="DeviceSpec.BandwidthGBps"/> × an efficiency. Fixed per-step costs
/// (kernel launches, thread synchronization) are left out; a measured profile captures them.
/// </para>
/// <para>
/// GPU: compute efficiency 0.5 of the dense FP16 figure, in both phases — llama.cpp's MMQ kernels reach about that
/// (PR #7716: an 8B model at about 5.7k tokens/s of pp2048 on an RTX 4090, about 85 of its 165 TFLOP/s);
/// bandwidth efficiency 0.7, an assumption inside the 60–85 % of datasheet bandwidth that llama.cpp's token
/// generation shows on NVIDIA GPUs. Type factors: 1 for F16 and Q8_0, 0.9 for Q6_K–Q4_K, 0.8 for Q3_K and Q2_K: on
/// GPUs the K-quants are dequantized inside the int8 tensor-core matrix kernels (llama.cpp PR #7860 measured them
/// at or above FP16 cuBLAS), with a small cost for unpacking that grows as the bits get odder.
/// </para>
/// <para>
/// CPU: measured with <c>llama-bench</c> (pp128, tg32, 2 threads) on an 8-layer, 2048-wide llama model at each type,
/// on the catalog's CPU. F16 prefill reached 0.95 of the measured FMA peak (tinyBLAS); prefill throughput relative to
/// F16 was Q8_0 0.83, Q6_K 0.54, Q5_K 0.40, Q4_K 1.25, Q3_K 0.41, Q2_K 1.03 (Q4_K and Q2_K have repacked AVX-512
/// kernels, the others dequantize in the dot product). Decode runs matrix-vector products that reached about half
/// the prefill throughput of the same type, so its compute efficiency is 0.5 × 0.95; bandwidth efficiency 0.7
/// (F16 decode read 54 of the measured 79 GB/s). On that model the roofline is within 3 % of each measured
/// prefill rate and within 25 % of each decode rate.
/// Other CPUs differ (repacking depends on the instruction set); measure a profile for them.
/// </para>
/// </remarks>
public sealed class RooflineCostModel : ICostModel
{
    private const double GpuComputeEfficiency = 0.5;
    private const double GpuBandwidthEfficiency = 0.7;
    private const double CpuPrefillEfficiency = 0.95;
    private const double CpuDecodeEfficiency = 0.5 * CpuPrefillEfficiency;
    private const double CpuBandwidthEfficiency = 0.7;

    /// <inheritdoc/>
    public double PrefillSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int tokens, long context)
    {
        Check(device, layer, tokens, context);

        // Each token of the chunk attends to the cached context and to the chunk's tokens before it and itself.
        double meanContext = context + ((tokens + 1) / 2.0);
        double compute = ComputeSeconds(device, layer, type, tokens, meanContext, device.IsCpu ? CpuPrefillEfficiency : GpuComputeEfficiency);

        // Flash attention reads the K and V of the whole context once per chunk.
        double bytes = layer.WeightBytes(type) + ((double)(context + tokens) * layer.KvBytesPerToken);
        return Math.Max(compute, MemorySeconds(device, bytes));
    }

    /// <inheritdoc/>
    public double DecodeSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int batch, long context)
    {
        Check(device, layer, batch, context);
        double compute = ComputeSeconds(device, layer, type, batch, context, device.IsCpu ? CpuDecodeEfficiency : GpuComputeEfficiency);
        double bytes = layer.WeightBytes(type) + ((double)batch * context * layer.KvBytesPerToken);
        return Math.Max(compute, MemorySeconds(device, bytes));
    }

    private static double ComputeSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int tokens, double context, double efficiency)
    {
        double flopsPerSecond = device.Tflops * 1e12 * efficiency;
        double matrix = (double)tokens * layer.FlopsPerToken / (flopsPerSecond * TypeFactor(device.IsCpu, type));
        double attention = tokens * 4.0 * layer.HeadCount * layer.HeadDim * context / flopsPerSecond;
        return matrix + attention;
    }

    private static double MemorySeconds(DeviceSpec device, double bytes) =>
        bytes / (device.BandwidthGBps * 1e9 * (device.IsCpu ? CpuBandwidthEfficiency : GpuBandwidthEfficiency));

    // Matrix throughput of a type relative to F16 (see the remarks); types outside PlanTypes.All count as F16.
    private static double TypeFactor(bool cpu, GgmlType type) => (cpu, type) switch
    {
        (false, GgmlType.Q6_K or GgmlType.Q5_K or GgmlType.Q4_K) => 0.9,
        (false, GgmlType.Q3_K or GgmlType.Q2_K) => 0.8,
        (true, GgmlType.Q8_0) => 0.83,
        (true, GgmlType.Q6_K) => 0.54,
        (true, GgmlType.Q5_K) => 0.40,
        (true, GgmlType.Q4_K) => 1.25,
        (true, GgmlType.Q3_K) => 0.41,
        (true, GgmlType.Q2_K) => 1.03,
        _ => 1,
    };

    internal static void Check(DeviceSpec device, LayerSpec layer, int tokens, long context)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(context);
    }
}

/// <summary>
/// Uses each device's measured <see cref="DeviceSpec.Profile"/> for the types it covers, and another cost model
/// (by default the roofline) for everything else.
/// </summary>
/// <remarks>
/// <para>
/// A profile's times are for a layer of <see cref="DeviceProfile.LayerParameters"/> weights; they are scaled by the
/// ratio of weights to the layer asked about, exact for the profiled model's own layers and an approximation for
/// others (the attention term scales with heads, not weights).
/// </para>
/// <para>
/// A type a profiled device has no fit for (its measurement was lost in noise, or it was not measured) is priced by
/// the fallback calibrated on that device: times the median, over the types it did measure, of measured over
/// fallback at the same point. Priced by the bare roofline, which is several times faster than a small CPU layer
/// measures, such a type would look cheapest and the optimizer would choose it for that reason alone.
/// </para>
/// </remarks>
/// <param name="fallback">The model for devices or types the profiles do not cover.</param>
public sealed class ProfiledCostModel(ICostModel fallback) : ICostModel
{
    private readonly ICostModel _fallback = fallback ?? throw new ArgumentNullException(nameof(fallback));

    /// <summary>Initializes a new instance of the <see cref="ProfiledCostModel"/> class that falls back on a <see cref="RooflineCostModel"/>.</summary>
    public ProfiledCostModel()
        : this(new RooflineCostModel())
    {
    }

    /// <inheritdoc/>
    public double PrefillSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int tokens, long context)
    {
        RooflineCostModel.Check(device, layer, tokens, context);
        double mean = context + ((tokens + 1) / 2.0);
        return Price(device, layer, type, t => t.Prefill.Seconds(tokens, mean), (d, l, t) => _fallback.PrefillSeconds(d, l, t, tokens, context));
    }

    /// <inheritdoc/>
    public double DecodeSeconds(DeviceSpec device, LayerSpec layer, GgmlType type, int batch, long context)
    {
        RooflineCostModel.Check(device, layer, batch, context);
        return Price(device, layer, type, t => t.Decode.Seconds(batch, context), (d, l, t) => _fallback.DecodeSeconds(d, l, t, batch, context));
    }

    private static double Scale(DeviceProfile profile, LayerSpec layer) => (double)layer.MatrixParameters / profile.LayerParameters;

    private static double Price(DeviceSpec device, LayerSpec layer, GgmlType type, Func<TypeProfile, double> measured, Func<DeviceSpec, LayerSpec, GgmlType, double> fallback)
    {
        if (device.Profile is not { Types.Count: > 0 } profile)
        {
            return fallback(device, layer, type);
        }

        if (profile.Find(type) is { } fit)
        {
            return measured(fit) * Scale(profile, layer);
        }

        double[] ratios = [.. profile.Types.Select(t => measured(t) * Scale(profile, layer) / fallback(device, layer, t.Type)).Where(double.IsFinite).Order()];
        double calibration = ratios.Length == 0 ? 1 : ratios[ratios.Length / 2];
        return fallback(device, layer, type) * calibration;
    }
}
