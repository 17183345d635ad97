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
internal sealed partial class CapSearch
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

    // The quality bound on Σω, with the tolerance every comparison with it allows.
    private readonly double _omegaLimit;

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
        _omegaLimit = model.MaxOmega * (1 + Tolerance);
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
        var search = new BoxSearch(this, minMaxPrefill, minMaxDecode, incumbent, complete: boxes == int.MaxValue);
        while (boxes-- > 0 && search.TryNext(out var box, out double bound))
        {
            cancellationToken.ThrowIfCancellationRequested();
            search.Resolve(box, bound, cancellationToken);
        }

        incumbent = search.Incumbent;
        return search.Best;
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

            if (omega <= _omegaLimit)
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
            var options = OptionsOf(_config.First[k] != default ? 1 : 0, k);
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
            var options = OptionsOf(start, k);
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

    // The options of the stages from layer start on class cls.
    private StageOptions OptionsOf(int start, int cls) => _options[(start * _model.ClassCount) + cls];

    private double Omega(Segment[] plan) => plan.Sum(s => OptionsOf(s.Start, s.Class).Omega[s.Option]);

    private double Value(in Penalty penalty, Segment[] plan)
    {
        double value = 0;
        foreach (var s in plan)
        {
            var options = OptionsOf(s.Start, s.Class);
            value += penalty.Value(options, s.Option, s.Prefill, s.Decode);
        }

        return value;
    }

    private Segment MakeSegment(int start, int end, int cls, int next, int option)
    {
        var options = OptionsOf(start, cls);
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
            omega += OptionsOf(s.Start, s.Class).Omega[s.Option];
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
