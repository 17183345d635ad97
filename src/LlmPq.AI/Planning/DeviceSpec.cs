using System.Globalization;
using System.Text.Json.Serialization;

namespace LlmPq.Planning;

/// <summary>One device of a cluster: a GPU, or a CPU that runs a stage with llama.cpp's CPU backend.</summary>
/// <remarks>
/// Its JSON form is a cluster file's device entry (without <c>count</c>); the catalog figures are not written, they
/// follow from <see cref="Kind"/>.
/// </remarks>
public sealed record DeviceSpec
{
    private readonly DeviceKind _catalog = null!;

    /// <summary>Gets the device's unique name within its cluster, such as <c>T4-0</c>.</summary>
    public required string Name
    {
        get;
        init => field = string.IsNullOrWhiteSpace(value) ? throw new ArgumentException("A device name is not empty.", nameof(Name)) : value;
    }

    /// <summary>Gets the catalog kind (<see cref="DeviceCatalog"/>), such as <c>V100-32G</c> or <c>CPU</c>.</summary>
    /// <exception cref="ArgumentException">The catalog has no such kind; the message lists the known ones.</exception>
    public required string Kind
    {
        get;
        init
        {
            _catalog = DeviceCatalog.TryGet(value, out var kind) ? kind : throw new ArgumentException(DeviceCatalog.UnknownKind(value), nameof(Kind));
            field = kind.Name;
        }
    }

    /// <summary>Gets the host the device is in; devices of one host talk without the network.</summary>
    public required string Host
    {
        get;
        init => field = string.IsNullOrWhiteSpace(value) ? throw new ArgumentException("A host name is not empty.", nameof(Host)) : value;
    }

    /// <summary>Gets the memory in GiB when it overrides the catalog's (a CPU's RAM for stages, a GPU shared with other work).</summary>
    public double? MemoryGiB
    {
        get;
        init => field = value is null or (> 0 and < 1e6) ? value : throw new ArgumentOutOfRangeException(nameof(MemoryGiB), value, "memoryGiB is a positive number of GiB.");
    }

    /// <summary>Gets the <c>host:port</c> of the stage server (<c>ggml-rpc-server</c>) that owns the device, when it is already running.</summary>
    public string? Endpoint
    {
        get;
        init => field = value is null || IsEndpoint(value) ? value : throw new ArgumentException($"endpoint '{value}' is not host:port with a port from 1 to 65535.", nameof(Endpoint));
    }

    /// <summary>Gets, for a CPU, the threads its stage uses; compute scales with them (null: the catalog's measurement).</summary>
    public int? Threads
    {
        get;
        init => field = value is null or >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Threads), value, "threads is at least 1.");
    }

    /// <summary>Gets measured layer times that replace the roofline for the types they cover.</summary>
    public DeviceProfile? Profile { get; init; }

    /// <summary>Gets whether the device is a CPU.</summary>
    [JsonIgnore]
    public bool IsCpu => _catalog.IsCpu;

    /// <summary>Gets the device memory in bytes: <see cref="MemoryGiB"/>, or the catalog's.</summary>
    [JsonIgnore]
    public long MemoryBytes => (long)((MemoryGiB ?? _catalog.MemoryGiB) * (1L << 30));

    /// <summary>Gets the peak compute in TFLOP/s (for a CPU, scaled from the catalog's measurement to <see cref="Threads"/>).</summary>
    [JsonIgnore]
    public double Tflops => _catalog.IsCpu && Threads is int threads ? _catalog.Tflops * threads / _catalog.Threads : _catalog.Tflops;

    /// <summary>
    /// Gets the memory bandwidth in GB/s; for a CPU with fewer <see cref="Threads"/> than the catalog measured with, that
    /// share of it (one core cannot keep every memory channel busy), and never more than measured (the memory does not
    /// grow with threads).
    /// </summary>
    [JsonIgnore]
    public double BandwidthGBps => _catalog.IsCpu && Threads is int threads
        ? _catalog.BandwidthGBps * Math.Min(threads, _catalog.Threads) / _catalog.Threads
        : _catalog.BandwidthGBps;

    private static bool IsEndpoint(string value)
    {
        int colon = value.LastIndexOf(':');
        return colon > 0
            && int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port)
            && port is >= 1 and <= 65535;
    }
}
