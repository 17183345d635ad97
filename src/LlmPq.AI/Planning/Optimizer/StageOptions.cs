namespace LlmPq.Planning.Optimizer;

/// <summary>
/// The options of the stages that start at one layer on one class of devices under one configuration: for every end
/// layer, the stage's compute times (P, D, fixed first/last-stage costs included), its Σω (W) and V = P + D + θW, for
/// every non-dominated type assignment that fits the device, sorted by V.
/// </summary>
internal sealed class StageOptions
{
    private readonly int[] _offsets;
    private readonly int[]? _parent;
    private readonly byte[]? _type;

    public StageOptions(int start, int end, int[] offsets, double[] prefill, double[] decode, double[] omega, double[] value, int[] label, int[]? parent, byte[]? type)
    {
        Start = start;
        End = end;
        _offsets = offsets;
        Prefill = prefill;
        Decode = decode;
        Omega = omega;
        Value = value;
        Label = label;
        _parent = parent;
        _type = type;

        // Per end: the least times of its options, and the least from there on, so a search under caps can skip
        // ends and stop early.
        int ends = end - start;
        MinPrefill = new double[ends + 1];
        MinDecode = new double[ends + 1];
        MinPrefillFrom = new double[ends + 1];
        MinDecodeFrom = new double[ends + 1];
        MinPrefill.AsSpan().Fill(double.PositiveInfinity);
        MinDecode.AsSpan().Fill(double.PositiveInfinity);
        MinPrefillFrom[ends] = double.PositiveInfinity;
        MinDecodeFrom[ends] = double.PositiveInfinity;
        for (int i = ends - 1; i >= 0; i--)
        {
            for (int o = offsets[i]; o < offsets[i + 1]; o++)
            {
                MinPrefill[i] = Math.Min(MinPrefill[i], prefill[o]);
                MinDecode[i] = Math.Min(MinDecode[i], decode[o]);
            }

            MinPrefillFrom[i] = Math.Min(MinPrefillFrom[i + 1], MinPrefill[i]);
            MinDecodeFrom[i] = Math.Min(MinDecodeFrom[i + 1], MinDecode[i]);
        }
    }

    public int Start { get; }

    /// <summary>Gets the last end layer (exclusive) that has been explored; no stage from <see cref="Start"/> reaches past it.</summary>
    public int End { get; }

    public double[] Prefill { get; }

    public double[] Decode { get; }

    public double[] Omega { get; }

    public double[] Value { get; }

    /// <summary>Gets, per option, its label in the assignment tree, or its type when the set is uniform (no tree).</summary>
    public int[] Label { get; }

    /// <summary>Gets the least prefill of the options per end, at end − Start − 1.</summary>
    public double[] MinPrefill { get; }

    /// <summary>Gets the least decode of the options per end, at end − Start − 1.</summary>
    public double[] MinDecode { get; }

    /// <summary>Gets the least prefill of the options at this end or any later one, at end − Start − 1.</summary>
    public double[] MinPrefillFrom { get; }

    /// <summary>Gets the least decode of the options at this end or any later one, at end − Start − 1.</summary>
    public double[] MinDecodeFrom { get; }

    /// <summary>Gets the first option of the stages that end at <paramref name="end"/>.</summary>
    /// <param name="end">An end in (Start, End].</param>
    /// <returns>The index of the first option.</returns>
    public int First(int end) => _offsets[end - Start - 1];

    /// <summary>Gets one past the last option of the stages that end at <paramref name="end"/>.</summary>
    /// <param name="end">An end in (Start, End].</param>
    /// <returns>The index after the last option.</returns>
    public int Stop(int end) => _offsets[end - Start];

    /// <summary>Gets the type of every layer of an option's stage.</summary>
    /// <param name="option">The option's index.</param>
    /// <param name="end">Its end layer.</param>
    /// <returns>The types, in layer order.</returns>
    public int[] Types(int option, int end)
    {
        var types = new int[end - Start];
        if (_parent is null)
        {
            Array.Fill(types, Label[option]);
            return types;
        }

        for (int label = Label[option], l = types.Length - 1; label >= 0; label = _parent[label], l--)
        {
            types[l] = _type![label];
        }

        return types;
    }
}

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
/// O(log n) per candidate; with both times free, a <see cref="DominanceIndex"/> answers in O(log² n).
/// </para>
/// <para>
/// Pruning, also exact: a partial assignment goes when its memory exceeds the device, when its times exceed what any
/// plan better than the incumbent allows a stage, or when a lower bound on the objective of every plan that contains
/// it (its own cost and bottleneck terms, and the least time and ω of all other layers) is above the incumbent.
/// </para>
/// </remarks>
internal sealed class StageOptionBuilder
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
    private readonly List<int> _offsets = [];
    private readonly int[] _heads;
    private readonly long[] _shiftBytes;
    private readonly double[] _shiftPrefill;
    private readonly double[] _shiftDecode;
    private readonly double[] _shiftOmega;
    private readonly double[] _shiftValue;
    private readonly DominanceIndex _index = new();
    private Label[] _candidates = new Label[64];
    private byte[] _candidateTypes = new byte[64];
    private long[] _ranks = new long[64];
    private Label[] _front = new Label[64];
    private Label[] _next = new Label[64];
    private long[] _stairBytes = new long[64];
    private double[] _stairTime = new double[64];

    public StageOptionBuilder(SolverModel model, ConfigModel config)
    {
        _model = model;
        _config = config;
        _heads = new int[model.TypeCount];
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
        int layers = _model.LayerCount;
        int types = _model.TypeCount;
        long memory = _model.Memory[cls];
        var first = start == 0 ? _config.First[cls] : default;
        var last = _config.Last[cls];
        bool prefillExplicit = !_config.PrefillImplied[cls];
        bool decodeExplicit = !_config.DecodeImplied[cls];
        int frontCount = 0;
        if (first.Bytes <= memory)
        {
            _front[0] = new Label(first.Bytes, first.PrefillSeconds, first.DecodeSeconds, 0, first.PrefillSeconds + first.DecodeSeconds, -1);
            frontCount = 1;
        }

        int end = start;
        for (int l = start; l < layers && frontCount > 0; l++)
        {
            int[] allowed = _model.Allowed[l];
            foreach (int t in allowed)
            {
                int i = (cls * types) + t;
                double omega = _model.Omega[(l * types) + t];
                _shiftBytes[t] = _config.Bytes[i];
                _shiftPrefill[t] = _config.Prefill[i];
                _shiftDecode[t] = _config.Decode[i];
                _shiftOmega[t] = omega;
                _shiftValue[t] = _config.Prefill[i] + _config.Decode[i] + (_model.Theta * omega);
                _heads[t] = 0;
            }

            int rest = layers - (l + 1 - start);
            double outsideOmega = _model.MinOmegaPrefix[start] + _model.MinOmegaFrom(l + 1);
            int count = 0;

            // The front is sorted by (cost, bytes); shifting it by one type keeps that order, so a merge of the shifted
            // copies yields the candidates in order, and a candidate can only be dominated by one before it.
            while (true)
            {
                int best = -1;
                double bestKey = 0;
                long bestBytes = 0;
                foreach (int t in allowed)
                {
                    int h = _heads[t];
                    if (h < frontCount)
                    {
                        double key = limits.Bounded ? _front[h].Omega + _shiftOmega[t] : _front[h].Value + _shiftValue[t];
                        long bytes = _front[h].Bytes + _shiftBytes[t];
                        if (best < 0 || key < bestKey || (key == bestKey && bytes < bestBytes))
                        {
                            best = t;
                            bestKey = key;
                            bestBytes = bytes;
                        }
                    }
                }

                if (best < 0)
                {
                    break;
                }

                ref readonly Label from = ref _front[_heads[best]++];
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

            if (_next.Length < count)
            {
                Array.Resize(ref _next, Math.Max(count, _next.Length * 2));
            }

            int nextCount = Filter(count, prefillExplicit, decodeExplicit);
            (_front, _next) = (_next, _front);
            frontCount = nextCount;
            end = l + 1;
            Emit(start, end, frontCount, last, memory, limits);
        }

        _offsets.Add(_prefill.Count);
        return new StageOptions(start, end, [.. _offsets], [.. _prefill], [.. _decode], [.. _omega], [.. _value], [.. _label], [.. _parent], [.. _type]);
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
        long memory = _model.Memory[cls];
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
            _offsets.Add(from);
            end = e;
        }

        _offsets.Add(_prefill.Count);
        return new StageOptions(start, end, [.. _offsets], [.. _prefill], [.. _decode], [.. _omega], [.. _value], [.. _label], null, null);
    }

    // Keeps the candidates (in cost order) that no earlier kept one dominates, as the next front; their labels in the
    // assignment tree get recorded. Which comparison is needed depends on which times the bytes imply.
    private int Filter(int count, bool prefillExplicit, bool decodeExplicit)
    {
        int kept = 0;
        int stairs = 0;
        int distinct = 0;
        long minBytes = long.MaxValue;
        if (prefillExplicit && decodeExplicit)
        {
            if (_ranks.Length < count)
            {
                Array.Resize(ref _ranks, Math.Max(count, _ranks.Length * 2));
            }

            for (int i = 0; i < count; i++)
            {
                _ranks[i] = _candidates[i].Bytes;
            }

            Array.Sort(_ranks, 0, count);
            for (int i = 0; i < count; i++)
            {
                if (distinct == 0 || _ranks[distinct - 1] != _ranks[i])
                {
                    _ranks[distinct++] = _ranks[i];
                }
            }

            _index.Reset(distinct);
        }

        for (int i = 0; i < count; i++)
        {
            ref readonly Label candidate = ref _candidates[i];
            bool dominated;
            if (prefillExplicit && decodeExplicit)
            {
                int rank = Array.BinarySearch(_ranks, 0, distinct, candidate.Bytes) + 1;
                dominated = _index.Dominated(rank, candidate.Prefill, candidate.Decode);
                if (!dominated)
                {
                    _index.Add(rank, candidate.Prefill, candidate.Decode);
                }
            }
            else if (prefillExplicit || decodeExplicit)
            {
                dominated = Staircase(ref stairs, candidate.Bytes, prefillExplicit ? candidate.Prefill : candidate.Decode);
            }
            else
            {
                dominated = candidate.Bytes >= minBytes;
                minBytes = Math.Min(minBytes, candidate.Bytes);
            }

            if (!dominated)
            {
                _parent.Add(candidate.Tree);
                _type.Add(_candidateTypes[i]);
                _next[kept++] = candidate with { Tree = _parent.Count - 1 };
            }
        }

        return kept;
    }

    // A bound on the objective of any plan with a stage of these times and these layers' ω (plus the least ω of the
    // others): every other layer costs at least the least time of any layer anywhere, and the bottlenecks are at least
    // this stage and at least the least bottleneck of any plan.
    private double LowerBound(double prefill, double decode, double omega, int rest, in BuildLimits limits) =>
        (_model.Theta * omega) + prefill + decode + (rest * (_config.MinPrefill + _config.MinDecode))
        + (_config.PrefillWeight * Math.Max(prefill, limits.MinMaxPrefill))
        + (_config.DecodeWeight * Math.Max(decode, limits.MinMaxDecode));

    private void Emit(int start, int end, int frontCount, StageCost last, long memory, in BuildLimits limits)
    {
        int from = _prefill.Count;
        _offsets.Add(from);
        var extra = end == _model.LayerCount ? last : default;
        int rest = _model.LayerCount - (end - start);
        double outsideOmega = _model.MinOmegaPrefix[start] + _model.MinOmegaFrom(end);
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

            AddOption(prefill, decode, label.Omega, label.Value + extra.PrefillSeconds + extra.DecodeSeconds, label.Tree);
        }

        if (limits.Bounded)
        {
            SortByValue(from);
        }
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
        _offsets.Clear();
    }

    // Is (bytes, time) dominated by the staircase of accepted (bytes ascending, time descending)? If not, add it.
    private bool Staircase(ref int count, long bytes, double time)
    {
        int lo = 0;
        int hi = count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_stairBytes[mid] <= bytes)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        // lo is the first step with more bytes; the one before has the least time among those with no more bytes.
        if (lo > 0 && _stairTime[lo - 1] <= time * (1 + Tolerance))
        {
            return true;
        }

        int from = lo;
        while (from > 0 && _stairBytes[from - 1] == bytes)
        {
            from--;
        }

        int to = lo;
        while (to < count && _stairTime[to] >= time)
        {
            to++;
        }

        int removed = to - from;
        if (removed == 0 && count == _stairBytes.Length)
        {
            Array.Resize(ref _stairBytes, count * 2);
            Array.Resize(ref _stairTime, count * 2);
        }

        if (removed != 1)
        {
            Array.Copy(_stairBytes, to, _stairBytes, from + 1, count - to);
            Array.Copy(_stairTime, to, _stairTime, from + 1, count - to);
        }

        _stairBytes[from] = bytes;
        _stairTime[from] = time;
        count += 1 - removed;
        return false;
    }

    private readonly record struct Label(long Bytes, double Prefill, double Decode, double Omega, double Value, int Tree);
}
