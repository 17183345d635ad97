namespace LlmPq.Planning.Optimizer;

/// <summary>
/// The options of the stages that start at one layer on one class of devices under one configuration: for every end
/// layer, the stage's compute times (P, D, fixed first/last-stage costs included), its Σω (W) and V = P + D + θW, for
/// every non-dominated type assignment that fits the device, sorted by V.
/// </summary>
/// <remarks>
/// The options of an end are a range of arrays that may be shared: where every layer has the same ω, the stages of one
/// length have the same options whatever their first layer (the last stage aside), and all starts of a class view one
/// set of arrays. Such ranges carry a <see cref="Range"/> number, so that work on them can be done once.
/// </remarks>
internal sealed class StageOptions
{
    private readonly int[] _first;
    private readonly int[] _stop;
    private readonly int[] _range;
    private readonly int[]? _parent;
    private readonly byte[]? _type;

    /// <summary>Initializes a new instance of the <see cref="StageOptions"/> class.</summary>
    /// <param name="start">The first layer.</param>
    /// <param name="end">The last end explored.</param>
    /// <param name="first">Per end (at end − start − 1), the first option.</param>
    /// <param name="stop">Per end, one past the last option.</param>
    /// <param name="range">Per end, the number of a range shared with other starts of the class, or −1.</param>
    /// <param name="minPrefill">Per end, the least prefill of its options (+∞ when none).</param>
    /// <param name="minDecode">Per end, the least decode of its options.</param>
    /// <param name="data">The options' figures.</param>
    /// <param name="parent">The assignment tree's parents (null when every option is uniform and its label is its type).</param>
    /// <param name="type">The assignment tree's types.</param>
    public StageOptions(int start, int end, int[] first, int[] stop, int[] range, double[] minPrefill, double[] minDecode, OptionData data, int[]? parent, byte[]? type)
    {
        Start = start;
        End = end;
        _first = first;
        _stop = stop;
        _range = range;
        _parent = parent;
        _type = type;
        Prefill = data.Prefill;
        Decode = data.Decode;
        Omega = data.Omega;
        Value = data.Value;
        Label = data.Label;
        MinPrefill = minPrefill;
        MinDecode = minDecode;

        // Per end, the least from there on, so a search under caps can stop early.
        int ends = end - start;
        MinPrefillFrom = new double[ends + 1];
        MinDecodeFrom = new double[ends + 1];
        MinPrefillFrom[ends] = double.PositiveInfinity;
        MinDecodeFrom[ends] = double.PositiveInfinity;
        for (int i = ends - 1; i >= 0; i--)
        {
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
    public int First(int end) => _first[end - Start - 1];

    /// <summary>Gets one past the last option of the stages that end at <paramref name="end"/>.</summary>
    /// <param name="end">An end in (Start, End].</param>
    /// <returns>The index after the last option.</returns>
    public int Stop(int end) => _stop[end - Start - 1];

    /// <summary>Gets the number of the range of options of <paramref name="end"/> if other starts of the class share it, else −1.</summary>
    /// <param name="end">An end in (Start, End].</param>
    /// <returns>A number in [0, layers), the same for every start that shares the range.</returns>
    public int Range(int end) => _range[end - Start - 1];

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

/// <summary>The figures of a set of options, indexed by option.</summary>
internal sealed record OptionData(double[] Prefill, double[] Decode, double[] Omega, double[] Value, int[] Label);
