namespace LlmPq.Planning.Optimizer;

/// <summary>One stage of a candidate plan: its layers, class, chosen option and per-micro-batch times.</summary>
internal readonly record struct Segment(int Start, int End, int Class, int Option, double Prefill, double Decode);

/// <summary>A plan found by <see cref="CapSearch"/>, with its objective.</summary>
internal sealed record Candidate(double Objective, Segment[] Segments);

/// <summary>
/// The exact search over one configuration's stage options, handling the two bottleneck terms of the objective by
/// branch and bound over their values.
/// </summary>
/// <remarks>
/// <para>
/// The objective is Q + A·maxTpre + B·maxTdec, where Q = Σ_j (Tpre_j + Tdec_j + θ·W_j) is a sum over stages. Capping
/// every stage's times at (x, y) turns the maxima into per-stage constraints, and the least Q under the caps,
/// Q(x, y), is a dynamic program over chains of stages (<see cref="ChainDp"/>) in which each stage takes its cheapest
/// option within the caps.
/// </para>
/// <para>
/// A box of bottleneck values [xl, xh) × [yl, yh) is resolved by solving Q at its upper corner (strict caps): the
/// plan found, with bottlenecks (p, d), is at least as good as every plan in the box whose bottlenecks are both at
/// least (p, d), since those have Q ≥ Q(xh, yh) and larger maxima. The rest of the box is [xl, p) × [yl, yh) and
/// [p, xh) × [yl, d), neither holding the plan found, so the search ends (plans are finite) with the optimum.
/// </para>
/// <para>
/// Boxes are pruned by lower bounds. For a plan in the box, max_j T_j ≥ xl and max_j T_j − xl ≥ (1/S)·Σ_j (T_j − xl)⁺
/// over its S stages, so F ≥ Q + A·xl + B·yl + (A/S)·Σ_j (Tpre_j − xl)⁺ + (B/S)·Σ_j (Tdec_j − yl)⁺: a sum over stages
/// again, whose least value under the box's caps is the same program with a penalty per stage. Its plan is also a good
/// incumbent. Boxes are halved on their heavier side as they are queued, so floors rise geometrically.
/// </para>
/// <para>
/// Under a hard bound on Σω, Q(x, y) is the least Q of the plans that also meet the bound. A box's lower bound then
/// comes from the Lagrangian program (each stage valued Q + μ·W, less μ·Ω, valid for every μ ≥ 0 and tuned per box
/// from its parent's μ); its plans that meet the bound are incumbents. Narrow boxes are then solved exactly: per
/// state, the Pareto front of (Σω, Q) of suffixes, pruned by the Lagrangian bound on the best prefix.
/// </para>
/// </remarks>
internal sealed class CapSearch
{
    private const double Tolerance = 1e-12;

    // Boxes whose weighted width is below this share of their lower bound are searched whole.
    private const double SplitWidth = 1e-4;

    // Under the quality bound, boxes wider than this share of the incumbent are halved before an exact search.
    private const double LabelWidth = 1e-2;

    // Under the quality bound, steps of the multiplier per box: a few from the parent's, more from none.
    private const int BoxSteps = 2;
    private const int FirstSteps = 24;

    private readonly SolverModel _model;
    private readonly ConfigModel _config;
    private readonly StageOptions[] _options;
    private readonly ChainDp _chain;
    private readonly bool _bounded;
    private readonly double _stageShare;
    private readonly double[] _prefix;
    private readonly BoundedLabel[]?[] _fronts;

    // Per class and shared range (see StageOptions.Range), at class × layers + range: whether any option is within the
    // caps, and the values and choices per next class, as the last fill worked them out.
    private readonly bool[] _fillActive;
    private readonly double[] _fillValue;
    private readonly int[] _fillChoice;

    public CapSearch(SolverModel model, ConfigModel config, StageOptions[] options, bool bounded)
    {
        _model = model;
        _config = config;
        _options = options;
        _bounded = bounded;
        _chain = new ChainDp(model, [.. options.Select(o => o.End)]);
        int devices = model.Members.Sum(m => m.Length);
        _stageShare = 1.0 / (model.UseAllDevices ? devices : Math.Min(devices, model.LayerCount));
        int states = (model.LayerCount + 1) * model.MultisetCount * model.ClassCount;
        _prefix = bounded ? new double[states] : [];
        _fronts = bounded ? new BoundedLabel[]?[states] : [];
        int ranges = model.ClassCount * model.LayerCount;
        _fillActive = new bool[ranges];
        _fillValue = new double[ranges * (model.ClassCount + 1)];
        _fillChoice = new int[ranges * (model.ClassCount + 1)];
    }

    /// <summary>Finds the best plan of this configuration if it beats <paramref name="incumbent"/>.</summary>
    /// <param name="minMaxPrefill">A lower bound on any plan's prefill bottleneck.</param>
    /// <param name="minMaxDecode">A lower bound on any plan's decode bottleneck.</param>
    /// <param name="incumbent">The best objective known; lowered when a better plan is found.</param>
    /// <param name="boxes">
    /// How many boxes to search at most: fewer than needed gives a good plan, not the best. Such a search under the
    /// quality bound takes only the plans its Lagrangian bounds meet, without the exact search of narrow boxes.
    /// </param>
    /// <param name="cancellationToken">Cancels the search.</param>
    /// <returns>The best plan if it beats the incumbent, else null.</returns>
    public Candidate? Run(double minMaxPrefill, double minMaxDecode, ref double incumbent, int boxes, CancellationToken cancellationToken)
    {
        double a = _config.PrefillWeight;
        double b = _config.DecodeWeight;
        double minQ = _model.Theta * _model.MinOmega;
        Candidate? best = null;
        bool complete = boxes == int.MaxValue;
        var queue = new PriorityQueue<Box, double>();

        // Halves of a box share its upper corner, so the same caps come back (with the bar they were searched under).
        var corners = new Dictionary<(double, double), (double Bar, Evaluation? Result)>();
        var root = new Box(minMaxPrefill, double.PositiveInfinity, minMaxDecode, double.PositiveInfinity, minQ, 0, 0);

        queue.Enqueue(root, LowerBound(root));
        while (boxes-- > 0 && queue.TryDequeue(out var box, out double bound) && bound < incumbent)
        {
            cancellationToken.ThrowIfCancellationRequested();

            // A plan better than the incumbent has (A+1)·max Tpre + (B+1)·max Tdec + θ·min Σω below it.
            box = box with
            {
                PrefillHigh = Math.Min(box.PrefillHigh, Ceiling((incumbent - minQ - ((b + 1) * box.DecodeLow)) / (a + 1))),
                DecodeHigh = Math.Min(box.DecodeHigh, Ceiling((incumbent - minQ - ((a + 1) * box.PrefillLow)) / (b + 1))),
            };
            if (box.PrefillHigh <= box.PrefillLow || box.DecodeHigh <= box.DecodeLow)
            {
                continue;
            }

            var caps = (Below(box.PrefillHigh), Below(box.DecodeHigh));
            double floors = (a * box.PrefillLow) + (b * box.DecodeLow);
            if (a + b > 0)
            {
                var penalty = new Penalty(caps.Item1, caps.Item2, box.PrefillLow, box.DecodeLow, a * _stageShare, b * _stageShare);
                double multiplier = box.Multiplier;
                double floorValue;
                if (_bounded)
                {
                    (floorValue, multiplier, var found) = Lagrangian(penalty, multiplier, multiplier == 0 ? FirstSteps : BoxSteps, cancellationToken);
                    if (found is not null)
                    {
                        Offer(found, ref incumbent);
                    }
                }
                else
                {
                    var floor = EvaluateSum(penalty, cancellationToken);
                    floorValue = floor?.Value ?? double.PositiveInfinity;
                    if (floor is not null)
                    {
                        Offer(floor.Candidate, ref incumbent);
                    }
                }

                bound = Math.Max(bound, floorValue + floors);
                box = box with { Multiplier = multiplier };
                if (bound >= incumbent)
                {
                    continue;
                }
            }

            // Under the quality bound the exact search keeps every plan with Q below the bar, which a wide box leaves
            // high: bound wide boxes by their halves first.
            double width = (a * (box.PrefillHigh - box.PrefillLow)) + (b * (box.DecodeHigh - box.DecodeLow));
            if (_bounded && (!complete || (double.IsFinite(width) && width > LabelWidth * incumbent)))
            {
                Split(box with { Bound = bound }, incumbent);
                continue;
            }

            double bar = incumbent - floors;
            if (!corners.TryGetValue(caps, out var cached) || cached.Bar < bar)
            {
                cached = (bar, Evaluate(caps.Item1, caps.Item2, bar, box.Multiplier, cancellationToken));
                corners[caps] = cached;
            }

            var corner = cached.Result;
            if (corner is null || corner.Value >= bar)
            {
                continue;
            }

            Offer(corner.Candidate, ref incumbent);
            double q = corner.Value;
            double p = corner.MaxPrefill;
            double d = corner.MaxDecode;

            // A bottleneck with no weight never needs splitting: every plan in the box is then resolved along it.
            if (a > 0 && p > box.PrefillLow)
            {
                Push(box with { PrefillHigh = p, ParentQ = q, Bound = bound }, incumbent);
            }

            if (b > 0 && d > box.DecodeLow)
            {
                Push(box with { PrefillLow = a > 0 ? Math.Max(box.PrefillLow, p) : box.PrefillLow, DecodeHigh = d, ParentQ = q, Bound = bound }, incumbent);
            }
        }

        return best;

        void Offer(Candidate candidate, ref double incumbent)
        {
            if (candidate.Objective < incumbent)
            {
                incumbent = candidate.Objective;
                best = candidate;
            }
        }

        void Push(Box child, double bar)
        {
            // Halve the side that weighs more, so that floors (and with them lower bounds) rise geometrically instead
            // of one plan of the staircase at a time.
            if (a * (child.PrefillHigh - child.PrefillLow) + (b * (child.DecodeHigh - child.DecodeLow)) > SplitWidth * LowerBound(child))
            {
                Split(child, bar);
            }
            else
            {
                Enqueue(child, bar);
            }
        }

        void Split(Box child, double bar)
        {
            double widthPrefill = a * (child.PrefillHigh - child.PrefillLow);
            double widthDecode = b * (child.DecodeHigh - child.DecodeLow);
            if (double.IsFinite(widthPrefill) && widthPrefill >= widthDecode && widthPrefill > 0)
            {
                double middle = (child.PrefillLow + child.PrefillHigh) / 2;
                Enqueue(child with { PrefillHigh = middle }, bar);
                Enqueue(child with { PrefillLow = middle }, bar);
            }
            else if (double.IsFinite(widthDecode) && widthDecode > 0)
            {
                double middle = (child.DecodeLow + child.DecodeHigh) / 2;
                Enqueue(child with { DecodeHigh = middle }, bar);
                Enqueue(child with { DecodeLow = middle }, bar);
            }
            else
            {
                Enqueue(child, bar);
            }
        }

        void Enqueue(Box box, double bar)
        {
            double lower = LowerBound(box);
            if (lower < bar)
            {
                queue.Enqueue(box, lower);
            }
        }

        // Every stage's times are in the sums as well as under the maxima, so Q is also at least θ·min Σω + xl + yl;
        // and a box is inside its parent, so the parent's bound holds.
        double LowerBound(Box box) => Math.Max(
            box.Bound,
            Math.Max(box.ParentQ, minQ + box.PrefillLow + box.DecodeLow) + (a * box.PrefillLow) + (b * box.DecodeLow));
    }

    // A limit a little above the exact one, so that rounding cannot cut off a plan that beats the incumbent.
    private static double Ceiling(double limit) => limit + (Math.Abs(limit) * 1e-9);

    private static double Below(double cap) => double.IsPositiveInfinity(cap) ? cap : Math.BitDecrement(cap);

    /// <summary>
    /// Gets the least Q under caps on every stage's times (among plans that meet the quality bound, and, under it,
    /// only if below <paramref name="bar"/>).
    /// </summary>
    private Evaluation? Evaluate(double capPrefill, double capDecode, double bar, double multiplier, CancellationToken cancellationToken)
    {
        var plain = new Penalty(capPrefill, capDecode, 0, 0, 0, 0);
        return _bounded ? EvaluateBounded(plain, bar, multiplier, cancellationToken) : EvaluateSum(plain, cancellationToken);
    }

    /// <summary>
    /// Under the quality bound: a lower bound on the value of every plan within the penalty's caps that meets the
    /// bound. For μ ≥ 0 such a plan has value ≥ value + μ·(W − Ω), so the least of value + μ·W (the chain program with
    /// μ·W added per stage) less μ·Ω bounds them all. Starting from <paramref name="multiplier"/>, a few steps move μ
    /// towards where the program's plan just meets the bound (where the bound is tightest).
    /// </summary>
    /// <returns>The best bound found (+∞ when no plan is within the caps), its μ, and the best plan met that meets the bound.</returns>
    private (double Bound, double Multiplier, Candidate? Feasible) Lagrangian(in Penalty penalty, double multiplier, int steps, CancellationToken cancellationToken)
    {
        Candidate? feasible = null;
        double limit = _model.MaxOmega * (1 + Tolerance);
        double bound = double.NegativeInfinity;
        double best = multiplier;
        double below = 0;
        double above = double.PositiveInfinity;
        for (int step = 0; step < steps; step++)
        {
            Fill(penalty, multiplier);
            double value = _chain.Run(max: false, cancellationToken);
            if (double.IsPositiveInfinity(value))
            {
                return (value, multiplier, null);
            }

            var plan = Chain();
            double omega = Omega(plan);
            if (value - (multiplier * _model.MaxOmega) > bound)
            {
                (bound, best) = (value - (multiplier * _model.MaxOmega), multiplier);
            }

            if (omega <= limit)
            {
                var candidate = Finish(Value(penalty, plan), plan).Candidate;
                feasible = feasible is null || candidate.Objective < feasible.Objective ? candidate : feasible;
                above = multiplier;
                if (multiplier == 0)
                {
                    break;
                }

                multiplier = below > 0 ? (below + multiplier) / 2 : multiplier / 4;
            }
            else
            {
                below = multiplier;
                multiplier = double.IsFinite(above) ? (multiplier + above) / 2
                    : multiplier > 0 ? multiplier * 4
                    : Math.Max(Math.Abs(value), 1e-300) / Math.Max(omega, 1e-300) / 16;
            }
        }

        return (bound, best, feasible);
    }

    private Evaluation? EvaluateSum(in Penalty penalty, CancellationToken cancellationToken)
    {
        Fill(penalty, 0);
        double q = _chain.Run(max: false, cancellationToken);
        return double.IsPositiveInfinity(q) ? null : Finish(q, Chain());
    }

    // The plan of the chain program's last run.
    private Segment[] Chain() => [.. _chain.Path().Select(s => MakeSegment(s.Start, s.End, s.Class, s.Next, _chain.Option[s.Index]))];

    /// <summary>Sets every stage's value to its best option's, each option valued by the penalty plus μ·W.</summary>
    private void Fill(in Penalty penalty, double multiplier)
    {
        var caps = penalty;
        if (!_model.UniformLayers)
        {
            Parallel.For(0, _model.LayerCount, start => FillStart(start, caps, multiplier));
            return;
        }

        // Starts share the ranges of their ends but the last: work those out once each, then copy them to every start.
        int classes = _model.ClassCount;
        int layers = _model.LayerCount;
        int width = classes + 1;
        Parallel.For(0, classes * layers, key =>
        {
            int k = key / layers;
            int length = (key % layers) + 1;
            var options = _options[(_config.First[k] != default ? classes : 0) + k];
            int e = options.Start + length;
            _fillActive[key] = e <= options.End && options.Range(e) >= 0 && FillEnd(options, k, e, _fillValue, _fillChoice, key * width, caps, multiplier);
        });

        for (int start = 0; start < layers; start++)
        {
            FillStart(start, caps, multiplier);
        }
    }

    private void FillStart(int start, in Penalty penalty, double multiplier)
    {
        int classes = _model.ClassCount;
        int layers = _model.LayerCount;
        int width = classes + 1;
        double[] stage = _chain.Stage;
        int[] chosen = _chain.Option;
        for (int k = 0; k < classes; k++)
        {
            var options = _options[(start * classes) + k];
            int active = start;
            for (int e = start + 1; e <= options.End; e++)
            {
                int i = e - start - 1;
                if (options.MinPrefillFrom[i] > penalty.CapPrefill || options.MinDecodeFrom[i] > penalty.CapDecode)
                {
                    break;
                }

                int row = _chain.Index(start, k, e, -1);
                int range = options.Range(e);
                if (range < 0)
                {
                    active = FillEnd(options, k, e, stage, chosen, row, penalty, multiplier) ? e : active;
                    continue;
                }

                int key = (k * layers) + range;
                Array.Copy(_fillValue, key * width, stage, row, width);
                Array.Copy(_fillChoice, key * width, chosen, row, width);
                active = _fillActive[key] ? e : active;
            }

            _chain.SetActiveEnd(start, k, active);
        }
    }

    // Sets the values of the stages from options.Start to end on class k (one per next class); whether any option is
    // within the caps.
    private bool FillEnd(StageOptions options, int k, int e, double[] stage, int[] chosen, int row, in Penalty penalty, double multiplier)
    {
        int classes = _model.ClassCount;
        int i = e - options.Start - 1;
        stage.AsSpan(row, classes + 1).Fill(double.PositiveInfinity);
        if (options.MinPrefill[i] > penalty.CapPrefill || options.MinDecode[i] > penalty.CapDecode)
        {
            return false;
        }

        int stop = options.Stop(e);
        int first = options.First(e);

        // Options are sorted by V, and a value is never below V: scan from the first within the caps until V alone
        // reaches the best value.
        while (first < stop && (options.Prefill[first] > penalty.CapPrefill || options.Decode[first] > penalty.CapDecode))
        {
            first++;
        }

        if (first == stop)
        {
            return false;
        }

        int hiddenBest = -1;
        double hiddenValue = double.PositiveInfinity;
        for (int next = e == _model.LayerCount ? -1 : 0; next < (e == _model.LayerCount ? 0 : classes); next++)
        {
            double sendPrefill = next < 0 ? 0 : _config.SendPrefill[(k * classes) + next];
            double sendDecode = next < 0 ? 0 : _config.SendDecode[(k * classes) + next];
            if (sendPrefill > penalty.CapPrefill || sendDecode > penalty.CapDecode)
            {
                continue;
            }

            // Sends no longer than any option's times change no value: the best without sends stands.
            bool hidden = sendPrefill <= options.MinPrefill[i] && sendDecode <= options.MinDecode[i];
            int best = -1;
            double value = double.PositiveInfinity;
            if (hidden && hiddenBest >= 0)
            {
                (best, value) = (hiddenBest, hiddenValue);
            }
            else
            {
                for (int o = first; o < stop && options.Value[o] < value; o++)
                {
                    double v = penalty.Value(options, o, sendPrefill, sendDecode) + (multiplier * options.Omega[o]);
                    if (v < value)
                    {
                        best = o;
                        value = v;
                    }
                }

                if (hidden)
                {
                    (hiddenBest, hiddenValue) = (best, value);
                }
            }

            stage[row + next + 1] = value;
            chosen[row + next + 1] = best;
        }

        return true;
    }

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
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        int sets = _model.MultisetCount;
        double limit = _model.MaxOmega * (1 + Tolerance);
        Fill(penalty, multiplier);
        double lagrangian = _chain.Run(max: false, cancellationToken);
        if (lagrangian - (multiplier * _model.MaxOmega) >= bar)
        {
            return null;
        }

        // The Lagrangian plan, when it meets the bound, caps the search: the answer is no worse.
        Evaluation? fallback = null;
        var plan = Chain();
        if (Omega(plan) <= limit)
        {
            fallback = Finish(Value(penalty, plan), plan);
            bar = Math.Min(bar, fallback.Value + (Math.Abs(fallback.Value) * Tolerance));
        }

        _chain.Prefix(_prefix);
        var least = new double[(layers + 1) * classes];
        least.AsSpan().Fill(double.PositiveInfinity);
        for (int a = 0; a <= layers; a++)
        {
            for (int set = 0; set < sets; set++)
            {
                for (int k = 0; k < classes; k++)
                {
                    least[(a * classes) + k] = Math.Min(least[(a * classes) + k], _prefix[(((a * sets) + set) * classes) + k]);
                }
            }
        }

        Array.Clear(_fronts);
        var shared = new List<(double Omega, double Value, int Option)>?[]?[classes * layers];
        var candidates = new List<BoundedLabel>();
        for (int start = layers - 1; start >= 0; start--)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int k = 0; k < classes; k++)
            {
                var options = _options[(start * classes) + k];
                var values = Values(options, k, penalty, shared);
                foreach (int set in _model.Containing[k])
                {
                    int stages = _model.StageCountOf[set];
                    int rest = set - _model.Radix[k];
                    double prefix = _model.UseAllDevices
                        ? _prefix[(((start * sets) + (_model.Full - set)) * classes) + k]
                        : least[(start * classes) + k];
                    if (double.IsPositiveInfinity(prefix))
                    {
                        continue;
                    }

                    candidates.Clear();
                    for (int e = start + 1; e <= Math.Min(options.End, layers - stages + 1); e++)
                    {
                        if ((e == layers) != (stages == 1))
                        {
                            continue;
                        }

                        for (int next = e == layers ? -1 : 0; next < (e == layers ? 0 : classes); next++)
                        {
                            var after = next < 0 ? null : _fronts[(((e * sets) + rest) * classes) + next];
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

                                for (int j = 0; j < after.Length && omega + after[j].Omega + _model.MinOmegaPrefix[start] <= limit; j++)
                                {
                                    Add(omega + after[j].Omega, value + after[j].Value, e, next, option, j);
                                }
                            }
                        }
                    }

                    // Keep the Pareto front of (W, Q), sorted by W.
                    candidates.Sort(static (x, y) => x.Omega != y.Omega ? x.Omega.CompareTo(y.Omega) : x.Value.CompareTo(y.Value));
                    var front = new List<BoundedLabel>();
                    foreach (var label in candidates)
                    {
                        if (front.Count == 0 || label.Value < front[^1].Value)
                        {
                            front.Add(label);
                        }
                    }

                    _fronts[(((start * sets) + set) * classes) + k] = front.Count > 0 ? [.. front] : null;

                    void Add(double omega, double value, int end, int next, int option, int after)
                    {
                        if (omega + _model.MinOmegaPrefix[start] <= limit
                            && value + (multiplier * omega) + prefix - (multiplier * _model.MaxOmega) < bar)
                        {
                            candidates.Add(new BoundedLabel(omega, value, end, next, option, after));
                        }
                    }
                }
            }
        }

        double q = double.PositiveInfinity;
        (int Set, int Class, int Label) root = default;
        for (int set = 1; set < sets; set++)
        {
            for (int k = 0; k < classes && (!_model.UseAllDevices || set == _model.Full); k++)
            {
                var front = _fronts[(set * classes) + k];
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
            return fallback;
        }

        var segments = new List<Segment>();
        for (int start = 0, set = root.Set, k = root.Class, j = root.Label; start < layers;)
        {
            var label = _fronts[(((start * sets) + set) * classes) + k]![j];
            segments.Add(MakeSegment(start, label.End, k, label.Next, label.Option));
            (start, set, k, j) = (label.End, set - _model.Radix[k], label.Next, label.After);
        }

        return Finish(q, [.. segments]);
    }

    // Per end and per next class (index next + 1, 0 for none), the Pareto front of (W, value) of the options within
    // the caps, by value; null where none is within them.
    // Rows of ranges other starts share are kept in shared, per class and range, and reused.
    private List<(double Omega, double Value, int Option)>?[][] Values(StageOptions options, int cls, in Penalty penalty, List<(double Omega, double Value, int Option)>?[]?[] shared)
    {
        int classes = _model.ClassCount;
        var values = new List<(double Omega, double Value, int Option)>?[options.End - options.Start][];
        for (int end = options.Start + 1; end <= options.End; end++)
        {
            int i = end - options.Start - 1;
            if (options.MinPrefillFrom[i] > penalty.CapPrefill || options.MinDecodeFrom[i] > penalty.CapDecode)
            {
                values[i] = new List<(double, double, int)>?[classes + 1];
                break;
            }

            int range = options.Range(end);
            int key = (cls * _model.LayerCount) + range;
            if (range >= 0 && shared[key] is { } known)
            {
                values[i] = known;
                continue;
            }

            var row = values[i] = new List<(double, double, int)>?[classes + 1];
            if (range >= 0)
            {
                shared[key] = row;
            }

            if (options.MinPrefill[i] > penalty.CapPrefill || options.MinDecode[i] > penalty.CapDecode)
            {
                continue;
            }

            List<(double, double, int)>? hidden = null;
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

                var list = new List<(double Omega, double Value, int Option)>();
                for (int o = options.First(end); o < options.Stop(end); o++)
                {
                    double value = penalty.Value(options, o, sendPrefill, sendDecode);
                    if (value < double.PositiveInfinity)
                    {
                        list.Add((options.Omega[o], value, o));
                    }
                }

                if (!isHidden || penalty.WeightPrefill + penalty.WeightDecode > 0)
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
                row[next + 1] = list;
                hidden = isHidden ? list : hidden;
            }
        }

        return values;
    }

    private double Omega(Segment[] plan) => plan.Sum(s => _options[(s.Start * _model.ClassCount) + s.Class].Omega[s.Option]);

    private double Value(in Penalty penalty, Segment[] plan)
    {
        double value = 0;
        foreach (var s in plan)
        {
            var options = _options[(s.Start * _model.ClassCount) + s.Class];
            value += penalty.Value(options, s.Option, s.Prefill, s.Decode);
        }

        return value;
    }

    private Segment MakeSegment(int start, int end, int cls, int next, int option)
    {
        var options = _options[(start * _model.ClassCount) + cls];
        double prefill = options.Prefill[option];
        double decode = options.Decode[option];
        if (next >= 0)
        {
            prefill = Math.Max(prefill, _config.SendPrefill[(cls * _model.ClassCount) + next]);
            decode = Math.Max(decode, _config.SendDecode[(cls * _model.ClassCount) + next]);
        }

        return new Segment(start, end, cls, option, prefill, decode);
    }

    private Evaluation Finish(double value, Segment[] segments)
    {
        double sum = 0;
        double omega = 0;
        double maxPrefill = 0;
        double maxDecode = 0;
        foreach (var s in segments)
        {
            sum += s.Prefill + s.Decode;
            omega += _options[(s.Start * _model.ClassCount) + s.Class].Omega[s.Option];
            maxPrefill = Math.Max(maxPrefill, s.Prefill);
            maxDecode = Math.Max(maxDecode, s.Decode);
        }

        double objective = sum + (_config.PrefillWeight * maxPrefill) + (_config.DecodeWeight * maxDecode) + (_model.Theta * omega);
        return new Evaluation(value, new Candidate(objective, segments), maxPrefill, maxDecode);
    }

    /// <summary>A stage's value under caps and floors: V, the sends it does not hide, and the penalty above the floors.</summary>
    private readonly record struct Penalty(double CapPrefill, double CapDecode, double FloorPrefill, double FloorDecode, double WeightPrefill, double WeightDecode)
    {
        public double Value(StageOptions options, int o, double sendPrefill, double sendDecode)
        {
            double prefill = Math.Max(options.Prefill[o], sendPrefill);
            double decode = Math.Max(options.Decode[o], sendDecode);
            return prefill > CapPrefill || decode > CapDecode
                ? double.PositiveInfinity
                : options.Value[o] + (prefill - options.Prefill[o]) + (decode - options.Decode[o])
                    + (WeightPrefill * Math.Max(0, prefill - FloorPrefill)) + (WeightDecode * Math.Max(0, decode - FloorDecode));
        }
    }

    /// <summary>The least value of the chain program, its plan and the plan's bottlenecks.</summary>
    private sealed record Evaluation(double Value, Candidate Candidate, double MaxPrefill, double MaxDecode);

    private readonly record struct Box(double PrefillLow, double PrefillHigh, double DecodeLow, double DecodeHigh, double ParentQ, double Bound, double Multiplier);

    private readonly record struct BoundedLabel(double Omega, double Value, int End, int Next, int Option, int After);
}
