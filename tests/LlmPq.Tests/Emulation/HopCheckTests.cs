using LlmPq.Host.Emulation;
using LlmPq.Planning;
using LlmPq.Tests.Cli;

namespace LlmPq.Tests.Emulation;

/// <summary>The cost model's link term and the hop a pair of measured step times shows, for one emulated link.</summary>
public sealed class HopCheckTests
{
    private static readonly ClusterSpec s_sandwich = ClusterSpec.Parse("""
        {
          "devices": [
            { "kind": "CPU", "host": "a", "name": "a0" },
            { "kind": "CPU", "host": "b", "name": "b0" },
            { "kind": "CPU", "host": "a", "name": "a1" }
          ],
          "links": [ { "hosts": ["a", "b"], "gbps": 0.05, "latencyMs": 0.3 } ],
          "coordinator": "a"
        }
        """);

    [Fact]
    public void The_model_hop_is_the_cluster_transfer_time_over_the_stage_boundaries()
    {
        HopCheck check = HopCheck.For(s_sandwich, factor: 10);
        const long Bytes = 300_000;

        double expected = s_sandwich.TransferSeconds(s_sandwich.Devices[0], s_sandwich.Devices[1], Bytes)
            + s_sandwich.TransferSeconds(s_sandwich.Devices[1], s_sandwich.Devices[2], Bytes);

        Assert.Equal("b", check.Host);
        Assert.Equal(0.05, check.Gbps);
        Assert.Equal(2, check.Crossings);
        Assert.Equal(expected, check.PredictedSeconds(Bytes, check.Gbps), 12);
        Assert.True(check.PredictedSeconds(Bytes, check.Gbps * 10) < expected);
    }

    [Fact]
    public void The_link_term_leaves_out_latency_and_same_host_transfers()
    {
        HopCheck check = HopCheck.For(s_sandwich, factor: 10);
        const long Bytes = 300_000;

        Assert.Equal(check.Crossings * Bytes * 8 / (check.Gbps * 1e9), check.PredictedLinkSeconds(Bytes), 9);
    }

    [Theory]
    [InlineData(0.120, 4)]
    [InlineData(0.003, 2.5)]
    public void Step_times_that_differ_by_the_link_alone_give_back_the_bytes_that_crossed(double computeSeconds, double factor)
    {
        HopCheck check = HopCheck.For(s_sandwich, factor);
        const long Crossing = 400_000;
        double Step(double gbps) => computeSeconds + (Crossing * 8 / (gbps * 1e9));

        double measured = check.MeasuredLinkSeconds(Step(check.Gbps) - Step(check.Gbps * factor));

        Assert.Equal(Crossing * 8 / (check.Gbps * 1e9), measured, 9);
        Assert.Equal(Crossing, check.BytesIn(measured), 3);
    }

    [Fact]
    public void A_cluster_of_more_than_one_other_host_or_a_factor_not_above_one_is_refused()
    {
        ClusterSpec threeHosts = s_sandwich with { Devices = [.. s_sandwich.Devices, s_sandwich.Devices[1] with { Name = "c0", Host = "c" }] };

        Assert.Contains("one link", Assert.Throws<ArgumentException>(() => HopCheck.For(threeHosts, 10)).Message, StringComparison.Ordinal);
        Assert.Contains("above 1", Assert.Throws<ArgumentException>(() => HopCheck.For(s_sandwich, 1)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_comparison_cluster_changes_the_link_rate_only()
    {
        HopCheck check = HopCheck.For(s_sandwich, factor: 10);

        ClusterSpec faster = check.At(0.5);

        LinkSpec link = Assert.Single(faster.Links);
        Assert.Equal(0.5, link.Gbps);
        Assert.Equal(0.3, link.LatencyMs);
        Assert.Equal(s_sandwich.Devices, faster.Devices);
    }

    [Fact]
    public void Serve_refuses_emulated_hosts_without_a_cluster()
    {
        CliRunner.Result result = CliRunner.Run("serve", "--model", "m.gguf", "--emulate-hosts");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--emulate-hosts needs --cluster", result.StandardError, StringComparison.Ordinal);
    }
}
