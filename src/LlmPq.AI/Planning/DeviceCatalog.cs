namespace LlmPq.Planning;

/// <summary>The public figures of one kind of device, which the roofline cost model works from.</summary>
/// <param name="Name">The kind's name as a cluster file writes it, such as <c>T4</c> or <c>A100-80G</c>.</param>
/// <param name="MemoryGiB">The device memory CUDA reports as total (a little below the datasheet's figure), in GiB.</param>
/// <param name="Tflops">Dense FP16 tensor-core TFLOP/s with FP32 accumulate, no sparsity (for the CPU: measured F32 FMA peak).</param>
/// <param name="BandwidthGBps">Memory bandwidth in GB/s (10⁹ bytes per second).</param>
public sealed record DeviceKind(string Name, double MemoryGiB, double Tflops, double BandwidthGBps)
{
    /// <summary>Gets whether the device is a CPU (llama.cpp's CPU backend) rather than a GPU.</summary>
    public bool IsCpu { get; init; }

    /// <summary>Gets, for a CPU, the number of threads <see cref="Tflops"/> was measured with; 0 for a GPU.</summary>
    public int Threads { get; init; }
}

/// <summary>
/// Datasheet figures of the GPUs LLM-PQ's clusters used and of current ones, and measured figures of a CPU.
/// </summary>
/// <remarks>
/// <para>
/// TFLOP/s are dense FP16 tensor-core rates with FP32 accumulate, from NVIDIA's datasheets and architecture
/// whitepapers (Tesla P100 and T4 datasheets, V100 whitepaper (SXM2), A100 datasheet (SXM4), A10 and L4 datasheets,
/// H100 and H200 datasheets (SXM), the Ampere GA102 and Ada whitepapers for the GeForce cards). Data-center parts run
/// FP16 at the same rate with either accumulator; GeForce parts run FP32 accumulate at half their FP16-accumulate
/// rate (RTX 3090: 71 vs 142, RTX 4090: 165.2 vs 330.3). llama.cpp's quantized matrix kernels (MMQ, int8 tensor
/// cores) reach roughly half of the FP32-accumulate figure on an RTX 4090 (llama.cpp PR #7716: about 5.7k tokens/s
/// of an 8B model at pp2048 ≈ 85 TFLOP/s), so that figure keeps both families on one scale for the roofline's
/// efficiency factor. P100 has no tensor cores: its FP16 rate is the plain one.
/// </para>
/// <para>
/// Memory is what the CUDA driver reports as total: LLM-PQ's own table for the GPUs of its clusters
/// (<c>llm_pq/utils/hardware_handler.py::get_device_mem_offline</c>: T4 14.76, V100-32G 31.74, A100-40G 39.4,
/// A100-80G 79, P100-12G 11.91 GiB), and nvidia-smi's totals for the others (A10 and L4 23028–23034 MiB,
/// RTX 3090 24576 MiB, RTX 4090 24564 MiB, H100 SXM 81559 MiB, H200 143771 MiB). A cluster file's <c>memoryGiB</c>
/// overrides it.
/// </para>
/// <para>
/// <c>CPU</c> holds the figures of the 2-core AMD EPYC (Zen 4, AVX-512) machine LlmPq was developed on, measured once:
/// F32 FMA peak by eight independent <c>Vector512.FusedMultiplyAdd</c> chains per thread for 2×10⁸ iterations
/// (188 GFLOP/s per thread, 374 with 2 threads), read bandwidth by summing a 1 GiB array with 2 threads (79 GB/s),
/// memory from <c>/proc/meminfo</c> (23.5 GiB). Compute scales with a device's <c>threads</c>; bandwidth scales with
/// them up to the 2 measured (one thread summing a 1 GiB array read at best 41 GB/s, about half) and stays there; give
/// another CPU's memory in the cluster file, or a measured profile.
/// </para>
/// </remarks>
public static class DeviceCatalog
{
    private static readonly DeviceKind[] s_kinds =
    [
        new("T4", 14.76, 65, 320),
        new("P100-12G", 11.91, 18.7, 549),
        new("V100-32G", 31.74, 125, 900),
        new("A100-40G", 39.4, 312, 1555),
        new("A100-80G", 79, 312, 2039),
        new("A800-80G", 79, 312, 2039), // the A100-80G's export variant: same compute and memory; LLM-PQ's "A100-80G" runs were on it
        new("A10", 22.49, 125, 600),
        new("L4", 22.49, 121, 300),
        new("RTX-3090", 24, 71, 936),
        new("RTX-4090", 23.99, 165.2, 1008),
        new("H100-80G", 79.65, 989.4, 3350),
        new("H200", 140.4, 989.4, 4800),
        new("CPU", 23.5, 0.374, 79) { IsCpu = true, Threads = 2 },
    ];

    /// <summary>Gets every kind in the catalog.</summary>
    public static IReadOnlyList<DeviceKind> Kinds { get; } = Array.AsReadOnly(s_kinds);

    /// <summary>Finds a kind by name, ignoring case.</summary>
    /// <param name="name">A name such as <c>v100-32g</c>.</param>
    /// <param name="kind">The kind, when found.</param>
    /// <returns><see langword="true"/> when the catalog has <paramref name="name"/>.</returns>
    public static bool TryGet(string? name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DeviceKind? kind)
    {
        kind = s_kinds.FirstOrDefault(k => string.Equals(k.Name, name, StringComparison.OrdinalIgnoreCase));
        return kind is not null;
    }

    /// <summary>Gets a kind by name, ignoring case.</summary>
    /// <param name="name">A name such as <c>T4</c>.</param>
    /// <returns>The kind.</returns>
    /// <exception cref="ArgumentException">The catalog has no such kind; the message lists the known ones.</exception>
    public static DeviceKind Get(string name) =>
        TryGet(name, out var kind) ? kind : throw new ArgumentException(UnknownKind(name), nameof(name));

    internal static string UnknownKind(string? name) =>
        $"unknown device kind '{name}'; known kinds: {string.Join(", ", s_kinds.Select(k => k.Name))}";
}
