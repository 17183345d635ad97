namespace LlmPq.Planning.Optimizer;

/// <summary>
/// A <see cref="PlanningProblem"/> checked and flattened into arrays, with its devices grouped into classes of
/// interchangeable devices and the multisets of classes numbered.
/// </summary>
internal sealed class SolverModel
{
    // About 200 MB of chain states: twelve devices that are all different fit, sixteen do not.
    private const long MaxStates = 1L << 24;

    private SolverModel(PlanningProblem problem)
    {
        Problem = problem;
        LayerCount = problem.LayerCount;
        TypeCount = problem.TypeNames.Count;
        Theta = problem.Theta;
        MaxOmega = problem.MaxOmega ?? double.PositiveInfinity;
        UseAllDevices = problem.UseAllDevices;
        Omega = new double[LayerCount * TypeCount];
        Allowed = new int[LayerCount][];
        MinOmegaPrefix = new double[LayerCount + 1];
        for (int l = 0; l < LayerCount; l++)
        {
            var allowed = new List<int>();
            double min = double.PositiveInfinity;
            for (int t = 0; t < TypeCount; t++)
            {
                double? omega = problem.Omega[l][t];
                Omega[(l * TypeCount) + t] = omega ?? double.NaN;
                if (omega is double w)
                {
                    allowed.Add(t);
                    min = Math.Min(min, w);
                }
            }

            Allowed[l] = [.. allowed];
            MinOmegaPrefix[l + 1] = MinOmegaPrefix[l] + min;
        }

        UniformLayers = Enumerable.Range(1, LayerCount - 1).All(l => Omega.AsSpan(l * TypeCount, TypeCount).SequenceEqual(Omega.AsSpan(0, TypeCount)));

        // Devices i and j are interchangeable when swapping them maps the problem onto itself: same kind and memory,
        // and every send to, from and between them unchanged. Swaps that do so compose, so the relation is transitive.
        var classOf = new int[problem.Devices.Count];
        var members = new List<List<int>>();
        for (int i = 0; i < problem.Devices.Count; i++)
        {
            int found = members.FindIndex(c => Interchangeable(problem, c[0], i));
            if (found < 0)
            {
                found = members.Count;
                members.Add([]);
            }

            members[found].Add(i);
            classOf[i] = found;
        }

        ClassCount = members.Count;
        Members = [.. members.Select(c => c.ToArray())];
        Memory = [.. Members.Select(c => problem.Devices[c[0]].MemoryBytes)];

        Radix = new int[ClassCount];
        int size = 1;
        for (int k = 0; k < ClassCount; k++)
        {
            Radix[k] = size;
            size *= Members[k].Length + 1;
        }

        MultisetCount = size;
        if ((long)(LayerCount + 1) * size * ClassCount > MaxStates)
        {
            throw new ArgumentException(
                $"Invalid planning problem: the {problem.Devices.Count} devices form {ClassCount} classes of interchangeable devices, {size} sets of them; "
                + "the search keeps a state per layer, set and class, too many here. Group devices that are alike (same kind, memory and links).");
        }

        Full = Enumerable.Range(0, ClassCount).Sum(k => Members[k].Length * Radix[k]);
        CountIn = new byte[size * ClassCount];
        StageCountOf = new int[size];
        var containing = Enumerable.Range(0, ClassCount).Select(_ => new List<int>()).ToArray();
        for (int u = 0; u < size; u++)
        {
            for (int k = 0; k < ClassCount; k++)
            {
                int count = u / Radix[k] % (Members[k].Length + 1);
                CountIn[(u * ClassCount) + k] = (byte)count;
                StageCountOf[u] += count;
                if (count > 0)
                {
                    containing[k].Add(u);
                }
            }
        }

        Containing = [.. containing.Select(c => c.ToArray())];
        Configurations = [.. problem.Configurations.Select((c, i) => new ConfigModel(this, problem, c, i))];
    }

    public PlanningProblem Problem { get; }

    public int LayerCount { get; }

    public int TypeCount { get; }

    public double Theta { get; }

    public double MaxOmega { get; }

    public bool UseAllDevices { get; }

    /// <summary>Gets ω indexed [layer × types + type]; NaN where the layer cannot take the type.</summary>
    public double[] Omega { get; }

    /// <summary>Gets the types each layer can take.</summary>
    public int[][] Allowed { get; }

    /// <summary>Gets whether every layer has the same ω (and so the same types): stages of one length are then alike wherever they start.</summary>
    public bool UniformLayers { get; }

    /// <summary>Gets Σ_{l &lt; a} min_t ω[l, t] for a = 0..L.</summary>
    public double[] MinOmegaPrefix { get; }

    public int ClassCount { get; }

    /// <summary>Gets the devices of each class, ascending.</summary>
    public int[][] Members { get; }

    /// <summary>Gets each class's memory in bytes, before a configuration's reserve.</summary>
    public long[] Memory { get; }

    /// <summary>Gets the place value of each class in a multiset's number (mixed radix, digit k in 0..count_k).</summary>
    public int[] Radix { get; }

    public int MultisetCount { get; }

    /// <summary>Gets the number of the multiset of all devices.</summary>
    public int Full { get; }

    /// <summary>Gets how many devices of class k multiset u holds, at [u × classes + k].</summary>
    public byte[] CountIn { get; }

    /// <summary>Gets the number of devices (stages) in each multiset.</summary>
    public int[] StageCountOf { get; }

    /// <summary>Gets, per class, the multisets that hold at least one device of it.</summary>
    public int[][] Containing { get; }

    public ConfigModel[] Configurations { get; }

    /// <summary>Gets Σ over all layers of min_t ω: no plan has less.</summary>
    public double MinOmega => MinOmegaPrefix[LayerCount];

    /// <summary>Gets Σ_{l ≥ e} min_t ω.</summary>
    /// <param name="e">A layer index or L.</param>
    /// <returns>The sum.</returns>
    public double MinOmegaFrom(int e) => MinOmega - MinOmegaPrefix[e];

    /// <summary>
    /// Gets where the chain programs keep the state of layer <paramref name="layer"/>, multiset <paramref name="set"/>
    /// and class <paramref name="cls"/>: states are laid out by layer, then multiset, then class.
    /// </summary>
    /// <param name="layer">A layer index or L.</param>
    /// <param name="set">A multiset's number.</param>
    /// <param name="cls">A class.</param>
    /// <returns>The index, in [0, (L + 1) × multisets × classes).</returns>
    public int StateIndex(int layer, int set, int cls) => (((layer * MultisetCount) + set) * ClassCount) + cls;

    /// <summary>Checks a problem and builds its model.</summary>
    /// <param name="problem">The problem.</param>
    /// <returns>The model.</returns>
    /// <exception cref="ArgumentException">The problem is malformed; the message says where.</exception>
    public static SolverModel Create(PlanningProblem problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        Validate(problem);
        return new SolverModel(problem);
    }

    private static bool Interchangeable(PlanningProblem problem, int i, int j)
    {
        var a = problem.Devices[i];
        var b = problem.Devices[j];
        if (a.Kind != b.Kind || a.MemoryBytes != b.MemoryBytes)
        {
            return false;
        }

        foreach (var configuration in problem.Configurations)
        {
            if (!SwapInvariant(configuration.PrefillSendSeconds, i, j) || !SwapInvariant(configuration.DecodeSendSeconds, i, j))
            {
                return false;
            }
        }

        return true;
    }

    private static bool SwapInvariant(IReadOnlyList<IReadOnlyList<double>>? send, int i, int j)
    {
        if (send is null)
        {
            return true;
        }

        if (send[i][j] != send[j][i])
        {
            return false;
        }

        for (int m = 0; m < send.Count; m++)
        {
            if (m != i && m != j && (send[i][m] != send[j][m] || send[m][i] != send[m][j]))
            {
                return false;
            }
        }

        return true;
    }

    private static void Validate(PlanningProblem problem)
    {
        int types = Require(problem.TypeNames, nameof(problem.TypeNames)).Count;
        Check(types > 0 && problem.TypeNames.All(n => n is not null), "TypeNames must name at least one type.");
        var omega = Require(problem.Omega, nameof(problem.Omega));
        Check(omega.Count > 0, "Omega must have a row per layer, and there must be at least one layer.");
        for (int l = 0; l < omega.Count; l++)
        {
            Check(omega[l] is not null && omega[l].Count == types, $"Omega[{l}] must have one entry per type ({types}).");
            Check(omega[l].All(w => w is null || (double.IsFinite(w.Value) && w.Value >= 0)), $"Omega[{l}] must hold finite values ≥ 0 or null.");
            Check(omega[l].Any(w => w is not null), $"Layer {l} can take none of the types.");
        }

        var devices = Require(problem.Devices, nameof(problem.Devices));
        Check(devices.Count > 0, "There must be at least one device.");
        Check(devices.All(d => d is not null && d.Kind is not null && d.MemoryBytes >= 0), "Every device needs a kind and memory ≥ 0.");
        var configurations = Require(problem.Configurations, nameof(problem.Configurations));
        Check(configurations.Count > 0, "There must be at least one configuration.");
        for (int c = 0; c < configurations.Count; c++)
        {
            var configuration = configurations[c];
            Check(configuration is not null && configuration.PrefillMicroBatch >= 1 && configuration.DecodeMicroBatch >= 1, $"Configuration {c} needs micro-batch sizes ≥ 1.");
            Check(configuration!.Costs is not null, $"Configuration {c} has no costs.");
            Check(configuration.ReservedBytes >= 0, $"Configuration {c} needs reserved bytes ≥ 0.");
            foreach (string kind in devices.Select(d => d.Kind).Distinct())
            {
                Check(configuration.Costs!.TryGetValue(kind, out var costs) && costs is not null, $"Configuration {c} has no costs for device kind '{kind}'.");
                Check(costs!.Layer is not null && costs.Layer.Count == types, $"Configuration {c}, kind '{kind}': Layer must have one cost per type ({types}).");
                Check(costs.Layer!.Append(costs.FirstStage).Append(costs.LastStage).All(Valid), $"Configuration {c}, kind '{kind}': bytes and seconds must be finite and ≥ 0.");
            }

            CheckSend(configuration.PrefillSendSeconds, devices.Count, c, nameof(configuration.PrefillSendSeconds));
            CheckSend(configuration.DecodeSendSeconds, devices.Count, c, nameof(configuration.DecodeSendSeconds));
        }

        Check(problem.BatchSize >= 1, "BatchSize must be ≥ 1.");
        Check(double.IsFinite(problem.GeneratedTokens) && problem.GeneratedTokens >= 1, "GeneratedTokens must be finite and ≥ 1.");
        Check(double.IsFinite(problem.Theta) && problem.Theta >= 0, "Theta must be finite and ≥ 0.");
        Check(problem.MaxOmega is null || (double.IsFinite(problem.MaxOmega.Value) && problem.MaxOmega.Value >= 0), "MaxOmega must be finite and ≥ 0.");
    }

    private static bool Valid(StageCost cost) =>
        cost.Bytes >= 0 && double.IsFinite(cost.PrefillSeconds) && cost.PrefillSeconds >= 0 && double.IsFinite(cost.DecodeSeconds) && cost.DecodeSeconds >= 0;

    private static void CheckSend(IReadOnlyList<IReadOnlyList<double>>? send, int devices, int configuration, string name) =>
        Check(
            send is null || (send.Count == devices && send.All(row => row is not null && row.Count == devices && row.All(s => double.IsFinite(s) && s >= 0))),
            $"Configuration {configuration}: {name} must be a {devices} × {devices} matrix of finite seconds ≥ 0.");

    private static T Require<T>(T? value, string name)
        where T : class =>
        value ?? throw new ArgumentException($"The problem's {name} is missing.");

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException($"Invalid planning problem: {message}");
        }
    }
}

/// <summary>One configuration's costs by class of devices, flattened.</summary>
internal sealed class ConfigModel
{
    public ConfigModel(SolverModel model, PlanningProblem problem, PlanningConfiguration configuration, int index)
    {
        Index = index;
        Configuration = configuration;
        int classes = model.ClassCount;
        int types = model.TypeCount;
        PrefillWeight = problem.PrefillBottleneckWeight(configuration);
        DecodeWeight = problem.DecodeBottleneckWeight(configuration);
        Bytes = new long[classes * types];
        Prefill = new double[classes * types];
        Decode = new double[classes * types];
        First = new StageCost[classes];
        Last = new StageCost[classes];
        Memory = [.. model.Memory.Select(m => m - configuration.ReservedBytes)];
        PrefillImplied = new bool[classes];
        DecodeImplied = new bool[classes];
        MinPrefill = double.PositiveInfinity;
        MinDecode = double.PositiveInfinity;
        for (int k = 0; k < classes; k++)
        {
            var costs = configuration.Costs[problem.Devices[model.Members[k][0]].Kind];
            for (int t = 0; t < types; t++)
            {
                var layer = costs.Layer[t];
                Bytes[(k * types) + t] = layer.Bytes;
                Prefill[(k * types) + t] = layer.PrefillSeconds;
                Decode[(k * types) + t] = layer.DecodeSeconds;
                MinPrefill = Math.Min(MinPrefill, layer.PrefillSeconds);
                MinDecode = Math.Min(MinDecode, layer.DecodeSeconds);
            }

            First[k] = costs.FirstStage;
            Last[k] = costs.LastStage;
            PrefillImplied[k] = NondecreasingAffineInBytes(Bytes.AsSpan(k * types, types), Prefill.AsSpan(k * types, types));
            DecodeImplied[k] = NondecreasingAffineInBytes(Bytes.AsSpan(k * types, types), Decode.AsSpan(k * types, types));
        }

        SendPrefill = new double[classes * classes];
        SendDecode = new double[classes * classes];
        for (int k = 0; k < classes; k++)
        {
            for (int k2 = 0; k2 < classes; k2++)
            {
                // Between two classes any pair of members is alike; within a class, two distinct members.
                int from = model.Members[k][0];
                int to = k == k2 ? (model.Members[k].Length > 1 ? model.Members[k][1] : -1) : model.Members[k2][0];
                if (to >= 0)
                {
                    SendPrefill[(k * classes) + k2] = configuration.PrefillSendSeconds?[from][to] ?? 0;
                    SendDecode[(k * classes) + k2] = configuration.DecodeSendSeconds?[from][to] ?? 0;
                }
            }
        }
    }

    public int Index { get; }

    public PlanningConfiguration Configuration { get; }

    /// <summary>Gets m_p − 1, the weight of the prefill bottleneck.</summary>
    public double PrefillWeight { get; }

    /// <summary>Gets the weight of the decode bottleneck (<see cref="PlanningProblem.DecodeBottleneckWeight"/>).</summary>
    public double DecodeWeight { get; }

    /// <summary>Gets each class's memory for layers under this configuration (negative where even the reserve does not fit).</summary>
    public long[] Memory { get; }

    /// <summary>Gets one layer's bytes at [class × types + type].</summary>
    public long[] Bytes { get; }

    public double[] Prefill { get; }

    public double[] Decode { get; }

    public StageCost[] First { get; }

    public StageCost[] Last { get; }

    /// <summary>Gets the send seconds from a stage of class k to a next stage of class k2, at [k × classes + k2].</summary>
    public double[] SendPrefill { get; }

    public double[] SendDecode { get; }

    /// <summary>
    /// Gets, per class, whether a layer's prefill seconds are a nondecreasing affine function of its bytes, so that
    /// among stages of equal length less memory means no more prefill time (the roofline's compute-bound prefill with
    /// equal type factors, for one).
    /// </summary>
    public bool[] PrefillImplied { get; }

    /// <summary>Gets, per class, the same for decode seconds (the roofline's memory-bound decode).</summary>
    public bool[] DecodeImplied { get; }

    /// <summary>Gets the least prefill seconds of any layer on any class at any type.</summary>
    public double MinPrefill { get; }

    public double MinDecode { get; }

    // Relative tolerance of the affine test; a dominance it allows is off by at most this share of a stage's time.
    private const double AffineTolerance = 1e-9;

    private static bool NondecreasingAffineInBytes(ReadOnlySpan<long> bytes, ReadOnlySpan<double> seconds)
    {
        int lo = 0;
        int hi = 0;
        for (int t = 1; t < bytes.Length; t++)
        {
            lo = bytes[t] < bytes[lo] ? t : lo;
            hi = bytes[t] > bytes[hi] ? t : hi;
        }

        double slope = bytes[hi] == bytes[lo] ? 0 : (seconds[hi] - seconds[lo]) / (bytes[hi] - bytes[lo]);
        if (slope < 0)
        {
            return false;
        }

        for (int t = 0; t < bytes.Length; t++)
        {
            double expected = seconds[lo] + (slope * (bytes[t] - bytes[lo]));
            if (Math.Abs(seconds[t] - expected) > AffineTolerance * Math.Max(seconds[t], expected))
            {
                return false;
            }
        }

        return true;
    }
}
