using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Host.Profiling;
using LlmPq.Native;
using LlmPq.Planning;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq profile</c>: measures the devices of a cluster file for the planner's cost model and writes their profiles.</summary>
internal static class ProfileCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "GGUF model whose layer shape is measured.", Required = true };
        var cluster = new Option<FileInfo>("--cluster", "-c") { Description = "Cluster file (JSON) whose devices are measured.", Required = true };
        var devices = new Option<string[]>("--device") { Description = "Measure only these devices (by name; repeatable). Default: every device.", AllowMultipleArgumentsPerToken = true };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "Write the cluster file with the profiles here (default: the --cluster file itself)." };
        var profileFile = new Option<FileInfo?>("--profile-file") { Description = "Write the profiles into this file and name it in the cluster file (\"profiles\") instead of inside the device entries." };
        var batch = new Option<int>("--batch") { Description = "Global batch B the planner will plan for (sets the micro-batches measured).", DefaultValueFactory = _ => 32 };
        var prompt = new Option<int>("--prompt") { Description = "Prompt length s in tokens.", DefaultValueFactory = _ => 512 };
        var generate = new Option<int>("--generate") { Description = "Generated tokens n per sequence.", DefaultValueFactory = _ => 100 };
        var types = new Option<string[]>("--types") { Description = "Measure only these layer types (default: the planner's candidates the model's layers can take).", AllowMultipleArgumentsPerToken = true };
        var quick = new Option<bool>("--quick") { Description = "A smaller grid: fewer and shorter points, one repetition less." };
        var force = new Option<bool>("--force") { Description = "Measure again even when the cache has this device and shape." };
        var cache = new Option<DirectoryInfo?>("--cache") { Description = $"The profile cache folder (default {ProfileCache.DefaultFolder})." };
        var threads = new Option<int>("--threads") { Description = "This process's threads for the local side of a stage server's hop measurement (0: every core).", DefaultValueFactory = _ => 0 };
        var command = new Command("profile", "Measure each device of a cluster file (one layer of the model's shape at each candidate type, prefill and decode) and write the profiles the planner's cost model uses.")
        {
            model, cluster, devices, output, profileFile, batch, prompt, generate, types, quick, force, cache, threads,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(() => Task.Run(
            async () =>
            {
                string modelPath = parse.GetValue(model)!.FullName;
                if (!File.Exists(modelPath))
                {
                    throw new FileNotFoundException($"The model {modelPath} does not exist; give a GGUF model (llmpq make-model writes one).", modelPath);
                }

                string clusterPath = parse.GetValue(cluster)!.FullName;
                ClusterSpec spec = ClusterSpec.Load(clusterPath);
                ModelSpec shape = ModelSpec.FromGguf(GgufReader.Read(modelPath));
                var request = new ProfileRequest(
                    shape,
                    spec,
                    Select(spec, parse.GetValue(devices) ?? []),
                    Types(shape, parse.GetValue(types) ?? []),
                    ProfileGrid.For(spec, new Workload(parse.GetValue(batch), parse.GetValue(prompt), parse.GetValue(generate)), parse.GetValue(quick)),
                    new ProfileCache(parse.GetValue(cache)?.FullName ?? ProfileCache.DefaultFolder),
                    parse.GetValue(force),
                    parse.GetValue(threads),
                    parse.GetValue(batch));
                using ILoggerFactory loggers = Cli.CreateLoggerFactory(parse);
                (Dictionary<string, DeviceProfile> profiles, CoordinatorProfile coordinator) = await MeasureAsync(request, loggers.CreateLogger("LlmPq.Profiling"), ct).ConfigureAwait(false);
                Report(Console.Out, request, profiles);
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"coordinator (this process): {coordinator.FixedMs:F3} ms per iteration + {coordinator.PerSequenceMs:F3} ms per sequence sampled (over {coordinator.Vocabulary:N0} tokens), outside llama_decode"));
                if (coordinator.Pipeline is { } pipeline)
                {
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pipeline (the runner and {pipeline.Stages} local stage servers, sharing this machine's cores): {pipeline.FixedMs:F3} ms per decode step + {pipeline.PerSequenceMs:F3} ms per sequence, outside the layers and the head; the planner prices a decode step's hops, sampling and stream with it"));
                }
                Write(clusterPath, parse.GetValue(output)?.FullName ?? clusterPath, parse.GetValue(profileFile)?.FullName, profiles, coordinator);
                return 0;
            },
            ct)));
        return command;
    }

    private static List<DeviceSpec> Select(ClusterSpec cluster, string[] names)
    {
        List<DeviceSpec> selected = names.Length == 0 ? [.. cluster.Devices] :
        [
            .. names.SelectMany(n => n.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).Distinct(StringComparer.OrdinalIgnoreCase).Select(n =>
                cluster.Devices.FirstOrDefault(d => string.Equals(d.Name, n, StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"--device '{n}' is no device of the cluster file; its devices: {string.Join(", ", cluster.Devices.Select(d => d.Name))}.")),
        ];

        // A GPU in this process needs a GPU backend; llama.cpp would otherwise run the layers on the CPU unnoticed.
        if (selected.FirstOrDefault(d => !d.IsCpu && d.Endpoint is null) is { } gpu
            && !BackendDevice.All().Any(b => b.Type is GgmlBackendDeviceType.Gpu or GgmlBackendDeviceType.IntegratedGpu))
        {
            throw new ArgumentException($"{gpu.Name} is a {gpu.Kind}, but this llama.cpp build sees no GPU here; give it the \"endpoint\" of the stage server that owns it (llmpq stage on its machine), or profile on that machine.");
        }

        return selected;
    }

    // The planner's candidates (Planner.ProblemBuilder.Types without the indicator, which has every type).
    private static List<GgmlType> Types(ModelSpec model, string[] names)
    {
        List<GgmlType> candidates = [.. PlanTypes.Default.Where(t => model.Layers.All(l => l.CanTake(t)))];
        if (names.Length == 0)
        {
            return candidates;
        }

        var chosen = new List<GgmlType>();
        foreach (string n in names.SelectMany(n => n.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            GgmlType t = GgmlTypes.TryParse(n, out GgmlType parsed) && PlanTypes.All.Contains(parsed)
                ? parsed
                : throw new ArgumentException($"--types '{n}' is not a planner type; use some of {string.Join(", ", PlanTypes.All.Select(GgmlTypes.Name))}.");
            chosen.Add(model.Layers.All(l => l.CanTake(t)) ? t : throw new ArgumentException($"--types {GgmlTypes.Name(t)}: the layers of {model.Name} cannot take it (its rows are not whole blocks of {GgmlTypes.BlockSize(t)})."));
        }

        return [.. chosen.Distinct()];
    }

    private static async Task<(Dictionary<string, DeviceProfile> Profiles, CoordinatorProfile Coordinator)> MeasureAsync(ProfileRequest r, ILogger logger, CancellationToken ct)
    {
        string shape = Planner.ShapeFingerprint(r.Model);

        // Devices the same in everything the times depend on (kind, threads, endpoint, host) are measured once.
        var groups = r.Devices.GroupBy(d => ProfileCache.Key(d, shape, r.Types, r.Grid)).ToList();
        var found = groups.ToDictionary(g => g.Key, g => r.Force ? null : r.Cache.TryGet(g.Key));
        int total = groups.Where(g => found[g.Key] is null).Sum(g => DeviceProfiler.Steps(g.First(), r.Types.Count, r.Grid));
        string probes = Path.Combine(Path.GetTempPath(), "llmpq", $"profile-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(probes);
        var clock = Stopwatch.StartNew();
        int before = 0;
        IProgress<ProfileProgress>? status = Cli.StatusLine<ProfileProgress>(p => Line(p with { Done = before + p.Done, Total = total }, clock.Elapsed));
        try
        {
            var profiles = new Dictionary<string, DeviceProfile>(StringComparer.OrdinalIgnoreCase);
            foreach (var group in groups)
            {
                DeviceSpec device = group.First();
                if (found[group.Key] is not { } profile)
                {
                    if (device.Endpoint is null && device.Host != r.Cluster.Coordinator)
                    {
                        Console.Error.WriteLine($"llmpq: {device.Name} is on host {device.Host} with no endpoint; it is measured on this machine. Give it the endpoint of its stage server to measure it there.");
                    }

                    TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime, wall = clock.Elapsed;
                    (profile, TimeSpan serverCpu) = await MeasureAsServedAsync(r, device, probes, status, logger, ct).ConfigureAwait(false);
                    WarnIfBusy(device, Process.GetCurrentProcess().TotalProcessorTime - cpu + serverCpu, clock.Elapsed - wall);
                    before += DeviceProfiler.Steps(device, r.Types.Count, r.Grid);
                    r.Cache.Put(group.Key, profile);
                }
                else
                {
                    Console.Error.WriteLine($"llmpq: {string.Join(", ", group.Select(d => d.Name))}: measured before ({Path.Combine(r.Cache.Folder, group.Key)}.json); --force measures again");
                }

                if (Usable(device, profile) is { } usable)
                {
                    foreach (DeviceSpec d in group)
                    {
                        profiles[d.Name] = usable;
                    }
                }
            }

            status?.Report(new ProfileProgress(total - before, total - before, "coordinator"));
            CoordinatorProfile coordinator = await CoordinatorProfiler.MeasureAsync(r.Model, r.Batch, probes, r.Threads, ct).ConfigureAwait(false);
            if (r.Cluster.SharesCompute)
            {
                // Its stages share this machine's cores: the step through all of them is measured whole, its layers
                // priced by this run's profiles or, for devices not measured now, those the cluster file has.
                DeviceSpec[] devices = [.. r.Cluster.Devices.Select(d => d with { Profile = profiles.GetValueOrDefault(d.Name) ?? (d.Profile?.ModelShape == shape ? d.Profile : null) })];
                if (devices.FirstOrDefault(d => d.Profile is null) is { } missing)
                {
                    Console.Error.WriteLine($"llmpq: the decode step through the pipeline was not measured: {missing.Name} has no profile of this model; profile every device of the cluster to measure it (the planner adds up the step's parts instead).");
                }
                else
                {
                    status?.Report(new ProfileProgress(total - before, total - before, "pipeline"));
                    try
                    {
                        coordinator = coordinator with { Pipeline = await CoordinatorProfiler.MeasurePipelineAsync(r.Model, r.Cluster with { Devices = devices }, r.Batch, probes, new ProfiledCostModel(), ct).ConfigureAwait(false) };
                    }
                    catch (Exception ex) when (ex is LlamaException or LlmPqUnavailableException or InvalidOperationException or IOException)
                    {
                        // The devices' profiles stand on their own: keep them, and say what the planner does without the step.
                        Console.Error.WriteLine($"llmpq: the decode step through the pipeline could not be measured ({ex.Message}); the planner adds up the step's parts instead.");
                    }
                }
            }

            Cli.EndStatusLine();
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"llmpq: profiled in {clock.Elapsed.TotalSeconds:F1} s"));
            return (profiles, coordinator);
        }
        finally
        {
            Directory.Delete(probes, recursive: true);
        }
    }

    /// <summary>
    /// Measures a device as the pipeline reaches it: a CPU device of this machine on a stage server of its own (the
    /// hop's local side then at the device's threads, so the two differ by the RPC and this process's one-thread
    /// embedding lookup), any other as it is.
    /// </summary>
    /// <returns>The profile, and the CPU time of the stage server it started (the layers' work; zero for other devices).</returns>
    private static async Task<(DeviceProfile Profile, TimeSpan ServerCpu)> MeasureAsServedAsync(ProfileRequest r, DeviceSpec device, string probes, IProgress<ProfileProgress>? status, ILogger logger, CancellationToken ct)
    {
        if (!device.IsCpu || device.Endpoint is not null)
        {
            return (DeviceProfiler.Measure(r.Model, device, r.Types, r.Grid, probes, r.Threads, status, ct), TimeSpan.Zero);
        }

        (ChildProcess server, DeviceSpec served) = await LocalStageServer.StartAsync(device, logger, ct).ConfigureAwait(false);
        await using (server.ConfigureAwait(false))
        {
            DeviceProfile profile = DeviceProfiler.Measure(r.Model, served, r.Types, r.Grid, probes, device.Threads ?? r.Threads, status, ct);
            using Process process = Process.GetProcessById(server.Id);
            return (profile, process.TotalProcessorTime);
        }
    }

    // A fit that prices a layer at nothing (the long probe was not measured slower than the short one: noise) would
    // make the planner put every layer there; such a type is left to the roofline.
    private static DeviceProfile? Usable(DeviceSpec device, DeviceProfile profile)
    {
        static bool Zero(LayerTimeFit f) => f is { Fixed: 0, PerToken: 0, PerTokenContext: 0 };
        string[] zero = [.. profile.Types.Where(t => Zero(t.Prefill) || Zero(t.Decode)).Select(t => GgmlTypes.Name(t.Type))];
        if (zero.Length == 0)
        {
            return profile;
        }

        List<TypeProfile> kept = [.. profile.Types.Where(t => !Zero(t.Prefill) && !Zero(t.Decode))];
        Console.Error.WriteLine($"llmpq: warning: {device.Name}: the {ProbeModels.Long}-layer model was not measured slower than the {ProbeModels.Short}-layer one at {string.Join(", ", zero)} (noise); {(kept.Count == 0 ? "no profile is written for it" : "those types keep the roofline")}. Measure again on an idle machine with --force.");
        return kept.Count == 0 ? null : profile with { Types = kept };
    }

    // Timings are the device's only when it had its threads: say so when the machine gave them to other work.
    private static void WarnIfBusy(DeviceSpec device, TimeSpan cpu, TimeSpan wall)
    {
        int threads = device.Threads ?? Environment.ProcessorCount;
        double share = cpu / (wall * threads);
        if (device.Endpoint is null && device.IsCpu && share < 0.7)
        {
            Cli.EndStatusLine();
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"llmpq: warning: {device.Name} ran {threads} threads but this process got {share:P0} of that CPU time ({cpu.TotalSeconds:F0} s in {wall.TotalSeconds:F0} s): the machine is busy, so its times are inflated and noisy (see each fit's R²). Profile on an idle machine for the planner."));
        }
    }

    private static string Line(ProfileProgress p, TimeSpan elapsed)
    {
        const int Width = 24;
        double share = p.Total == 0 ? 1 : (double)p.Done / p.Total;
        int filled = (int)(share * Width);
        string left = p.Done == 0 ? "?" : string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds / p.Done * (p.Total - p.Done):F0} s");
        return string.Create(CultureInfo.InvariantCulture, $"[{new string('#', filled)}{new string('.', Width - filled)}] {share,4:P0} {p.Step,-36} about {left} left\u001b[K");
    }

    private static void Report(TextWriter w, ProfileRequest r, Dictionary<string, DeviceProfile> profiles)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(string.Create(c, $"{r.Model.Name}: shape {Planner.ShapeFingerprint(r.Model)}, a layer of {r.Model.Layers[0].MatrixParameters:N0} weights; grid: prefill {string.Join(" ", r.Grid.Prefill.Select(p => $"{p.Sequences}×{p.Tokens}"))}, decode {string.Join(" ", r.Grid.Decode.Select(d => $"{d.Batch}@{d.Context}"))}"));
        var roofline = new RooflineCostModel();
        foreach (DeviceSpec device in r.Devices.Where(d => profiles.ContainsKey(d.Name)))
        {
            DeviceProfile profile = profiles[device.Name];
            w.WriteLine();
            w.WriteLine(string.Create(c, $"{device.Name} ({device.Kind}{(device.Threads is int t ? $", {t} threads" : string.Empty)}{(device.Endpoint is { } e ? ", stage server " + e : string.Empty)})"));
            w.WriteLine(string.Create(c, $"  {"type",-6} {"prefill ms",11} {"roofline",9} {"R²",6} {"max err",8}   {"decode ms",10} {"roofline",9} {"R²",6} {"max err",8}"));
            PrefillPoint p = r.Grid.Prefill[^1];
            DecodePoint d = r.Grid.Decode.MaxBy(x => x.Batch * 1000000L + x.Context);
            foreach (TypeProfile type in profile.Types)
            {
                w.WriteLine(string.Create(c, $"  {GgmlTypes.Name(type.Type),-6} {type.Prefill.Seconds(p.Sequences * p.Tokens, (p.Tokens + 1) / 2.0) * 1000,11:F3} {roofline.PrefillSeconds(device, r.Model.Layers[0], type.Type, p.Sequences * p.Tokens, 0) * 1000,9:F3} {type.Prefill.RSquared,6:F3} {type.Prefill.MaxRelativeResidual,8:P0}   {type.Decode.Seconds(d.Batch, d.Context + 1) * 1000,10:F3} {roofline.DecodeSeconds(device, r.Model.Layers[0], type.Type, d.Batch, d.Context + 1) * 1000,9:F3} {type.Decode.RSquared,6:F3} {type.Decode.MaxRelativeResidual,8:P0}"));
            }

            w.WriteLine(string.Create(c, $"  (one layer: prefill of {p.Sequences}×{p.Tokens} tokens, decode of {d.Batch} sequences at {d.Context} tokens; the roofline is what an unprofiled device is priced at)"));
            if (profile.Hop is { } hop)
            {
                LinkSpec declared = r.Cluster.Link(device.Host, r.Cluster.Coordinator);
                w.WriteLine(string.Create(c, $"  hop to the coordinator through ggml RPC: {hop.LatencyMs:F3} ms + bytes at {hop.Gbps:G4} Gbit/s (R² {hop.RSquared:F3}); the cluster file's link {device.Host}–{r.Cluster.Coordinator} says {declared.LatencyMs:F3} ms at {declared.Gbps:G4} Gbit/s. The planner now uses the measured hop for this device."));
            }
        }
    }

    private static void Write(string clusterPath, string outPath, string? profileFile, Dictionary<string, DeviceProfile> profiles, CoordinatorProfile coordinator)
    {
        if (profiles.Count == 0)
        {
            Console.Error.WriteLine($"llmpq: no usable profile; {clusterPath} is left as it was");
            return;
        }

        // The coordinator is no device: its profile goes into the cluster file whichever file holds the devices'.
        string json = ClusterSpec.WithCoordinatorProfile(File.ReadAllText(clusterPath), coordinator);
        string? named = ClusterSpec.ProfileFile(clusterPath);
        if (profileFile is null && named is null)
        {
            AtomicFile.Write(outPath, ClusterSpec.WithProfiles(json, profiles));
            Console.Error.WriteLine($"llmpq: wrote the profiles of {string.Join(", ", profiles.Keys)} into {outPath}");
            return;
        }

        string file = profileFile ?? named!;
        AtomicFile.Write(file, ClusterSpec.WriteProfileFile(file, profiles));
        AtomicFile.Write(outPath, ClusterSpec.WithProfileFile(json, Path.GetRelativePath(Path.GetDirectoryName(Path.GetFullPath(outPath))!, file)));

        Console.Error.WriteLine($"llmpq: wrote the profiles of {string.Join(", ", profiles.Keys)} into {file}, named in {outPath}");
    }

    private sealed record ProfileRequest(ModelSpec Model, ClusterSpec Cluster, IReadOnlyList<DeviceSpec> Devices, IReadOnlyList<GgmlType> Types, ProfileGrid Grid, ProfileCache Cache, bool Force, int Threads, int Batch);
}
