namespace LlmPq.Planning.Optimizer;

/// <summary>
/// Best chains of stages by a dynamic program over suffixes: V(a, U, k) is the best way to cover layers [a, L) with
/// exactly the devices of multiset U (one stage each), the first stage on a device of class k. A stage's value may
/// depend on the class of the stage after it (its send), so the value of stage [a, e) on class k followed by class k2
/// is given per (a, k, e, k2), the last stage's with k2 = −1.
/// </summary>
/// <remarks>
/// Interchangeable devices are counted, not named: a suffix depends only on how many devices of each class it uses, so
/// all device orders that differ by swapping interchangeable devices share one state, and every distinct sequence of
/// classes is covered. Values combine by sum (costs) or by max (bottlenecks).
/// </remarks>
internal sealed class ChainDp
{
    private readonly SolverModel _model;
    private readonly int[] _active;
    private readonly int[] _base;
    private readonly double[] _value;
    private readonly int[] _choice;
    private int[] _cover = [];
    private int _rootSet;
    private int _rootClass;

    /// <summary>Initializes a new instance of the <see cref="ChainDp"/> class.</summary>
    /// <param name="model">The model.</param>
    /// <param name="end">The last end layer of the stages from layer a on class k, per a × classes + k; each stage value has a place up to it.</param>
    public ChainDp(SolverModel model, int[] end)
    {
        _model = model;
        _active = (int[])end.Clone();
        int classes = model.ClassCount;
        _base = new int[model.LayerCount * classes];
        int size = 0;
        for (int i = 0; i < _base.Length; i++)
        {
            _base[i] = size;
            size += (end[i] - (i / classes)) * (classes + 1);
        }

        Stage = new double[size];
        Option = new int[size];
        _value = new double[(model.LayerCount + 1) * model.MultisetCount * classes];
        _choice = new int[_value.Length];
    }

    /// <summary>Gets the stage values, at <see cref="Index"/>; +∞ where no such stage can be.</summary>
    public double[] Stage { get; }

    /// <summary>Gets, beside each stage value, the option it was taken from (for the caller's own use).</summary>
    public int[] Option { get; }

    /// <summary>Sets the last end the next <see cref="Run"/> considers from layer a on class k (at most the one given at construction).</summary>
    /// <param name="start">a.</param>
    /// <param name="cls">k.</param>
    /// <param name="end">The end; <paramref name="start"/> when no stage from there is allowed.</param>
    public void SetActiveEnd(int start, int cls, int end) => _active[(start * _model.ClassCount) + cls] = end;

    /// <summary>Gets where the value of stage [start, end) on class <paramref name="cls"/> followed by class <paramref name="next"/> is.</summary>
    /// <param name="start">The stage's first layer.</param>
    /// <param name="cls">Its class.</param>
    /// <param name="end">One past its last layer, up to the end given at construction.</param>
    /// <param name="next">The class of the next stage, or −1 for the last stage.</param>
    /// <returns>The index into <see cref="Stage"/>.</returns>
    public int Index(int start, int cls, int end, int next) =>
        _base[(start * _model.ClassCount) + cls] + ((end - start - 1) * (_model.ClassCount + 1)) + next + 1;

    /// <summary>Runs the program over the current <see cref="Stage"/> values.</summary>
    /// <param name="max">Whether chains combine by max (else by sum).</param>
    /// <param name="cancellationToken">Cancels the run.</param>
    /// <returns>The best value over all allowed device sets, or +∞ when no chain covers the layers.</returns>
    public double Run(bool max, CancellationToken cancellationToken)
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        int sets = _model.MultisetCount;

        // A state is on some full chain only if its devices can cover the layers after it and the other devices
        // those before it, each stage at most as long as its class allows; other states are skipped (+∞).
        Span<int> longest = stackalloc int[classes];
        for (int i = 0; i < _active.Length; i++)
        {
            longest[i % classes] = Math.Max(longest[i % classes], _active[i] - (i / classes));
        }

        if (_cover.Length < sets)
        {
            _cover = new int[sets];
        }

        for (int set = 0; set < sets; set++)
        {
            int cover = 0;
            for (int k = 0; k < classes; k++)
            {
                cover += _model.CountIn[(set * classes) + k] * longest[k];
            }

            _cover[set] = cover;
        }

        for (int a = layers - 1; a >= 0; a--)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int k = 0; k < classes; k++)
            {
                int end = _active[(a * classes) + k];
                int stageBase = _base[(a * classes) + k];
                foreach (int set in _model.Containing[k])
                {
                    int stages = _model.StageCountOf[set];
                    int rest = set - _model.Radix[k];
                    double best = double.PositiveInfinity;
                    int choice = -1;
                    int before = _model.Full - set;
                    bool onChain = _cover[set] >= layers - a
                        && a <= _cover[before]
                        && (!_model.UseAllDevices || a >= _model.StageCountOf[before]);
                    int lastEnd = onChain ? Math.Min(end, layers - stages + 1) : a;
                    for (int e = a + 1; e <= lastEnd; e++)
                    {
                        int row = stageBase + ((e - a - 1) * (classes + 1));
                        if (e == layers)
                        {
                            // Only a single stage can end at the last layer with nothing after it.
                            if (stages == 1 && Stage[row] < best)
                            {
                                best = Stage[row];
                                choice = e * (classes + 1);
                            }

                            continue;
                        }

                        int after = _model.StateIndex(e, rest, 0);
                        for (int k2 = 0; k2 < classes; k2++)
                        {
                            double stage = Stage[row + k2 + 1];
                            if (_model.CountIn[(rest * classes) + k2] == 0 || stage == double.PositiveInfinity)
                            {
                                continue;
                            }

                            double value = max ? Math.Max(stage, _value[after + k2]) : stage + _value[after + k2];
                            if (value < best)
                            {
                                best = value;
                                choice = (e * (classes + 1)) + k2 + 1;
                            }
                        }
                    }

                    int state = _model.StateIndex(a, set, 0);
                    _value[state + k] = best;
                    _choice[state + k] = choice;
                }
            }
        }

        double root = double.PositiveInfinity;
        for (int set = 1; set < sets; set++)
        {
            if (_model.UseAllDevices && set != _model.Full)
            {
                continue;
            }

            for (int k = 0; k < classes; k++)
            {
                if (_model.CountIn[(set * classes) + k] > 0 && _value[_model.StateIndex(0, set, k)] < root)
                {
                    root = _value[_model.StateIndex(0, set, k)];
                    _rootSet = set;
                    _rootClass = k;
                }
            }
        }

        return root;
    }

    /// <summary>
    /// Computes, from the current <see cref="Stage"/> values (summed), the least cost of covering layers [0, a) with
    /// exactly the devices of multiset u when the stage after them is on class k, at <see cref="SolverModel.StateIndex"/>(a, u, k).
    /// </summary>
    /// <param name="prefix">Where the costs go; at least (L + 1) × multisets × classes long.</param>
    public void Prefix(double[] prefix)
    {
        int layers = _model.LayerCount;
        int classes = _model.ClassCount;
        int sets = _model.MultisetCount;
        Array.Fill(prefix, double.PositiveInfinity, 0, (layers + 1) * sets * classes);
        prefix.AsSpan(0, classes).Clear();
        for (int a = 0; a < layers; a++)
        {
            for (int set = 0; set < sets; set++)
            {
                for (int k = 0; k < classes; k++)
                {
                    double before = prefix[_model.StateIndex(a, set, k)];
                    if (double.IsPositiveInfinity(before) || _model.CountIn[(set * classes) + k] == _model.Members[k].Length)
                    {
                        continue;
                    }

                    int grown = set + _model.Radix[k];
                    int stageBase = _base[(a * classes) + k];
                    int end = Math.Min(_active[(a * classes) + k], layers - 1);
                    for (int e = a + 1; e <= end; e++)
                    {
                        int row = stageBase + ((e - a - 1) * (classes + 1));
                        int after = _model.StateIndex(e, grown, 0);
                        for (int k2 = 0; k2 < classes; k2++)
                        {
                            double value = before + Stage[row + k2 + 1];
                            if (value < prefix[after + k2])
                            {
                                prefix[after + k2] = value;
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Gets the stages of the best chain of the last <see cref="Run"/> (which must have found one).</summary>
    /// <returns>The stages in order: first layer, end, class, class of the next stage (−1 for the last) and stage index.</returns>
    public List<(int Start, int End, int Class, int Next, int Index)> Path()
    {
        var path = new List<(int, int, int, int, int)>();
        int classes = _model.ClassCount;
        int set = _rootSet;
        int k = _rootClass;
        for (int a = 0; a < _model.LayerCount;)
        {
            int choice = _choice[_model.StateIndex(a, set, k)];
            int e = choice / (classes + 1);
            int next = (choice % (classes + 1)) - 1;
            path.Add((a, e, k, next, Index(a, k, e, next)));
            set -= _model.Radix[k];
            a = e;
            k = next;
        }

        return path;
    }
}
