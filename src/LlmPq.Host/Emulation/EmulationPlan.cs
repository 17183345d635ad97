using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using LlmPq.Planning;
using LlmPq.Stages;

namespace LlmPq.Host.Emulation;

/// <summary>One emulated host: its network namespace, the veth pair to the coordinator, the pair's addresses and shaping.</summary>
/// <param name="Host">The cluster file's host name.</param>
/// <param name="Namespace">The network namespace (<c>llmpq-PID-BLOCK-HOST</c>, BLOCK the number of its /30).</param>
/// <param name="RootInterface">The coordinator's end of the veth pair, in the root namespace (<c>lqPID-BLOCK</c>).</param>
/// <param name="RootAddress">The coordinator's address on the pair.</param>
/// <param name="HostAddress">The host's address on the pair; its stage servers listen on it.</param>
/// <param name="Shaping">The token bucket on both ends.</param>
/// <param name="LatencyMs">The latency the link declares, which tbf cannot add.</param>
/// <param name="Devices">The host's devices, each with the port of its stage server.</param>
internal sealed record EmulatedHostPlan(
    string Host,
    string Namespace,
    string RootInterface,
    IPAddress RootAddress,
    IPAddress HostAddress,
    TokenBucket Shaping,
    double LatencyMs,
    IReadOnlyList<(DeviceSpec Device, int Port)> Devices)
{
    /// <summary>The host's end of the veth pair, inside its namespace.</summary>
    public const string HostInterface = "eth0";

    /// <summary>Gets the endpoint of a device's stage server.</summary>
    public string Endpoint(int port) => string.Create(CultureInfo.InvariantCulture, $"{HostAddress}:{port}");
}

/// <summary>
/// A <c>tc tbf</c> shaper: <paramref name="RateBitsPerSecond"/>, a bucket of <paramref name="BurstBytes"/> sent at line
/// speed, and a queue of <paramref name="LimitBytes"/>.
/// </summary>
/// <param name="RateBitsPerSecond">The link's bandwidth.</param>
/// <param name="BurstBytes">The bucket: 1 ms of traffic, at least 16 KiB.</param>
/// <param name="LimitBytes">The queue: the bucket plus 100 ms of traffic, at least 1 MiB.</param>
internal sealed record TokenBucket(long RateBitsPerSecond, long BurstBytes, long LimitBytes)
{
    /// <summary>Gets the shaper of a link of <paramref name="gbps"/> Gbit/s.</summary>
    /// <remarks>
    /// The bucket is what the shaper lets through unshaped, so it is kept small: 1 ms of traffic, enough for the
    /// kernel's timer to keep the rate, and at least 16 KiB, a few full frames, so a segmented TCP send is never
    /// dropped for being larger than the bucket. The queue holds 100 ms of traffic (at least 1 MiB) so that TCP's
    /// window fills it without drops: ggml's RPC sends one tensor and waits, so queueing delay never builds up.
    /// </remarks>
    public static TokenBucket For(double gbps)
    {
        long rate = checked((long)Math.Round(gbps * 1e9));
        long burst = Math.Max(16 << 10, rate / 8 / 1000);
        return new TokenBucket(rate, burst, Math.Max(1 << 20, burst + (rate / 8 / 10)));
    }

    /// <summary>Gets the arguments of <c>tc qdisc replace … tbf</c> after the device.</summary>
    public IReadOnlyList<string> Arguments =>
    [
        "root", "tbf",
        "rate", string.Create(CultureInfo.InvariantCulture, $"{RateBitsPerSecond}bit"),
        "burst", BurstBytes.ToString(CultureInfo.InvariantCulture),
        "limit", LimitBytes.ToString(CultureInfo.InvariantCulture),
    ];
}

/// <summary>
/// What <see cref="EmulatedHosts"/> sets up for a cluster, as a pure function of the cluster: one namespace per host
/// other than the coordinator, a veth pair from the root namespace (the coordinator's: the process that holds the
/// llama.cpp context runs there) to it, a /30 of 10.213.0.0/16 per pair, and <c>tc tbf</c> at the link's rate on both
/// ends, one per direction.
/// </summary>
/// <param name="OwnerPid">The process that owns the namespaces; its id is in every name, so stale ones can be told apart.</param>
/// <param name="Hosts">The emulated hosts, in the order of their first device in the cluster file.</param>
internal sealed partial record EmulationPlan(int OwnerPid, IReadOnlyList<EmulatedHostPlan> Hosts)
{
    /// <summary>The first port of a host's stage servers; its next devices get the next ports.</summary>
    public const int FirstPort = 50052;

    private const int PoolBlocks = 1 << 14; // the /30 blocks of 10.213.0.0/16
    private const int InterfaceNameMax = 15; // IFNAMSIZ - 1

    /// <summary>Gets the prefix of the namespaces a process owns.</summary>
    public static string NamespacePrefix(int pid) => string.Create(CultureInfo.InvariantCulture, $"llmpq-{pid}-");

    /// <summary>Gets the prefix of the root-side interfaces a process owns.</summary>
    public static string InterfacePrefix(int pid) => string.Create(CultureInfo.InvariantCulture, $"lq{pid}-");

    /// <summary>Gets the process that owns a namespace or interface of ours, from its name.</summary>
    /// <param name="name">A namespace or interface name.</param>
    /// <param name="pid">The owner.</param>
    /// <returns>Whether the name is one of ours.</returns>
    public static bool TryOwner(string name, out int pid)
    {
        ArgumentNullException.ThrowIfNull(name);
        Match match = OwnedName().Match(name);
        pid = 0;
        return match.Success && int.TryParse(match.Groups["pid"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out pid);
    }

    /// <summary>Plans the emulation of <paramref name="cluster"/>.</summary>
    /// <param name="cluster">The cluster; its devices off the coordinator's host must not have endpoints.</param>
    /// <param name="ownerPid">The process that will own the namespaces.</param>
    /// <param name="addressesInUse">IPv4 addresses of the root namespace; a /30 holding one is not used.</param>
    /// <returns>The plan; no hosts when every device is on the coordinator.</returns>
    /// <exception cref="ArgumentException">A device to emulate has an endpoint, or the address pool is used up.</exception>
    public static EmulationPlan Create(ClusterSpec cluster, int ownerPid, IReadOnlyCollection<IPAddress> addressesInUse)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(addressesInUse);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ownerPid);
        var taken = addressesInUse.Select(Block).Where(b => b >= 0).ToHashSet();
        var hosts = new List<EmulatedHostPlan>();
        int block = 0;
        foreach (var group in cluster.Devices.Where(d => d.Host != cluster.Coordinator).GroupBy(d => d.Host, StringComparer.Ordinal))
        {
            if (group.FirstOrDefault(d => d.Endpoint is not null) is DeviceSpec running)
            {
                throw new ArgumentException(
                    $"device '{running.Name}' of host '{group.Key}' has an endpoint ({running.Endpoint}); emulated hosts start their own stage servers: remove the endpoint, or serve without --emulate-hosts");
            }

            while (block < PoolBlocks && taken.Contains(block))
            {
                block++;
            }

            if (block == PoolBlocks)
            {
                throw new ArgumentException("10.213.0.0/16 has no free /30 left for another emulated host; remove stale llmpq namespaces (ip netns list) or addresses in that range");
            }

            // Names carry the address block, which is unique on the machine while the addresses exist, so two
            // emulations of one process never meet; "lq" + a pid of up to 7 digits + "-" + 5 digits fits IFNAMSIZ.
            string rootInterface = string.Create(CultureInfo.InvariantCulture, $"{InterfacePrefix(ownerPid)}{block}");
            if (rootInterface.Length > InterfaceNameMax)
            {
                throw new ArgumentException($"the interface name '{rootInterface}' is longer than Linux's {InterfaceNameMax} characters (a process id above 7 digits)");
            }

            LinkSpec link = cluster.Link(group.Key, cluster.Coordinator);
            hosts.Add(new EmulatedHostPlan(
                group.Key,
                string.Create(CultureInfo.InvariantCulture, $"{NamespacePrefix(ownerPid)}{block}-{Sanitize(group.Key)}"),
                rootInterface,
                Address(block, 1),
                Address(block, 2),
                TokenBucket.For(link.Gbps),
                link.LatencyMs,
                [.. group.Select((d, i) => (d, FirstPort + i))]));
            block++;
        }

        return new EmulationPlan(ownerPid, hosts);
    }

    /// <summary>Gets the commands that set the hosts up, in order: each an argument list for <c>ip</c> or <c>tc</c>, the program first.</summary>
    public IReadOnlyList<IReadOnlyList<string>> SetupCommands() =>
    [
        .. Hosts.SelectMany(h => (IReadOnlyList<string>[])
        [
            ["ip", "netns", "add", h.Namespace],
            ["ip", "link", "add", h.RootInterface, "type", "veth", "peer", "name", EmulatedHostPlan.HostInterface, "netns", h.Namespace],
            ["ip", "addr", "add", $"{h.RootAddress}/30", "dev", h.RootInterface],
            ["ip", "link", "set", h.RootInterface, "up"],
            ["ip", "-n", h.Namespace, "link", "set", "lo", "up"],
            ["ip", "-n", h.Namespace, "addr", "add", $"{h.HostAddress}/30", "dev", EmulatedHostPlan.HostInterface],
            ["ip", "-n", h.Namespace, "link", "set", EmulatedHostPlan.HostInterface, "up"],
            .. ShapeCommands(h, h.Shaping),
        ]),
    ];

    /// <summary>Gets the commands that shape both ends of a host's veth pair (<c>tc qdisc replace</c>: they also reshape).</summary>
    /// <param name="host">The host.</param>
    /// <param name="shaping">The token bucket.</param>
    /// <returns>One command per end: the coordinator's sends to the host, the host's sends to the coordinator.</returns>
    public static IReadOnlyList<IReadOnlyList<string>> ShapeCommands(EmulatedHostPlan host, TokenBucket shaping)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(shaping);
        return
        [
            ["tc", "qdisc", "replace", "dev", host.RootInterface, .. shaping.Arguments],
            ["tc", "-n", host.Namespace, "qdisc", "replace", "dev", EmulatedHostPlan.HostInterface, .. shaping.Arguments],
        ];
    }

    /// <summary>
    /// Gets the commands that remove everything <see cref="SetupCommands"/> made, each safe to run when its object is
    /// already gone: deleting a namespace deletes the veth pair with it; the root end is deleted first for a setup
    /// that failed between the two.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<string>> TeardownCommands() =>
        [.. Hosts.SelectMany(h => (IReadOnlyList<string>[]) [["ip", "link", "del", h.RootInterface], ["ip", "netns", "del", h.Namespace]])];

    /// <summary>Gets the stage server command of a device: <c>ip netns exec NS ggml-rpc-server …</c> listening on the host's address.</summary>
    /// <param name="host">The device's host.</param>
    /// <param name="device">The device.</param>
    /// <param name="port">Its port.</param>
    /// <param name="serverPath">The path of <c>ggml-rpc-server</c>.</param>
    /// <returns>The arguments of <c>ip</c>.</returns>
    public static IReadOnlyList<string> ServerCommand(EmulatedHostPlan host, DeviceSpec device, int port, string serverPath)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(device);
        return
        [
            "netns", "exec", host.Namespace, serverPath,
            .. LocalStageOptions.ServerArguments(device.IsCpu ? "CPU" : null, device.Threads ?? 0, host.HostAddress.ToString(), port),
        ];
    }

    /// <summary>Gets <paramref name="cluster"/> with every emulated device's endpoint set to its stage server.</summary>
    public ClusterSpec Apply(ClusterSpec cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var endpoints = Hosts.SelectMany(h => h.Devices.Select(d => (d.Device.Name, Endpoint: h.Endpoint(d.Port)))).ToDictionary(e => e.Name, e => e.Endpoint, StringComparer.Ordinal);
        return cluster with { Devices = [.. cluster.Devices.Select(d => endpoints.TryGetValue(d.Name, out string? endpoint) ? d with { Endpoint = endpoint } : d)] };
    }

    private static int Block(IPAddress address)
    {
        byte[] bytes = address.GetAddressBytes();
        return bytes is [10, 213, var c, var d] ? (c << 6) | (d >> 2) : -1;
    }

    private static IPAddress Address(int block, int offset) => new([10, 213, (byte)(block >> 6), (byte)(((block & 63) << 2) | offset)]);

    // A namespace name is a file name under /run/netns: keep it to letters, digits, '-', '_' and '.'.
    private static string Sanitize(string host)
    {
        string safe = string.Concat(host.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        return safe.Length > 32 ? safe[..32] : safe;
    }

    [GeneratedRegex(@"^(?:llmpq-|lq)(?<pid>[0-9]{1,10})-")]
    private static partial Regex OwnedName();
}
