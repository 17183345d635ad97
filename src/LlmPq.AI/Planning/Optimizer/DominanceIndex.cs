namespace LlmPq.Planning.Optimizer;

/// <summary>
/// Answers, for points of (bytes, prefill, decode), whether a point with no more of each has been added: a Fenwick
/// tree over the ranks of the bytes whose nodes each keep the staircase (prefill ascending, decode descending) of
/// their points; O(log² n) per query and per addition.
/// </summary>
internal sealed class DominanceIndex
{
    private const double Tolerance = 1e-12;

    private int _size;
    private int[] _count = [];
    private double[][] _prefill = [];
    private double[][] _decode = [];

    /// <summary>Empties the index for points whose byte ranks are 1..<paramref name="size"/>.</summary>
    /// <param name="size">The number of distinct byte values.</param>
    public void Reset(int size)
    {
        if (size >= _count.Length)
        {
            int capacity = Math.Max(size + 1, _count.Length * 2);
            Array.Resize(ref _count, capacity);
            Array.Resize(ref _prefill, capacity);
            Array.Resize(ref _decode, capacity);
        }

        _size = size;
        Array.Clear(_count, 0, size + 1);
    }

    /// <summary>Gets whether an added point has a byte rank ≤ <paramref name="rank"/> and no more prefill and decode.</summary>
    /// <param name="rank">The 1-based rank of the bytes (equal bytes, equal rank).</param>
    /// <param name="prefill">The prefill seconds.</param>
    /// <param name="decode">The decode seconds.</param>
    /// <returns>Whether the point is dominated.</returns>
    public bool Dominated(int rank, double prefill, double decode)
    {
        for (int node = rank; node > 0; node -= node & -node)
        {
            int step = Last(node, prefill * (1 + Tolerance));
            if (step >= 0 && _decode[node][step] <= decode * (1 + Tolerance))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Adds a point.</summary>
    /// <param name="rank">The 1-based rank of its bytes.</param>
    /// <param name="prefill">The prefill seconds.</param>
    /// <param name="decode">The decode seconds.</param>
    public void Add(int rank, double prefill, double decode)
    {
        for (int node = rank; node <= _size; node += node & -node)
        {
            Insert(node, prefill, decode);
        }
    }

    // The last step whose prefill is at most the given one (it has the least decode of those), or −1.
    private int Last(int node, double prefill)
    {
        double[] steps = _prefill[node];
        int lo = 0;
        int hi = _count[node];
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (steps[mid] <= prefill)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo - 1;
    }

    private void Insert(int node, double prefill, double decode)
    {
        int count = _count[node];
        if (_prefill[node] is null || _prefill[node].Length == 0)
        {
            _prefill[node] = new double[8];
            _decode[node] = new double[8];
        }

        double[] p = _prefill[node];
        double[] d = _decode[node];
        int last = Last(node, prefill);
        if (last >= 0 && d[last] <= decode)
        {
            return;
        }

        // Drop the steps the new point dominates: from the first with as much prefill, while their decode is no less.
        int from = last >= 0 && p[last] == prefill ? last : last + 1;
        int to = last + 1;
        while (to < count && d[to] >= decode)
        {
            to++;
        }

        int removed = to - from;
        if (removed == 0 && count == p.Length)
        {
            Array.Resize(ref _prefill[node], count * 2);
            Array.Resize(ref _decode[node], count * 2);
            p = _prefill[node];
            d = _decode[node];
        }

        if (removed != 1)
        {
            Array.Copy(p, to, p, from + 1, count - to);
            Array.Copy(d, to, d, from + 1, count - to);
        }

        p[from] = prefill;
        d[from] = decode;
        _count[node] = count + 1 - removed;
    }
}
