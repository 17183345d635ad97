using LlmPq.Planning;

namespace LlmPq.Host.Profiling;

/// <summary>A prefill measurement: <paramref name="Sequences"/> prompts of <paramref name="Tokens"/> tokens in one <c>llama_decode</c>.</summary>
internal readonly record struct PrefillPoint(int Sequences, int Tokens);

/// <summary>A decode measurement: one new token for each of <paramref name="Batch"/> sequences holding <paramref name="Context"/> tokens.</summary>
internal readonly record struct DecodePoint(int Batch, int Context);

/// <summary>
/// What a profile measures: prefill and decode points around the ones the planner asks the cost model about, few
/// enough to profile a small model in about a minute, varied enough in tokens and context to fit the three
/// coefficients of a <see cref="LayerTimeFit"/>.
/// </summary>
/// <param name="Prefill">The prefill points.</param>
/// <param name="Decode">The decode points.</param>
/// <param name="Repeats">Timed repetitions of each point; the fastest counts.</param>
internal sealed record ProfileGrid(IReadOnlyList<PrefillPoint> Prefill, IReadOnlyList<DecodePoint> Decode, int Repeats)
{
    /// <summary>Gets the grid of a workload on a cluster.</summary>
    /// <param name="cluster">The cluster: its device count sets the decode micro-batch ⌈B/N⌉ and the prefill micro-batches (its divisors).</param>
    /// <param name="workload">The planner's workload: prompt length s, generated tokens n.</param>
    /// <param name="quick">A smaller grid (for tests and a first look): fewer tokens and one repetition less.</param>
    /// <returns>The grid.</returns>
    /// <remarks>
    /// Prefill: one sequence and the largest prefill micro-batch ξp whose prompts fit in the token cap (1024, quick
    /// 256), at s/4 and s tokens, and one sequence at s/2. Decode: batches 1 and ξd = ⌈B/N⌉, and B where the stages
    /// share the cores (<see cref="ClusterSpec.SharesCompute"/>: the planner prices a step of all B there) (capped so
    /// the cache holds at most 4096 tokens, quick 512), at contexts s/4, s + μn/2 (where the planner asks) and s + n. Larger
    /// points than the caps are extrapolated by the linear fit.
    /// </remarks>
    public static ProfileGrid For(ClusterSpec cluster, Workload workload, bool quick)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(workload);
        int tokenCap = quick ? 256 : 1024;
        int cacheCap = quick ? 512 : 4096;
        int s = Math.Min(workload.PromptTokens, tokenCap);
        int quarter = Math.Max(1, s / 4);
        var microBatches = Planner.ProblemBuilder.PrefillMicroBatches(cluster, workload).ToList();
        int sequences = microBatches.Where(b => b * s <= tokenCap).DefaultIfEmpty(1).Max();
        PrefillPoint[] prefill = [.. new[] { new PrefillPoint(1, quarter), new PrefillPoint(1, Math.Max(1, s / 2)), new PrefillPoint(1, s), new PrefillPoint(sequences, quarter), new PrefillPoint(sequences, s) }.Distinct()];

        int longest = Math.Min(workload.PromptTokens + workload.GeneratedTokens, cacheCap);
        int middle = Math.Min(workload.PromptTokens + (workload.ExpectedGeneratedTokens / 2), longest);
        int Capped(int sequences) => Math.Clamp(Math.Min(sequences, cacheCap / longest), 1, 256);
        int batch = Capped(microBatches.Max());

        // Stages that share the cores decode all B sequences in one step, and the planner asks there.
        int whole = cluster.SharesCompute ? Capped(workload.BatchSize) : batch;
        int shortest = Math.Max(1, Math.Min(workload.PromptTokens / 4, middle / 2));
        DecodePoint[] decode = [.. new[] { 1, batch, whole }.Distinct().SelectMany(b => new[] { shortest, middle, longest }.Distinct().Select(c => new DecodePoint(b, c)))];
        return new ProfileGrid(prefill, decode, quick ? 2 : 3);
    }

    /// <summary>Gets the most sequences any point holds at once.</summary>
    public int MaxSequences => Math.Max(Prefill.Max(p => p.Sequences), Decode.Max(d => d.Batch));

    /// <summary>Gets the most tokens one sequence holds.</summary>
    public int MaxSequenceTokens => Math.Max(Prefill.Max(p => p.Tokens), Decode.Max(d => d.Context) + 1);

    /// <summary>Gets the most tokens one <c>llama_decode</c> call takes.</summary>
    public int MaxBatchTokens => Math.Max(Prefill.Max(p => p.Sequences * p.Tokens), Math.Max(Decode.Max(d => d.Context), Decode.Max(d => d.Batch)));
}
