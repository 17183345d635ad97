namespace LlmPq.Planning.Optimizer;

/// <summary>Bounds that let the builder drop assignments no plan better than the incumbent can use.</summary>
/// <param name="Incumbent">The objective of the best plan known, or +∞.</param>
/// <param name="MaxPrefill">No stage of a better plan has more prefill compute (+∞ when unknown).</param>
/// <param name="MaxDecode">No stage of a better plan has more decode compute.</param>
/// <param name="MinMaxPrefill">No plan has a smaller prefill bottleneck.</param>
/// <param name="MinMaxDecode">No plan has a smaller decode bottleneck.</param>
/// <param name="Bounded">Whether the quality bound is enforced (Σω is then a resource, not only a cost).</param>
internal readonly record struct BuildLimits(double Incumbent, double MaxPrefill, double MaxDecode, double MinMaxPrefill, double MinMaxDecode, bool Bounded);

/// <summary>
/// Builds <see cref="StageOptions"/> by a layer-by-layer dynamic program over the stage's type assignments, keeping only
/// the Pareto front of (memory, prefill, decode, cost).
/// </summary>
/// <remarks>
/// <para>
/// Exactness: a stage's memory, prefill and decode compute are sums over its layers of per-type constants, and its cost
/// (V, or Σω under a quality bound) is a sum of per-layer terms. Extending two partial assignments of the same layers
/// by the same types adds the same amounts to both, so an assignment with no more memory, prefill, decode and cost than
/// another is at least as good in every plan that could use the other: dropping the other loses nothing. The front
/// therefore holds an optimal assignment for every use a plan can make of the stage. Memory is compared exactly (bytes
/// are integers); seconds with a relative tolerance of 1e-12.
/// </para>
/// <para>
/// Where a class's prefill (or decode) seconds are a nondecreasing affine function of a layer's bytes, the time is
/// implied by the memory among assignments of the same layers and is left out of the comparison (the roofline's
/// memory-bound decode, for one): the front is then a staircase in (memory, the other time) by cost, kept in
/// O(log n) per candidate; with both times free, a vectorized scan of the candidates kept so far answers for the
/// fronts of most layers, and a <see cref="DominanceIndex"/> (O(log² n)) for large ones. A stage's memory no longer
/// matters once it ends, so of the options of one end only those not dominated in (prefill, decode, cost) are kept.
/// </para>
/// <para>
/// Pruning, also exact: a partial assignment goes when its memory exceeds the device, when its times exceed what any
/// plan better than the incumbent allows a stage, or when a lower bound on the objective of every plan that contains
/// it (its own cost and bottleneck terms, and the least time and ω of all other layers) is above the incumbent.
/// </para>
/// </remarks>
internal sealed partial class StageOptionBuilder
{
    private const double Tolerance = 1e-12;

    private readonly SolverModel _model;
    private readonly ConfigModel _config;
    private readonly List<int> _parent = [];
    private readonly List<byte> _type = [];
    private readonly List<double> _prefill = [];
    private readonly List<double> _decode = [];
    private readonly List<double> _omega = [];
    private readonly List<double> _value = [];
    private readonly List<int> _label = [];
    private readonly List<EndRange> _ends = [];
    private readonly int[] _heads;
    private readonly double[] _headKey;
    private readonly long[] _headBytes;
    private readonly long[] _shiftBytes;
    private readonly double[] _shiftPrefill;
    private readonly double[] _shiftDecode;
    private readonly double[] _shiftOmega;
    private readonly double[] _shiftValue;

    private Label[] _candidates = new Label[64];
    private byte[] _candidateTypes = new byte[64];
    private Label[] _front = new Label[64];
    private Label[] _next = new Label[64];

    public StageOptionBuilder(SolverModel model, ConfigModel config)
    {
        _model = model;
        _config = config;
        _heads = new int[model.TypeCount];
        _headKey = new double[model.TypeCount];
        _headBytes = new long[model.TypeCount];
        _shiftBytes = new long[model.TypeCount];
        _shiftPrefill = new double[model.TypeCount];
        _shiftDecode = new double[model.TypeCount];
        _shiftOmega = new double[model.TypeCount];
        _shiftValue = new double[model.TypeCount];
    }

    /// <summary>Builds the options of the stages starting at layer <paramref name="start"/> on class <paramref name="cls"/>.</summary>
    /// <param name="start">The first layer.</param>
    /// <param name="cls">The class of devices.</param>
    /// <param name="limits">The pruning bounds.</param>
    /// <returns>The options.</returns>
    public StageOptions Build(int start, int cls, in BuildLimits limits)
    {
        _parent.Clear();
        _type.Clear();
        ClearOptions();
        int end = Grow(start, cls, limits, shared: null);
        int[] none = new int[end - start];
        Array.Fill(none, -1);
        return Finish(start, end, [.. _ends], none, Data(), [.. _parent], [.. _type]);
    }

    /// <summary>
    /// Builds the options of every start on class <paramref name="cls"/> at once, for a model whose layers all have the
    /// same ω (<see cref="SolverModel.UniformLayers"/>): the fronts of a length are then the same from every start, so
    /// one program over lengths serves all starts, which view its ranges. Only the last stage (with the last-stage
    /// extras) and, when it has first-stage costs, the stage from layer 0 differ by start.
    /// </summary>
    /// <param name="cls">The class of devices.</param>
    /// <param name="limits">The pruning bounds.</param>
    /// <param name="options">Where the options of start a go, at a × classes + cls.</param>
    public void BuildShared(int cls, in BuildLimits limits, StageOptions[] options)
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        bool firstApart = _config.First[cls] != default;
        if (firstApart)
        {
            options[cls] = Build(0, cls, limits);
        }

        _parent.Clear();
        _type.Clear();
        ClearOptions();
        var last = new EndRange[layers];
        int lengths = Grow(0, cls, limits, last);
        var data = Data();
        int[] parent = [.. _parent];
        byte[] type = [.. _type];
        for (int a = firstApart ? 1 : 0; a < layers; a++)
        {
            int ends = Math.Min(lengths, layers - a);
            var ranges = new EndRange[ends];
            int[] shared = new int[ends];
            for (int i = 0; i < ends; i++)
            {
                bool final = a + i + 1 == layers;
                ranges[i] = final ? last[a] : _ends[i];
                shared[i] = final ? -1 : i;
            }

            options[(a * classes) + cls] = Finish(a, a + ends, ranges, shared, data, parent, type);
        }
    }

    private static StageOptions Finish(int start, int end, EndRange[] ranges, int[] shared, OptionData data, int[]? parent, byte[]? type) => new(
        start,
        end,
        [.. ranges.Select(r => r.First)],
        [.. ranges.Select(r => r.Stop)],
        shared,
        [.. ranges.Select(r => r.MinPrefill)],
        [.. ranges.Select(r => r.MinDecode)],
        data,
        parent,
        type);

    private OptionData Data() => new([.. _prefill], [.. _decode], [.. _omega], [.. _value], [.. _label]);

    // The front program from layer start, one layer at a time, emitting each end's options. Shared (last given): from
    // layer 0 for every length, the options of a length in _ends (without last-stage extras) and, in last[a], those of
    // the last stage from layer a. Returns the last end explored.
    private int Grow(int start, int cls, in BuildLimits limits, EndRange[]? shared)
    {
        int layers = _model.LayerCount;
        long memory = _config.Memory[cls];
        var last = _config.Last[cls];
        bool prefillExplicit = !_config.PrefillImplied[cls];
        bool decodeExplicit = !_config.DecodeImplied[cls];
        bool thin = prefillExplicit && decodeExplicit;

        // The front starts as the empty assignment, with the first stage's extras where this is the first stage.
        var first = start == 0 && shared is null ? _config.First[cls] : default;
        int frontCount = 0;
        if (first.Bytes <= memory)
        {
            _front[0] = new Label(first.Bytes, first.PrefillSeconds, first.DecodeSeconds, 0, first.PrefillSeconds + first.DecodeSeconds, -1);
            frontCount = 1;
        }

        int end = start;
        for (int l = start; l < layers && frontCount > 0; l++)
        {
            // Extend the front by layer l at each type it allows, drop what the bounds rule out and what is dominated.
            int count = Extend(start, l, cls, frontCount, memory, limits);
            if (_next.Length < count)
            {
                Array.Resize(ref _next, Math.Max(count, _next.Length * 2));
            }

            int nextCount = Filter(count, prefillExplicit, decodeExplicit);
            (_front, _next) = (_next, _front);
            frontCount = nextCount;
            end = l + 1;

            // The stages that end here: from start, or (shared) from layer 0 and, as the last stage, from L − length.
            if (shared is null)
            {
                _ends.Add(Emit(start, end, frontCount, last, memory, limits, thin));
                continue;
            }

            if (end < layers)
            {
                _ends.Add(Emit(0, end, frontCount, last, memory, limits, thin));
            }

            shared[layers - end] = Emit(layers - end, layers, frontCount, last, memory, limits, thin);
        }

        return end;
    }

    // Puts in _candidates, in (cost, bytes) order, the front's assignments extended by layer l at each type it allows,
    // less those over the memory, over the bounds' times or quality, or whose plans' lower bound is above the
    // incumbent. Returns how many there are.
    private int Extend(int start, int l, int cls, int frontCount, long memory, in BuildLimits limits)
    {
        int[] allowed = _model.Allowed[l];
        ShiftFront(l, cls, frontCount, limits.Bounded);
        int rest = _model.LayerCount - (l + 1 - start);
        double outsideOmega = _model.MinOmegaPrefix[start] + _model.MinOmegaFrom(l + 1);
        int count = 0;

        // The front is sorted by (cost, bytes); shifting it by one type keeps that order, so a merge of the shifted
        // copies yields the candidates in order, and a candidate can only be dominated by one before it.
        while (true)
        {
            int best = -1;
            double bestKey = double.PositiveInfinity;
            long bestBytes = 0;
            foreach (int t in allowed)
            {
                double key = _headKey[t];
                if (key < bestKey || (key == bestKey && _headBytes[t] < bestBytes))
                {
                    best = t;
                    bestKey = key;
                    bestBytes = _headBytes[t];
                }
            }

            if (best < 0)
            {
                break;
            }

            ref readonly Label from = ref _front[_heads[best]++];
            Head(best, frontCount, limits.Bounded);
            var candidate = new Label(
                bestBytes,
                from.Prefill + _shiftPrefill[best],
                from.Decode + _shiftDecode[best],
                from.Omega + _shiftOmega[best],
                from.Value + _shiftValue[best],
                from.Tree);
            if (candidate.Bytes > memory
                || candidate.Prefill > limits.MaxPrefill
                || candidate.Decode > limits.MaxDecode
                || (limits.Bounded && candidate.Omega + outsideOmega > _model.MaxOmega * (1 + Tolerance))
                || LowerBound(candidate.Prefill, candidate.Decode, candidate.Omega + outsideOmega, rest, limits) > limits.Incumbent)
            {
                continue;
            }

            if (count == _candidates.Length)
            {
                Array.Resize(ref _candidates, count * 2);
                Array.Resize(ref _candidateTypes, count * 2);
            }

            _candidates[count] = candidate;
            _candidateTypes[count++] = (byte)best;
        }

        return count;
    }

    // Sets, for each type layer l allows, what that type adds to an assignment (the shift of the front's copy for it),
    // and that copy's first candidate.
    private void ShiftFront(int l, int cls, int frontCount, bool bounded)
    {
        int types = _model.TypeCount;
        foreach (int t in _model.Allowed[l])
        {
            int i = (cls * types) + t;
            double omega = _model.Omega[(l * types) + t];
            _shiftBytes[t] = _config.Bytes[i];
            _shiftPrefill[t] = _config.Prefill[i];
            _shiftDecode[t] = _config.Decode[i];
            _shiftOmega[t] = omega;
            _shiftValue[t] = _config.Prefill[i] + _config.Decode[i] + (_model.Theta * omega);
            _heads[t] = 0;
            Head(t, frontCount, bounded);
        }
    }

    /// <summary>Builds the options of uniform stages (every layer at one type): a quick incumbent's search space.</summary>
    /// <param name="start">The first layer.</param>
    /// <param name="cls">The class of devices.</param>
    /// <param name="bounded">Whether the quality bound is enforced.</param>
    /// <returns>The options.</returns>
    public StageOptions BuildUniform(int start, int cls, bool bounded)
    {
        ClearOptions();
        int layers = _model.LayerCount;
        int types = _model.TypeCount;
        long memory = _config.Memory[cls];
        var first = start == 0 ? _config.First[cls] : default;
        var last = _config.Last[cls];
        var omega = new double[types];
        var open = new bool[types];
        Array.Fill(open, true);
        int end = start;
        for (int e = start + 1; e <= layers && Array.IndexOf(open, true) >= 0; e++)
        {
            int length = e - start;
            int from = _prefill.Count;
            for (int t = 0; t < types; t++)
            {
                double w = _model.Omega[((e - 1) * types) + t];
                open[t] &= !double.IsNaN(w);
                if (!open[t])
                {
                    continue;
                }

                omega[t] += w;
                int i = (cls * types) + t;
                var extra = e == layers ? last : default;
                long bytes = first.Bytes + extra.Bytes + (length * _config.Bytes[i]);
                if (bytes > memory)
                {
                    open[t] = false;
                    continue;
                }

                if (bounded && omega[t] + _model.MinOmegaPrefix[start] + _model.MinOmegaFrom(e) > _model.MaxOmega * (1 + Tolerance))
                {
                    continue;
                }

                double prefill = first.PrefillSeconds + extra.PrefillSeconds + (length * _config.Prefill[i]);
                double decode = first.DecodeSeconds + extra.DecodeSeconds + (length * _config.Decode[i]);
                AddOption(prefill, decode, omega[t], prefill + decode + (_model.Theta * omega[t]), t);
            }

            SortByValue(from);
            _ends.Add(Range(from));
            end = e;
        }

        int[] none = new int[end - start];
        Array.Fill(none, -1);
        return Finish(start, end, [.. _ends], none, Data(), null, null);
    }

    // The key (cost, or Σω under the bound) and bytes of the next candidate from type t's copy of the front; +∞ when none.
    private void Head(int t, int frontCount, bool bounded)
    {
        int h = _heads[t];
        if (h >= frontCount)
        {
            _headKey[t] = double.PositiveInfinity;
            return;
        }

        ref readonly Label label = ref _front[h];
        _headKey[t] = bounded ? label.Omega + _shiftOmega[t] : label.Value + _shiftValue[t];
        _headBytes[t] = label.Bytes + _shiftBytes[t];
    }

    // A bound on the objective of any plan with a stage of these times and these layers' ω (plus the least ω of the
    // others): every other layer costs at least the least time of any layer anywhere, and the bottlenecks are at least
    // this stage and at least the least bottleneck of any plan.
    private double LowerBound(double prefill, double decode, double omega, int rest, in BuildLimits limits) =>
        (_model.Theta * omega) + prefill + decode + (rest * (_config.MinPrefill + _config.MinDecode))
        + (_config.PrefillWeight * Math.Max(prefill, limits.MinMaxPrefill))
        + (_config.DecodeWeight * Math.Max(decode, limits.MinMaxDecode));

    // thin: whether both times are explicit, the only case where an option can be dominated in times alone (where the
    // bytes imply a time, less of it means fewer bytes, and the front has no such pair).
    private EndRange Emit(int start, int end, int frontCount, StageCost last, long memory, in BuildLimits limits, bool thin)
    {
        int from = _prefill.Count;
        var extra = end == _model.LayerCount ? last : default;
        int rest = _model.LayerCount - (end - start);
        double outsideOmega = _model.MinOmegaPrefix[start] + _model.MinOmegaFrom(end);
        int stairs = 0;
        for (int i = 0; i < frontCount; i++)
        {
            ref readonly Label label = ref _front[i];
            double prefill = label.Prefill + extra.PrefillSeconds;
            double decode = label.Decode + extra.DecodeSeconds;
            if (label.Bytes + extra.Bytes > memory
                || prefill > limits.MaxPrefill
                || decode > limits.MaxDecode
                || LowerBound(prefill, decode, label.Omega + outsideOmega, rest, limits) > limits.Incumbent)
            {
                continue;
            }

            // A stage's bytes no longer matter once it ends: an option with no less prefill and decode than one before
            // it (no lower in cost, in front order) is never needed. Times are ≥ 0, so their bits sort as they do.
            if (thin && Staircase(ref stairs, BitConverter.DoubleToInt64Bits(prefill), decode))
            {
                continue;
            }

            AddOption(prefill, decode, label.Omega, label.Value + extra.PrefillSeconds + extra.DecodeSeconds, label.Tree);
        }

        if (limits.Bounded)
        {
            SortByValue(from);
        }

        return Range(from);
    }

    // The options added since from, with their least times.
    private EndRange Range(int from)
    {
        double prefill = double.PositiveInfinity;
        double decode = double.PositiveInfinity;
        for (int o = from; o < _prefill.Count; o++)
        {
            prefill = Math.Min(prefill, _prefill[o]);
            decode = Math.Min(decode, _decode[o]);
        }

        return new EndRange(from, _prefill.Count, prefill, decode);
    }

    private void AddOption(double prefill, double decode, double omega, double value, int label)
    {
        _prefill.Add(prefill);
        _decode.Add(decode);
        _omega.Add(omega);
        _value.Add(value);
        _label.Add(label);
    }

    private void SortByValue(int from)
    {
        int count = _value.Count - from;
        if (count < 2)
        {
            return;
        }

        var keys = _value.GetRange(from, count).ToArray();
        var order = Enumerable.Range(0, count).ToArray();
        Array.Sort(keys, order);
        Reorder(_prefill);
        Reorder(_decode);
        Reorder(_omega);
        Reorder(_value);
        Reorder(_label);

        void Reorder<T>(List<T> list)
        {
            var items = list.GetRange(from, count);
            for (int i = 0; i < count; i++)
            {
                list[from + i] = items[order[i]];
            }
        }
    }

    private void ClearOptions()
    {
        _prefill.Clear();
        _decode.Clear();
        _omega.Clear();
        _value.Clear();
        _label.Clear();
        _ends.Clear();
    }

    private readonly record struct Label(long Bytes, double Prefill, double Decode, double Omega, double Value, int Tree);

    private readonly record struct EndRange(int First, int Stop, double MinPrefill, double MinDecode);
}
