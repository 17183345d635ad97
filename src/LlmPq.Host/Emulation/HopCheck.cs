using LlmPq.Planning;

namespace LlmPq.Host.Emulation;

/// <summary>
/// The cost model's link term against a measured hop, for a pipeline whose stages are a cluster's devices in file
/// order and whose one emulated link runs at two rates: the declared one and <see cref="Factor"/> times it. The step
/// time differs between the two by the link's bandwidth term alone (the compute, the same-host transfers and the
/// latency, which tbf does not add, are the same), so the hop at the declared rate is that difference × f / (f − 1).
/// </summary>
/// <param name="Cluster">The cluster as its file gives it.</param>
/// <param name="Host">The one host other than the coordinator.</param>
/// <param name="Gbps">The declared rate of its link to the coordinator.</param>
/// <param name="Factor">How much faster the comparison rate is.</param>
internal sealed record HopCheck(ClusterSpec Cluster, string Host, double Gbps, double Factor)
{
    /// <summary>Gets the check of a cluster of the coordinator and one other host.</summary>
    /// <param name="cluster">The cluster.</param>
    /// <param name="factor">The comparison rate over the declared one, above 1.</param>
    /// <returns>The check.</returns>
    /// <exception cref="ArgumentException">The cluster has not exactly one host besides the coordinator, or no stage boundary crosses its link.</exception>
    public static HopCheck For(ClusterSpec cluster, double factor)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (!(factor > 1) || !double.IsFinite(factor))
        {
            throw new ArgumentException($"the comparison rate is {factor}× the declared one; give a factor above 1 (e.g. 10)");
        }

        string[] others = [.. cluster.Devices.Select(d => d.Host).Where(h => h != cluster.Coordinator).Distinct()];
        if (others.Length != 1)
        {
            throw new ArgumentException($"a hosts check measures one link: give a cluster of the coordinator ({cluster.Coordinator}) and one other host; this one has {others.Length} ({string.Join(", ", others)})");
        }

        var check = new HopCheck(cluster, others[0], cluster.Link(others[0], cluster.Coordinator).Gbps, factor);
        return check.Crossings > 0
            ? check
            : throw new ArgumentException($"no two neighbouring devices of the cluster file are on different hosts, so no stage boundary crosses the link to {others[0]}; list a device of {others[0]} between devices of {cluster.Coordinator}");
    }

    /// <summary>Gets how often one pipeline step crosses the link: once per end of a stage boundary off the coordinator (ggml's RPC copies through it).</summary>
    public int Crossings => Boundaries.Sum(b => (b.From.Host == Cluster.Coordinator ? 0 : 1) + (b.To.Host == Cluster.Coordinator ? 0 : 1));

    /// <summary>Gets the pairs of neighbouring stages.</summary>
    public IEnumerable<(DeviceSpec From, DeviceSpec To)> Boundaries => Cluster.Devices.Zip(Cluster.Devices.Skip(1));

    /// <summary>Gets the cluster with the link at <paramref name="gbps"/>.</summary>
    public ClusterSpec At(double gbps)
    {
        LinkSpec link = Cluster.Link(Host, Cluster.Coordinator);
        return Cluster with { Links = [.. Cluster.Links.Where(l => l != link), link with { Gbps = gbps }] };
    }

    /// <summary>Gets the cost model's seconds of one step's hops (<see cref="ClusterSpec.TransferSeconds"/> over the boundaries) with the link at <paramref name="gbps"/>.</summary>
    /// <param name="bytes">The activations one boundary passes (<see cref="ModelSpec.ActivationBytes"/>).</param>
    /// <param name="gbps">The link's rate.</param>
    /// <returns>Seconds, latency and same-host terms included.</returns>
    public double PredictedSeconds(long bytes, double gbps)
    {
        ClusterSpec cluster = At(gbps);
        return Boundaries.Sum(b => cluster.TransferSeconds(b.From, b.To, bytes));
    }

    /// <summary>Gets the link's bandwidth term at the declared rate from the cost model's step times at the two rates.</summary>
    /// <param name="bytes">The activations one boundary passes.</param>
    /// <returns>Seconds per step.</returns>
    public double PredictedLinkSeconds(long bytes) => FromDifference(PredictedSeconds(bytes, Gbps) - PredictedSeconds(bytes, Gbps * Factor));

    /// <summary>Gets the link's time per step at the declared rate from how much longer a measured step takes at it than at <see cref="Factor"/> times it.</summary>
    /// <param name="differenceSeconds">The step time at the declared rate less the step time at the faster one.</param>
    /// <returns>Seconds per step.</returns>
    public double MeasuredLinkSeconds(double differenceSeconds) => FromDifference(differenceSeconds);

    /// <summary>Gets the bytes that cross the link in <paramref name="seconds"/> at the declared rate.</summary>
    public double BytesIn(double seconds) => seconds * Gbps * 1e9 / 8;

    private double FromDifference(double seconds) => seconds * Factor / (Factor - 1);
}
