using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmPq.Planning.Optimizer;

// The dominance tests of the front program: which candidates of a step the kept ones dominate.
internal sealed partial class StageOptionBuilder
{
    // Steps with at most this many candidates filter them by a scan of the kept ones instead of the index.
    private const int LinearLimit = 8192;

    private readonly DominanceIndex _index = new();
    private long[] _keptBytes = [];
    private double[] _keptPrefill = [];
    private double[] _keptDecode = [];
    private long[] _ranks = new long[64];
    private long[] _stairBytes = new long[64];
    private double[] _stairTime = new double[64];

    // Keeps the candidates (in cost order) that no earlier kept one dominates, as the next front; their labels in the
    // assignment tree get recorded. Which comparison is needed depends on which times the bytes imply.
    private int Filter(int count, bool prefillExplicit, bool decodeExplicit)
    {
        int kept = 0;
        int stairs = 0;
        int distinct = 0;
        long minBytes = long.MaxValue;
        bool linear = prefillExplicit && decodeExplicit && count <= LinearLimit;
        if (linear && _keptBytes.Length < count)
        {
            _keptBytes = new long[count];
            _keptPrefill = new double[count];
            _keptDecode = new double[count];
        }

        if (prefillExplicit && decodeExplicit && !linear)
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
            if (linear)
            {
                dominated = DominatedLinear(kept, candidate.Bytes, candidate.Prefill, candidate.Decode);
                if (!dominated)
                {
                    _keptBytes[kept] = candidate.Bytes;
                    _keptPrefill[kept] = candidate.Prefill;
                    _keptDecode[kept] = candidate.Decode;
                }
            }
            else if (prefillExplicit && decodeExplicit)
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

    // Whether a candidate kept so far in this step has no more bytes, prefill and decode (as the index answers): a scan,
    // four at a time, from the last kept, which is likelier to be close. For the fronts of most steps it is faster than
    // the index, which must first rank the bytes.
    private bool DominatedLinear(int kept, long bytes, double prefill, double decode)
    {
        double p = prefill * (1 + Tolerance);
        double d = decode * (1 + Tolerance);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var b4 = Vector256.Create(bytes);
            var p4 = Vector256.Create(p);
            var d4 = Vector256.Create(d);
            ref long keptBytes = ref MemoryMarshal.GetArrayDataReference(_keptBytes);
            ref double keptPrefill = ref MemoryMarshal.GetArrayDataReference(_keptPrefill);
            ref double keptDecode = ref MemoryMarshal.GetArrayDataReference(_keptDecode);
            for (int j = kept - 4; j >= 0; j -= 4)
            {
                var fits = Vector256.LessThanOrEqual(Vector256.LoadUnsafe(ref keptBytes, (nuint)j), b4)
                    & Vector256.LessThanOrEqual(Vector256.LoadUnsafe(ref keptPrefill, (nuint)j), p4).AsInt64()
                    & Vector256.LessThanOrEqual(Vector256.LoadUnsafe(ref keptDecode, (nuint)j), d4).AsInt64();
                if (fits != Vector256<long>.Zero)
                {
                    return true;
                }
            }

            kept %= 4;
        }

        for (; i < kept; i++)
        {
            if (_keptBytes[i] <= bytes && _keptPrefill[i] <= p && _keptDecode[i] <= d)
            {
                return true;
            }
        }

        return false;
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
}
