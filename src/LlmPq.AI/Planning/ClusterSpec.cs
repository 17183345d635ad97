using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LlmPq.Planning;

/// <summary>A link between two hosts, or a host's own transfers when both names are the same; α-β: latency plus bytes over bandwidth.</summary>
/// <param name="Hosts">The two hosts; the link carries both directions.</param>
/// <param name="Gbps">The bandwidth in Gbit/s.</param>
/// <param name="LatencyMs">The latency of one transfer in milliseconds.</param>
public sealed record LinkSpec(IReadOnlyList<string> Hosts, double Gbps, double LatencyMs)
{
    /// <summary>The bandwidth between two hosts the cluster file links not: 10 Gbit/s Ethernet.</summary>
    public const double NetworkGbps = 10;

    /// <summary>
    /// The latency between two hosts the cluster file links not: 0.2 ms, a LAN round trip with a TCP stack at each end,
    /// since ggml's RPC client waits for the reply of each tensor it reads.
    /// </summary>
    public const double NetworkLatencyMs = 0.2;

    /// <summary>
    /// The bandwidth within a host: 64 Gbit/s (8 GB/s), a round figure below PCIe 3.0 ×16 (about 12 GB/s in practice)
    /// and loopback TCP between a stage server and the coordinator, which this path also takes.
    /// </summary>
    public const double SameHostGbps = 64;

    /// <summary>The latency within a host: 0.05 ms, a loopback round trip plus a device copy.</summary>
    public const double SameHostLatencyMs = 0.05;

    /// <summary>Gets the seconds one transfer of <paramref name="bytes"/> takes.</summary>
    /// <param name="bytes">The size of the transfer.</param>
    /// <returns><see cref="LatencyMs"/> / 1000 + 8 × <paramref name="bytes"/> / (<see cref="Gbps"/> × 10⁹).</returns>
    public double Seconds(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return (LatencyMs / 1000) + (bytes * 8.0 / (Gbps * 1e9));
    }
}

/// <summary>
/// The devices a model is served on, the hosts they are in and the links between the hosts, as a cluster file
/// describes them (<see cref="Load"/>).
/// </summary>
/// <remarks>
/// <para>A cluster file:</para>
/// <code>
/// {
///   "devices": [
///     { "kind": "V100-32G", "count": 1, "host": "a" },
///     { "kind": "T4", "count": 3, "host": "b" },
///     { "kind": "CPU", "host": "a", "memoryGiB": 64, "threads": 16, "name": "cpu-a" }
///   ],
///   "links": [ { "hosts": ["a", "b"], "gbps": 10, "latencyMs": 0.2 } ],
///   "coordinator": "a"
/// }
/// </code>
/// <para>
/// Per device: <c>kind</c> (from <see cref="DeviceCatalog"/>), <c>count</c> (default 1), <c>host</c> (default
/// <c>local</c>), and optionally <c>name</c> (default kind-index, such as <c>T4-0</c>; with a count above 1 the
/// name gets the index appended), <c>memoryGiB</c>, <c>endpoint</c> (host:port of a running stage server; count 1),
/// <c>threads</c> (CPU only) and <c>profile</c> (<see cref="DeviceProfile"/>, written by <c>llmpq profile</c>). Instead of
/// profiles in the device entries, <c>"profiles": "FILE"</c> names a JSON file (relative to the cluster file) of
/// <c>{ "device name": profile }</c>. Hosts with no link between them get
/// <see cref="LinkSpec.NetworkGbps"/> and <see cref="LinkSpec.NetworkLatencyMs"/>; transfers within a host
/// <see cref="LinkSpec.SameHostGbps"/> and <see cref="LinkSpec.SameHostLatencyMs"/>, unless a link names the host
/// twice. The coordinator is the host of the process that holds the llama.cpp context (by default the first device's).
/// </para>
/// </remarks>
public sealed record ClusterSpec
{
    private const string DefaultHost = "local";

    private static readonly JsonSerializerOptions s_fileOptions = new(PlanningJson.Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Gets the devices, one entry per device, in the order the file lists them.</summary>
    public required IReadOnlyList<DeviceSpec> Devices { get; init; }

    /// <summary>Gets the links the file gives; other pairs of hosts get the defaults.</summary>
    public IReadOnlyList<LinkSpec> Links { get; init; } = [];

    /// <summary>Gets the host of the process that holds the llama.cpp context; activations between stages pass through it.</summary>
    public required string Coordinator { get; init; }

    /// <summary>
    /// Gets the measured cost of an engine iteration in the coordinator outside the layers (sampling, scheduling,
    /// streaming), written by <c>llmpq profile</c> as the file's <c>"coordinatorProfile"</c>; null when not measured
    /// (the planner then prices none).
    /// </summary>
    public CoordinatorProfile? CoordinatorProfile { get; init; }

    /// <summary>
    /// Gets whether every stage shares the coordinator's cores: every device is a CPU of this machine (no
    /// <c>endpoint</c>, its host the coordinator's), which the pipeline serves from a stage server of its own on the
    /// same cores. Then one stage's work never overlaps another's, and the planner sums the stages' times
    /// (<see cref="Optimizer.PlanningProblem.SharedCompute"/>).
    /// </summary>
    [JsonIgnore]
    public bool SharesCompute => Devices.All(d => d.IsCpu && d.Endpoint is null && d.Host == Coordinator);

    /// <summary>
    /// Gets the decode step measured through this cluster's pipeline (<see cref="CoordinatorProfile.Pipeline"/>) when
    /// the planner prices decode steps with it: the stages share the cores and it went through one stage per device.
    /// </summary>
    public PipelineStepProfile? PipelineStep => SharesCompute && CoordinatorProfile?.Pipeline is { } step && step.Stages == Devices.Count ? step : null;

    /// <summary>
    /// Gets the seconds one step of a stage on <paramref name="device"/> spends crossing ggml RPC: its input
    /// (<paramref name="bytesIn"/>) sent from the coordinator and its output (<paramref name="bytesOut"/>) read back.
    /// </summary>
    /// <param name="device">The stage's device.</param>
    /// <param name="bytesIn">The bytes the stage receives.</param>
    /// <param name="bytesOut">The bytes the coordinator reads back.</param>
    /// <returns>
    /// With a measured hop, its latency (the whole step's round trips, as <c>llmpq profile</c> measured them) plus the
    /// bytes at its bandwidth; else two transfers over the device's <see cref="Leg"/>.
    /// </returns>
    public double StageStepSeconds(DeviceSpec device, long bytesIn, long bytesOut)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfNegative(bytesIn);
        ArgumentOutOfRangeException.ThrowIfNegative(bytesOut);
        return device.Profile?.Hop is { } hop
            ? hop.ToLink(device.Host, Coordinator).Seconds(bytesIn + bytesOut)
            : Leg(device).Seconds(bytesIn) + Leg(device).Seconds(bytesOut);
    }

    /// <summary>Reads a cluster file.</summary>
    /// <param name="path">The path of the JSON file.</param>
    /// <returns>The cluster, counts expanded into devices.</returns>
    /// <exception cref="InvalidDataException">The file is not a valid cluster; the message says what to fix.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public static ClusterSpec Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            return Parse(File.ReadAllText(path), Path.GetDirectoryName(Path.GetFullPath(path)));
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }

    /// <summary>Reads a cluster from JSON text in the form of a cluster file.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The cluster, counts expanded into devices.</returns>
    /// <exception cref="InvalidDataException">The text is not a valid cluster; the message says what to fix.</exception>
    public static ClusterSpec Parse(string json) => Parse(json, directory: null);

    private static ClusterSpec Parse(string json, string? directory)
    {
        ArgumentNullException.ThrowIfNull(json);
        FileCluster file;
        try
        {
            file = JsonSerializer.Deserialize<FileCluster>(json, s_fileOptions) ?? throw Invalid("the cluster is null; write an object with \"devices\"");
        }
        catch (JsonException ex)
        {
            throw Invalid($"not a cluster file: {ex.Message}", ex);
        }

        if (file.Devices is not { Count: > 0 })
        {
            throw Invalid("\"devices\" is missing or empty; list at least one device, e.g. {\"kind\": \"T4\", \"count\": 1, \"host\": \"a\"}");
        }

        var devices = new List<DeviceSpec>();
        var perKind = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < file.Devices.Count; i++)
        {
            devices.AddRange(Expand(file.Devices[i] ?? throw Invalid($"devices[{i}] is null"), $"devices[{i}]", perKind));
        }

        if (file.Profiles is { } profilesFile)
        {
            devices = AttachProfiles(devices, ProfileFilePath(profilesFile, directory));
        }

        var duplicate = devices.GroupBy(d => d.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw Invalid($"the device name '{duplicate.Key}' is used {duplicate.Count()} times; give each device a unique \"name\"");
        }

        string coordinator = file.Coordinator ?? devices[0].Host;
        if (string.IsNullOrWhiteSpace(coordinator))
        {
            throw Invalid("\"coordinator\" is empty; name the host that runs llmpq serve");
        }

        var hosts = devices.Select(d => d.Host).Append(coordinator).ToHashSet(StringComparer.Ordinal);
        var links = new List<LinkSpec>();
        for (int i = 0; i < (file.Links?.Count ?? 0); i++)
        {
            links.Add(CheckLink(file.Links![i] ?? throw Invalid($"links[{i}] is null"), $"links[{i}]", hosts, links));
        }

        if (file.CoordinatorProfile is { } step
            && !(double.IsFinite(step.FixedMs) && step.FixedMs >= 0 && double.IsFinite(step.PerSequenceMs) && step.PerSequenceMs >= 0))
        {
            throw Invalid("coordinatorProfile: fixedMs and perSequenceMs are milliseconds, finite and not negative; rerun llmpq profile, or remove it");
        }

        if (file.CoordinatorProfile?.Pipeline is { } pipeline
            && !(pipeline.Stages >= 1 && double.IsFinite(pipeline.FixedMs) && pipeline.FixedMs >= 0 && double.IsFinite(pipeline.PerSequenceMs) && pipeline.PerSequenceMs >= 0))
        {
            throw Invalid("coordinatorProfile.pipeline: stages is at least 1, fixedMs and perSequenceMs are milliseconds, finite and not negative; rerun llmpq profile, or remove it");
        }

        return new ClusterSpec { Devices = devices, Links = links, Coordinator = coordinator, CoordinatorProfile = file.CoordinatorProfile };
    }

    /// <summary>Gets the link between two hosts: the file's, or the default (the same-host one when both are the same).</summary>
    /// <param name="hostA">One host.</param>
    /// <param name="hostB">The other host.</param>
    /// <returns>The link.</returns>
    public LinkSpec Link(string hostA, string hostB)
    {
        ArgumentNullException.ThrowIfNull(hostA);
        ArgumentNullException.ThrowIfNull(hostB);
        return Links.FirstOrDefault(l => Joins(l, hostA, hostB))
            ?? (hostA == hostB
                ? new LinkSpec([hostA, hostB], LinkSpec.SameHostGbps, LinkSpec.SameHostLatencyMs)
                : new LinkSpec([hostA, hostB], LinkSpec.NetworkGbps, LinkSpec.NetworkLatencyMs));
    }

    /// <summary>Gets the seconds to move <paramref name="bytes"/> of activations from one stage's device to the next one's.</summary>
    /// <param name="from">The device of the sending stage.</param>
    /// <param name="to">The device of the receiving stage.</param>
    /// <param name="bytes">The bytes (see <see cref="ModelSpec.ActivationBytes"/>).</param>
    /// <returns>
    /// 0 on one device; otherwise the α-β time of the hop from <paramref name="from"/>'s host to the
    /// <see cref="Coordinator"/> plus the hop from there to <paramref name="to"/>'s host: ggml's RPC backend copies
    /// tensors between two servers through the client that holds the context.
    /// </returns>
    public double TransferSeconds(DeviceSpec from, DeviceSpec to, long bytes)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        return from.Name == to.Name ? 0 : Leg(from).Seconds(bytes) + Leg(to).Seconds(bytes);
    }

    /// <summary>
    /// Gets the link between a device and the coordinator: the hop <c>llmpq profile</c> measured for it through ggml
    /// RPC when its profile has one, else the link between its host and the coordinator's.
    /// </summary>
    /// <param name="device">The device.</param>
    /// <returns>The link.</returns>
    public LinkSpec Leg(DeviceSpec device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.Profile?.Hop?.ToLink(device.Host, Coordinator) ?? Link(device.Host, Coordinator);
    }

    /// <summary>
    /// Refuses profiles measured on a model of another shape than <paramref name="model"/>'s: their layer times are
    /// for other layers (profiles written by hand, with no shape, are accepted).
    /// </summary>
    /// <param name="model">The model about to be planned.</param>
    /// <exception cref="InvalidDataException">A device's profile was measured for another shape; the message says to rerun <c>llmpq profile</c>.</exception>
    public void CheckProfiles(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string shape = Planner.ShapeFingerprint(model);
        string[] other = [.. Devices.Where(d => d.Profile?.ModelShape is { } s && s != shape).Select(d => $"{d.Name} (shape {d.Profile!.ModelShape}{(d.Profile.Model is { } m ? ", " + m : string.Empty)})")];
        if (other.Length > 0)
        {
            throw new InvalidDataException(
                $"cluster: the profile of {string.Join(", ", other)} was measured on a model of another shape than {model.Name} (shape {shape}); its layer times do not apply. Rerun llmpq profile --model <this model> --cluster <this cluster file> to measure this shape.");
        }
    }

    /// <summary>
    /// Writes profiles into a cluster file's text, keeping everything else: into each device's entry, or, when the
    /// file names a <c>"profiles"</c> file, not at all (see <see cref="WriteProfileFile"/>).
    /// </summary>
    /// <param name="json">The cluster file's text.</param>
    /// <param name="profiles">The profiles by device name; an entry of several devices gets the profile of any of them.</param>
    /// <returns>The new text.</returns>
    /// <exception cref="InvalidDataException">The text is not a valid cluster, or names no such device.</exception>
    public static string WithProfiles(string json, IReadOnlyDictionary<string, DeviceProfile> profiles)
    {
        ArgumentNullException.ThrowIfNull(profiles);
        ClusterSpec cluster = Parse(json);
        JsonObject root = ParseObject(json);
        JsonArray entries = root["devices"]!.AsArray();
        int next = 0;
        var written = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (JsonNode? entry in entries)
        {
            int count = entry!["count"]?.GetValue<int>() ?? 1;
            foreach (DeviceSpec device in cluster.Devices.Skip(next).Take(count))
            {
                if (profiles.TryGetValue(device.Name, out DeviceProfile? profile))
                {
                    entry.AsObject()["profile"] = JsonSerializer.SerializeToNode(profile, PlanningJson.Options);
                    written.Add(device.Name);
                }
            }

            next += count;
        }

        if (profiles.Keys.FirstOrDefault(n => !written.Contains(n)) is { } unknown)
        {
            throw Invalid($"there is no device '{unknown}'; devices: {string.Join(", ", cluster.Devices.Select(d => d.Name))}");
        }

        return root.ToJsonString(PlanningJson.Options) + Environment.NewLine;
    }

    /// <summary>Gets the profile file a cluster file names (<c>"profiles"</c>), as a full path; null when it names none.</summary>
    /// <param name="clusterPath">The cluster file.</param>
    /// <returns>The path, relative names taken from the cluster file's folder.</returns>
    public static string? ProfileFile(string clusterPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(clusterPath);
        string full = Path.GetFullPath(clusterPath);
        JsonObject root = ParseObject(File.ReadAllText(full));
        return root["profiles"]?.GetValue<string>() is { } name ? ProfileFilePath(name, Path.GetDirectoryName(full)) : null;
    }

    /// <summary>Writes the coordinator's measured iteration cost into a cluster file's text (<c>"coordinatorProfile"</c>), keeping everything else.</summary>
    /// <param name="json">The cluster file's text.</param>
    /// <param name="profile">The coordinator's profile.</param>
    /// <returns>The new text.</returns>
    public static string WithCoordinatorProfile(string json, CoordinatorProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        JsonObject root = ParseObject(json);
        root["coordinatorProfile"] = JsonSerializer.SerializeToNode(profile, PlanningJson.Options);
        return root.ToJsonString(PlanningJson.Options) + Environment.NewLine;
    }

    /// <summary>Names a profile file in a cluster file's text (<c>"profiles"</c>), keeping everything else.</summary>
    /// <param name="json">The cluster file's text.</param>
    /// <param name="profileFile">The profile file's name, relative to the cluster file.</param>
    /// <returns>The new text.</returns>
    public static string WithProfileFile(string json, string profileFile)
    {
        ArgumentException.ThrowIfNullOrEmpty(profileFile);
        JsonObject root = ParseObject(json);
        root["profiles"] = profileFile;
        return root.ToJsonString(PlanningJson.Options) + Environment.NewLine;
    }

    /// <summary>Writes profiles by device name into a profile file, keeping the entries of other devices it holds.</summary>
    /// <param name="path">The profile file; created when missing.</param>
    /// <param name="profiles">The new profiles by device name.</param>
    /// <returns>The file's new text.</returns>
    public static string WriteProfileFile(string path, IReadOnlyDictionary<string, DeviceProfile> profiles)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(profiles);
        var all = File.Exists(path) ? ReadProfileFile(path) : new Dictionary<string, DeviceProfile>(StringComparer.OrdinalIgnoreCase);
        foreach ((string name, DeviceProfile profile) in profiles)
        {
            all[name] = profile;
        }

        return JsonSerializer.Serialize(all, PlanningJson.Options) + Environment.NewLine;
    }

    private static JsonObject ParseObject(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            return JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw Invalid("the cluster is not an object; write an object with \"devices\"");
        }
        catch (JsonException ex)
        {
            throw Invalid($"not a cluster file: {ex.Message}", ex);
        }
    }

    private static string ProfileFilePath(string name, string? directory) =>
        string.IsNullOrWhiteSpace(name)
            ? throw Invalid("\"profiles\" is empty; name the profile file llmpq profile --profile-file wrote, or leave it out")
            : Path.GetFullPath(name, directory ?? Directory.GetCurrentDirectory());

    private static Dictionary<string, DeviceProfile> ReadProfileFile(string path)
    {
        try
        {
            var read = JsonSerializer.Deserialize<Dictionary<string, DeviceProfile>>(File.ReadAllText(path), s_fileOptions)
                ?? throw Invalid($"the profile file {path} is null; it holds {{ \"device name\": profile }}");
            return new Dictionary<string, DeviceProfile>(read, StringComparer.OrdinalIgnoreCase);
        }
        catch (JsonException ex)
        {
            throw Invalid($"the profile file {path} is not {{ \"device name\": profile }}: {ex.Message}", ex);
        }
    }

    private static List<DeviceSpec> AttachProfiles(List<DeviceSpec> devices, string path)
    {
        if (!File.Exists(path))
        {
            throw Invalid($"the profile file {path} the cluster names in \"profiles\" does not exist; run llmpq profile --profile-file {Path.GetFileName(path)}, or remove \"profiles\"");
        }

        Dictionary<string, DeviceProfile> profiles = ReadProfileFile(path);
        foreach ((string name, DeviceProfile profile) in profiles)
        {
            DeviceSpec device = devices.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase))
                ?? throw Invalid($"the profile file {path} has a profile for '{name}', which is no device of the cluster; devices: {string.Join(", ", devices.Select(d => d.Name))}");
            if (device.Profile is not null)
            {
                throw Invalid($"device '{device.Name}' has a profile both in its entry and in {path}; keep one");
            }

            CheckProfile(profile, $"{Path.GetFileName(path)}[{name}]");
        }

        return [.. devices.Select(d => profiles.TryGetValue(d.Name, out DeviceProfile? p) ? d with { Profile = p } : d)];
    }

    private static DeviceSpec[] Expand(FileDevice entry, string where, Dictionary<string, int> perKind)
    {
        int count = entry.Count ?? 1;
        if (count < 1)
        {
            throw Invalid($"{where}: count is {count}; it is at least 1 (leave the entry out to have none)");
        }

        if (count > 1 && entry.Endpoint is not null)
        {
            throw Invalid($"{where}: an endpoint names one stage server, which owns one device; give each device its own entry (count 1)");
        }

        if (entry.Kind is null || !DeviceCatalog.TryGet(entry.Kind, out var kind))
        {
            throw Invalid($"{where}: {(entry.Kind is null ? "\"kind\" is missing; known kinds: " + string.Join(", ", DeviceCatalog.Kinds.Select(k => k.Name)) : DeviceCatalog.UnknownKind(entry.Kind))}");
        }

        if (entry.Threads is not null && !kind.IsCpu)
        {
            throw Invalid($"{where}: threads applies to CPU devices; a {kind.Name} has none to set");
        }

        if (entry.Profile is { } profile)
        {
            CheckProfile(profile, $"{where}.profile");
        }

        var devices = new DeviceSpec[count];
        for (int i = 0; i < count; i++)
        {
            int index = perKind.GetValueOrDefault(kind.Name);
            perKind[kind.Name] = index + 1;
            string name = entry.Name is null
                ? string.Create(CultureInfo.InvariantCulture, $"{kind.Name}-{index}")
                : count == 1 ? entry.Name : string.Create(CultureInfo.InvariantCulture, $"{entry.Name}-{i}");
            try
            {
                devices[i] = new DeviceSpec
                {
                    Name = name,
                    Kind = kind.Name,
                    Host = entry.Host ?? DefaultHost,
                    MemoryGiB = entry.MemoryGiB,
                    Endpoint = entry.Endpoint,
                    Threads = entry.Threads,
                    Profile = entry.Profile,
                };
            }
            catch (ArgumentException ex)
            {
                throw Invalid($"{where}: {FirstSentence(ex.Message)}", ex);
            }
        }

        return devices;
    }

    private static void CheckProfile(DeviceProfile profile, string where)
    {
        if (profile.LayerParameters <= 0)
        {
            throw Invalid($"{where}: layerParameters is the matrix weights of the profiled layer, a positive number");
        }

        if (profile.Types is not { Count: > 0 })
        {
            throw Invalid($"{where}: \"types\" is missing or empty; give at least one measured type");
        }

        foreach (var type in profile.Types)
        {
            if (type?.Prefill is null || type.Decode is null)
            {
                throw Invalid($"{where}: each type has \"type\", \"prefill\" and \"decode\"");
            }

            if (profile.Types.Count(t => t.Type == type.Type) > 1)
            {
                throw Invalid($"{where}: type {Gguf.GgmlTypes.Name(type.Type)} is measured twice; keep one entry per type");
            }

            foreach (var fit in new[] { type.Prefill, type.Decode })
            {
                if (!(double.IsFinite(fit.Fixed) && fit.Fixed >= 0 && double.IsFinite(fit.PerToken) && fit.PerToken >= 0
                      && double.IsFinite(fit.PerTokenContext) && fit.PerTokenContext >= 0))
                {
                    throw Invalid($"{where}: the {Gguf.GgmlTypes.Name(type.Type)} times are seconds, finite and not negative");
                }
            }
        }

        if (profile.Hop is { } hop && !(double.IsFinite(hop.LatencyMs) && hop.LatencyMs >= 0 && double.IsFinite(hop.Gbps) && hop.Gbps > 0))
        {
            throw Invalid($"{where}.hop: latencyMs is milliseconds, not negative, and gbps a positive number of Gbit/s");
        }
    }

    private static LinkSpec CheckLink(FileLink entry, string where, HashSet<string> hosts, List<LinkSpec> earlier)
    {
        if (entry.Hosts is not { Count: 2 } pair || pair.Any(string.IsNullOrWhiteSpace))
        {
            throw Invalid($"{where}: \"hosts\" names two hosts, e.g. [\"a\", \"b\"] (the same one twice for transfers within a host)");
        }

        foreach (string host in pair)
        {
            if (!hosts.Contains(host))
            {
                throw Invalid($"{where}: host '{host}' has no device and is not the coordinator; hosts: {string.Join(", ", hosts.Order(StringComparer.Ordinal))}");
            }
        }

        if (entry.Gbps is not double gbps || !double.IsFinite(gbps) || gbps <= 0)
        {
            throw Invalid($"{where}: gbps is the link's bandwidth in Gbit/s, a positive number");
        }

        bool sameHost = pair[0] == pair[1];
        double latency = entry.LatencyMs ?? (sameHost ? LinkSpec.SameHostLatencyMs : LinkSpec.NetworkLatencyMs);
        if (!double.IsFinite(latency) || latency < 0)
        {
            throw Invalid($"{where}: latencyMs is milliseconds, not negative");
        }

        if (earlier.Any(l => Joins(l, pair[0], pair[1])))
        {
            throw Invalid($"{where}: hosts {pair[0]} and {pair[1]} are linked twice; keep one entry");
        }

        return new LinkSpec([pair[0], pair[1]], gbps, latency);
    }

    private static bool Joins(LinkSpec link, string a, string b) =>
        (link.Hosts[0] == a && link.Hosts[1] == b) || (link.Hosts[0] == b && link.Hosts[1] == a);

    private static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        return cut < 0 ? message : message[..cut];
    }

    private static InvalidDataException Invalid(string message, Exception? inner = null) => new($"cluster: {message}", inner);

    // The file form: a device entry is a DeviceSpec with a count; nothing is required here so the checks above
    // can say what is missing.
    private sealed record FileCluster(IReadOnlyList<FileDevice?>? Devices, IReadOnlyList<FileLink?>? Links, string? Coordinator, string? Profiles, CoordinatorProfile? CoordinatorProfile);

    private sealed record FileDevice(
        string? Kind, int? Count, string? Host, string? Name, double? MemoryGiB, string? Endpoint, int? Threads, DeviceProfile? Profile);

    private sealed record FileLink(IReadOnlyList<string>? Hosts, double? Gbps, double? LatencyMs);
}
