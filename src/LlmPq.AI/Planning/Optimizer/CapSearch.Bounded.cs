using OptionFront = System.Collections.Generic.List<(double Omega, double Value, int Option)>;

namespace LlmPq.Planning.Optimizer;

// The exact search of a box's corner under the quality bound.
internal sealed partial class CapSearch
{
    /// <summary>
    /// Under the quality bound: the least Q (with the penalty) of the plans within the caps that meet the bound and have
    /// Q below <paramref name="bar"/>, or null when there is none.
    /// </summary>
    /// <remarks>
    /// For μ ≥ 0 every plan that meets the bound has Q ≥ Q + μ·(W − Ω), so the Lagrangian program (each stage valued
    /// Q + μ·W) bounds it from below; a forward pass of that program bounds every prefix, and a suffix label whose
    /// Q + μ·W + prefix bound − μ·Ω reaches the bar is dropped. What remains is searched exactly: per state, the Pareto
    /// front of (W, Q).
    /// </remarks>
    private Evaluation? EvaluateBounded(in Penalty penalty, double bar, double multiplier, CancellationToken cancellationToken)
    {
        // The Lagrangian program bounds every plan that meets the quality bound: with none below the bar, none is.
        Fill(penalty, multiplier);
        double lagrangian = _chain.Run(max: false, cancellationToken);
        if (lagrangian - (multiplier * _model.MaxOmega) >= bar)
        {
            return null;
        }

        // The Lagrangian plan, when it meets the bound, caps the search: the answer is no worse.
        Evaluation? fallback = null;
        var plan = Chain();
        if (Omega(plan) <= _omegaLimit)
        {
            fallback = Finish(Value(penalty, plan), plan);
            bar = Math.Min(bar, fallback.Value + (Math.Abs(fallback.Value) * Tolerance));
        }

        // Bound the best prefix before every state by the same program run forwards, build the suffixes' fronts
        // from the last layer back, and take the best plan they hold.
        _chain.Prefix(_prefix);
        BuildFronts(penalty, bar, multiplier, LeastPrefix(), cancellationToken);
        return BestOfFronts() ?? fallback;
    }

    // Per layer a and class k, at a × classes + k, the least prefix cost over every multiset: the prefix bound when not
    // every device must be used (a prefix may then take any of them).
    private double[] LeastPrefix()
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        var least = new double[(layers + 1) * classes];
        least.AsSpan().Fill(double.PositiveInfinity);
        for (int a = 0; a <= layers; a++)
        {
            for (int set = 0; set < _model.MultisetCount; set++)
            {
                for (int k = 0; k < classes; k++)
                {
                    least[(a * classes) + k] = Math.Min(least[(a * classes) + k], _prefix[_model.StateIndex(a, set, k)]);
                }
            }
        }

        return least;
    }

    // Sets the front of every state (start, set, k): the Pareto front of (W, Q) of the suffixes from layer start with
    // exactly the devices of set, the first on class k, that can still beat the bar with the best prefix before them.
    private void BuildFronts(in Penalty penalty, double bar, double multiplier, double[] least, CancellationToken cancellationToken)
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        Array.Clear(_fronts);
        var shared = new OptionFront?[]?[classes * layers];
        var candidates = new List<BoundedLabel>();
        for (int start = layers - 1; start >= 0; start--)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int k = 0; k < classes; k++)
            {
                var options = OptionsOf(start, k);
                var values = Values(options, k, penalty, shared);
                foreach (int set in _model.Containing[k])
                {
                    double prefix = _model.UseAllDevices
                        ? _prefix[_model.StateIndex(start, _model.Full - set, k)]
                        : least[(start * classes) + k];
                    if (double.IsPositiveInfinity(prefix))
                    {
                        continue;
                    }

                    candidates.Clear();
                    var cut = new LabelCut(_model.MinOmegaPrefix[start], _omegaLimit, prefix, bar, multiplier, _model.MaxOmega);
                    AddLabels(start, k, set, options, values, cut, candidates);
                    _fronts[_model.StateIndex(start, set, k)] = ParetoFront(candidates);
                }
            }
        }
    }

    // Adds the suffixes from state (start, set, k) that the cut admits: a stage [start, e) at one of its options,
    // followed by a label of the front of (e, set less this device, next class), or alone when it is the last stage.
    private void AddLabels(int start, int k, int set, StageOptions options, OptionFront?[][] values, LabelCut cut, List<BoundedLabel> candidates)
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        int stages = _model.StageCountOf[set];
        int rest = set - _model.Radix[k];
        for (int e = start + 1; e <= Math.Min(options.End, layers - stages + 1); e++)
        {
            if ((e == layers) != (stages == 1))
            {
                continue;
            }

            for (int next = e == layers ? -1 : 0; next < (e == layers ? 0 : classes); next++)
            {
                var after = next < 0 ? null : _fronts[_model.StateIndex(e, rest, next)];
                if (next >= 0 && (_model.CountIn[(rest * classes) + next] == 0 || after is null))
                {
                    continue;
                }

                var row = values[e - start - 1]?[next + 1];
                if (row is null)
                {
                    continue;
                }

                foreach (var (omega, value, option) in row)
                {
                    if (after is null)
                    {
                        Add(omega, value, e, next, option, -1);
                        continue;
                    }

                    for (int j = 0; j < after.Length && omega + after[j].Omega + cut.MinOmegaBefore <= cut.Limit; j++)
                    {
                        Add(omega + after[j].Omega, value + after[j].Value, e, next, option, j);
                    }
                }
            }
        }

        void Add(double omega, double value, int end, int next, int option, int after)
        {
            if (cut.Admits(omega, value))
            {
                candidates.Add(new BoundedLabel(omega, value, end, next, option, after));
            }
        }
    }

    // The Pareto front of (W, Q) of the labels, sorted by W; null when there are none.
    private static BoundedLabel[]? ParetoFront(List<BoundedLabel> candidates)
    {
        candidates.Sort(static (x, y) => x.Omega != y.Omega ? x.Omega.CompareTo(y.Omega) : x.Value.CompareTo(y.Value));
        var front = new List<BoundedLabel>();
        foreach (var label in candidates)
        {
            if (front.Count == 0 || label.Value < front[^1].Value)
            {
                front.Add(label);
            }
        }

        return front.Count > 0 ? [.. front] : null;
    }

    // The label of least Q among the fronts of the allowed first states, and its plan traced through the labels' links;
    // null when no front holds one.
    private Evaluation? BestOfFronts()
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        double q = double.PositiveInfinity;
        (int Set, int Class, int Label) root = default;
        for (int set = 1; set < _model.MultisetCount; set++)
        {
            for (int k = 0; k < classes && (!_model.UseAllDevices || set == _model.Full); k++)
            {
                var front = _fronts[_model.StateIndex(0, set, k)];
                for (int j = 0; front is not null && j < front.Length; j++)
                {
                    if (front[j].Value < q)
                    {
                        q = front[j].Value;
                        root = (set, k, j);
                    }
                }
            }
        }

        if (double.IsPositiveInfinity(q))
        {
            return null;
        }

        var segments = new List<Segment>();
        for (int start = 0, set = root.Set, k = root.Class, j = root.Label; start < layers;)
        {
            var label = _fronts[_model.StateIndex(start, set, k)]![j];
            segments.Add(MakeSegment(start, label.End, k, label.Next, label.Option));
            (start, set, k, j) = (label.End, set - _model.Radix[k], label.Next, label.After);
        }

        return Finish(q, [.. segments]);
    }

    // Per end and per next class (index next + 1, 0 for none), the Pareto front of (W, value) of the options within
    // the caps, by value; null where none is within them.
    // Rows of ranges other starts share are kept in shared, per class and range, and reused.
    private OptionFront?[][] Values(StageOptions options, int cls, in Penalty penalty, OptionFront?[]?[] shared)
    {
        int classes = _model.ClassCount;
        var values = new OptionFront?[options.End - options.Start][];
        for (int end = options.Start + 1; end <= options.End; end++)
        {
            int i = end - options.Start - 1;
            if (options.MinPrefillFrom[i] > penalty.CapPrefill || options.MinDecodeFrom[i] > penalty.CapDecode)
            {
                values[i] = new OptionFront?[classes + 1];
                break;
            }

            int range = options.Range(end);
            int key = (cls * _model.LayerCount) + range;
            if (range >= 0 && shared[key] is { } known)
            {
                values[i] = known;
                continue;
            }

            var row = values[i] = new OptionFront?[classes + 1];
            if (range >= 0)
            {
                shared[key] = row;
            }

            if (options.MinPrefill[i] > penalty.CapPrefill || options.MinDecode[i] > penalty.CapDecode)
            {
                continue;
            }

            OptionFront? hidden = null;
            for (int next = -1; next < classes; next++)
            {
                if ((next < 0) != (end == _model.LayerCount))
                {
                    continue;
                }

                // Sends no longer than any option's times change no value: one list serves all such next classes.
                double sendPrefill = next < 0 ? 0 : _config.SendPrefill[(cls * classes) + next];
                double sendDecode = next < 0 ? 0 : _config.SendDecode[(cls * classes) + next];
                bool isHidden = sendPrefill <= options.MinPrefill[i] && sendDecode <= options.MinDecode[i];
                if (isHidden && hidden is not null)
                {
                    row[next + 1] = hidden;
                    continue;
                }

                // Options are sorted by V, which is their value when no send shows and no penalty applies.
                var list = Front(options, end, penalty, sendPrefill, sendDecode, sort: !isHidden || penalty.WeightPrefill + penalty.WeightDecode > 0);
                row[next + 1] = list;
                hidden = isHidden ? list : hidden;
            }
        }

        return values;
    }

    // The Pareto front of (W, value) of the options of one end with these sends, by value; sort: whether their values
    // may be in another order than V's.
    private static OptionFront Front(StageOptions options, int end, in Penalty penalty, double sendPrefill, double sendDecode, bool sort)
    {
        var list = new OptionFront();
        for (int o = options.First(end); o < options.Stop(end); o++)
        {
            double value = penalty.Value(options, o, sendPrefill, sendDecode);
            if (value < double.PositiveInfinity)
            {
                list.Add((options.Omega[o], value, o));
            }
        }

        if (sort)
        {
            list.Sort(static (x, y) => x.Value != y.Value ? x.Value.CompareTo(y.Value) : x.Omega.CompareTo(y.Omega));
        }

        int kept = 0;
        for (int j = 0; j < list.Count; j++)
        {
            if (kept == 0 || list[j].Omega < list[kept - 1].Omega)
            {
                list[kept++] = list[j];
            }
        }

        list.RemoveRange(kept, list.Count - kept);
        return list;
    }

    /// <summary>Which suffix labels the exact search keeps from one state.</summary>
    /// <param name="MinOmegaBefore">The least Σω of the layers before the state.</param>
    /// <param name="Limit">The quality bound on Σω, with its tolerance.</param>
    /// <param name="Prefix">A lower bound on the cost of any prefix before the state.</param>
    /// <param name="Bar">The value a plan must stay below.</param>
    /// <param name="Multiplier">μ, the Lagrangian multiplier of the prefix bound.</param>
    /// <param name="MaxOmega">Ω, the quality bound.</param>
    private readonly record struct LabelCut(double MinOmegaBefore, double Limit, double Prefix, double Bar, double Multiplier, double MaxOmega)
    {
        // A label can be on a plan that meets the bound, and its Lagrangian bound with the best prefix is below the bar.
        public bool Admits(double omega, double value) =>
            omega + MinOmegaBefore <= Limit && value + (Multiplier * omega) + Prefix - (Multiplier * MaxOmega) < Bar;
    }
}
