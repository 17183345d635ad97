namespace LlmPq.Planning.Optimizer;

internal sealed partial class CapSearch
{
    /// <summary>
    /// One run of the branch and bound over boxes of bottleneck values (see <see cref="CapSearch"/>): the queue of boxes
    /// by lower bound, the incumbent and the best plan found.
    /// </summary>
    private sealed class BoxSearch
    {
        private readonly CapSearch _search;
        private readonly double _a;
        private readonly double _b;
        private readonly double _minQ;
        private readonly bool _complete;
        private readonly PriorityQueue<Box, double> _queue = new();

        // Halves of a box share its upper corner, so the same caps come back (with the bar they were searched under).
        private readonly Dictionary<(double, double), (double Bar, Evaluation? Result)> _corners = [];

        public BoxSearch(CapSearch search, double minMaxPrefill, double minMaxDecode, double incumbent, bool complete)
        {
            _search = search;
            _a = search._config.PrefillWeight;
            _b = search._config.DecodeWeight;
            _minQ = search._model.Theta * search._model.MinOmega;
            _complete = complete;
            Incumbent = incumbent;
            var root = new Box(minMaxPrefill, double.PositiveInfinity, minMaxDecode, double.PositiveInfinity, _minQ, 0, 0);
            _queue.Enqueue(root, LowerBound(root));
        }

        /// <summary>Gets the best objective known.</summary>
        public double Incumbent { get; private set; }

        /// <summary>Gets the best plan found that beat the incumbent it started with, if any.</summary>
        public Candidate? Best { get; private set; }

        /// <summary>Takes the box of least lower bound if that bound is below the incumbent (else no box can hold a better plan).</summary>
        public bool TryNext(out Box box, out double bound) => _queue.TryDequeue(out box, out bound) && bound < Incumbent;

        /// <summary>
        /// Resolves a box: trims it to where a better plan can be, raises its bound by the penalized program, and solves
        /// its upper corner, queuing the parts of the box that corner's plan does not settle.
        /// </summary>
        public void Resolve(Box box, double bound, CancellationToken cancellationToken)
        {
            box = Trim(box);
            if (box.PrefillHigh <= box.PrefillLow || box.DecodeHigh <= box.DecodeLow)
            {
                return;
            }

            var caps = (Below(box.PrefillHigh), Below(box.DecodeHigh));
            double floors = (_a * box.PrefillLow) + (_b * box.DecodeLow);
            if (_a + _b > 0)
            {
                (double floorValue, double multiplier) = Floor(box, caps, cancellationToken);
                bound = Math.Max(bound, floorValue + floors);
                box = box with { Multiplier = multiplier };
                if (bound >= Incumbent)
                {
                    return;
                }
            }

            // Under the quality bound the exact search keeps every plan with Q below the bar, which a wide box leaves
            // high: bound wide boxes by their halves first.
            double width = (_a * (box.PrefillHigh - box.PrefillLow)) + (_b * (box.DecodeHigh - box.DecodeLow));
            if (_search._bounded && (!_complete || (double.IsFinite(width) && width > LabelWidth * Incumbent)))
            {
                Split(box with { Bound = bound }, Incumbent);
                return;
            }

            if (Corner(caps, Incumbent - floors, box.Multiplier, cancellationToken) is { } corner)
            {
                Offer(corner.Candidate);
                PushRest(box, bound, corner);
            }
        }

        // A plan better than the incumbent has (A+1)·max Tpre + (B+1)·max Tdec + θ·min Σω below it.
        private Box Trim(Box box) => box with
        {
            PrefillHigh = Math.Min(box.PrefillHigh, Ceiling((Incumbent - _minQ - ((_b + 1) * box.DecodeLow)) / (_a + 1))),
            DecodeHigh = Math.Min(box.DecodeHigh, Ceiling((Incumbent - _minQ - ((_a + 1) * box.PrefillLow)) / (_b + 1))),
        };

        // The least value of the penalized program over the box (less its floors' A·xl + B·yl), and the multiplier it
        // was found at under the quality bound; the plans it meets are offered as incumbents.
        private (double Value, double Multiplier) Floor(Box box, (double Prefill, double Decode) caps, CancellationToken cancellationToken)
        {
            var penalty = new Penalty(caps.Prefill, caps.Decode, box.PrefillLow, box.DecodeLow, _a * _search._stageShare, _b * _search._stageShare);
            double multiplier = box.Multiplier;
            if (_search._bounded)
            {
                (double value, multiplier, var found) = _search.Lagrangian(penalty, multiplier, multiplier == 0 ? FirstSteps : BoxSteps, cancellationToken);
                if (found is not null)
                {
                    Offer(found);
                }

                return (value, multiplier);
            }

            var floor = _search.EvaluateSum(penalty, cancellationToken);
            if (floor is not null)
            {
                Offer(floor.Candidate);
            }

            return (floor?.Value ?? double.PositiveInfinity, multiplier);
        }

        // The least Q under the caps if below the bar (else null), searched once per caps and bar.
        private Evaluation? Corner((double Prefill, double Decode) caps, double bar, double multiplier, CancellationToken cancellationToken)
        {
            if (!_corners.TryGetValue(caps, out var cached) || cached.Bar < bar)
            {
                cached = (bar, _search.Evaluate(caps.Prefill, caps.Decode, bar, multiplier, cancellationToken));
                _corners[caps] = cached;
            }

            return cached.Result is { } corner && corner.Value < bar ? corner : null;
        }

        // Queues the two parts of the box the corner's plan (bottlenecks p, d) does not settle: [xl, p) × [yl, yh) and
        // [p, xh) × [yl, d). A bottleneck with no weight never needs splitting: every plan in the box is then resolved
        // along it.
        private void PushRest(Box box, double bound, Evaluation corner)
        {
            double q = corner.Value;
            double p = corner.MaxPrefill;
            double d = corner.MaxDecode;
            if (_a > 0 && p > box.PrefillLow)
            {
                Push(box with { PrefillHigh = p, ParentQ = q, Bound = bound }, Incumbent);
            }

            if (_b > 0 && d > box.DecodeLow)
            {
                Push(box with { PrefillLow = _a > 0 ? Math.Max(box.PrefillLow, p) : box.PrefillLow, DecodeHigh = d, ParentQ = q, Bound = bound }, Incumbent);
            }
        }

        private void Offer(Candidate candidate)
        {
            if (candidate.Objective < Incumbent)
            {
                Incumbent = candidate.Objective;
                Best = candidate;
            }
        }

        private void Push(Box child, double bar)
        {
            // Halve the side that weighs more, so that floors (and with them lower bounds) rise geometrically instead
            // of one plan of the staircase at a time.
            if (_a * (child.PrefillHigh - child.PrefillLow) + (_b * (child.DecodeHigh - child.DecodeLow)) > SplitWidth * LowerBound(child))
            {
                Split(child, bar);
            }
            else
            {
                Enqueue(child, bar);
            }
        }

        private void Split(Box child, double bar)
        {
            double widthPrefill = _a * (child.PrefillHigh - child.PrefillLow);
            double widthDecode = _b * (child.DecodeHigh - child.DecodeLow);
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

        private void Enqueue(Box box, double bar)
        {
            double lower = LowerBound(box);
            if (lower < bar)
            {
                _queue.Enqueue(box, lower);
            }
        }

        // Every stage's times are in the sums as well as under the maxima, so Q is also at least θ·min Σω + xl + yl;
        // and a box is inside its parent, so the parent's bound holds.
        private double LowerBound(Box box) => Math.Max(
            box.Bound,
            Math.Max(box.ParentQ, _minQ + box.PrefillLow + box.DecodeLow) + (_a * box.PrefillLow) + (_b * box.DecodeLow));
    }
}
