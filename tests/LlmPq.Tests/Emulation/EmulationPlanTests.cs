using System.Net;
using LlmPq.Host.Emulation;
using LlmPq.Planning;

namespace LlmPq.Tests.Emulation;

/// <summary>The namespaces, addresses and tc commands planned for a cluster: a pure function, tested without root.</summary>
public sealed class EmulationPlanTests
{
    private const int Pid = 4242;

    private static readonly ClusterSpec s_threeHosts = ClusterSpec.Parse("""
        {
          "devices": [
            { "kind": "CPU", "host": "a", "name": "a0", "threads": 1 },
            { "kind": "CPU", "host": "b", "name": "b0", "threads": 2 },
            { "kind": "CPU", "host": "c/x", "name": "c0" },
            { "kind": "CPU", "host": "b", "name": "b1", "threads": 1 }
          ],
          "links": [ { "hosts": ["a", "b"], "gbps": 0.1, "latencyMs": 0.5 }, { "hosts": ["b", "c/x"], "gbps": 1 } ],
          "coordinator": "a"
        }
        """);

    [Fact]
    public void Each_host_but_the_coordinator_gets_a_namespace_a_veth_pair_and_a_slash_30_of_its_own()
    {
        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, Pid, []);

        Assert.Equal(["b", "c/x"], plan.Hosts.Select(h => h.Host));
        Assert.All(plan.Hosts, h => Assert.StartsWith(EmulationPlan.NamespacePrefix(Pid), h.Namespace, StringComparison.Ordinal));
        Assert.All(plan.Hosts, h => Assert.StartsWith(EmulationPlan.InterfacePrefix(Pid), h.RootInterface, StringComparison.Ordinal));
        Assert.DoesNotContain('/', plan.Hosts[1].Namespace); // a namespace is a file name
        Assert.Equal(2, plan.Hosts.Select(h => h.Namespace).Distinct().Count());
        Assert.Equal(2, plan.Hosts.Select(h => h.RootInterface).Distinct().Count());
        foreach (EmulatedHostPlan host in plan.Hosts)
        {
            byte[] root = host.RootAddress.GetAddressBytes();
            byte[] other = host.HostAddress.GetAddressBytes();
            Assert.Equal([10, 213], root[..2]);
            Assert.Equal(root[..3], other[..3]);
            Assert.Equal(root[3] & ~3, other[3] & ~3); // one /30
            Assert.NotEqual(root[3], other[3]);
            Assert.NotEqual(0, root[3] & 3); // neither the network nor the broadcast address
            Assert.NotEqual(3, other[3] & 3);
        }

        Assert.NotEqual(plan.Hosts[0].RootAddress.GetAddressBytes()[3] & ~3, plan.Hosts[1].RootAddress.GetAddressBytes()[3] & ~3);
    }

    [Fact]
    public void A_slash_30_holding_an_address_in_use_is_skipped()
    {
        EmulationPlan free = EmulationPlan.Create(s_threeHosts, Pid, []);

        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, Pid, [free.Hosts[0].HostAddress, IPAddress.Parse("192.168.1.1")]);

        Assert.DoesNotContain(plan.Hosts, h => h.RootAddress.Equals(free.Hosts[0].RootAddress) || h.HostAddress.Equals(free.Hosts[0].HostAddress));
        Assert.Equal(free.Hosts[1].RootAddress, plan.Hosts[0].RootAddress); // the next free one
    }

    [Fact]
    public void Both_ends_of_a_link_are_shaped_at_its_declared_rate_and_an_unlisted_link_at_the_default()
    {
        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, Pid, []);
        IReadOnlyList<IReadOnlyList<string>> commands = plan.SetupCommands();

        Assert.Equal((long)(0.1e9), plan.Hosts[0].Shaping.RateBitsPerSecond);
        Assert.Equal((long)(LinkSpec.NetworkGbps * 1e9), plan.Hosts[1].Shaping.RateBitsPerSecond); // b–c is not a's link
        Assert.Equal(0.5, plan.Hosts[0].LatencyMs);
        foreach (EmulatedHostPlan host in plan.Hosts)
        {
            string rate = $"{host.Shaping.RateBitsPerSecond}bit";
            Assert.Contains(commands, c => c is ["tc", "qdisc", "replace", "dev", var dev, "root", "tbf", "rate", var r, ..] && dev == host.RootInterface && r == rate);
            Assert.Contains(commands, c => c is ["tc", "-n", var ns, "qdisc", "replace", "dev", EmulatedHostPlan.HostInterface, "root", "tbf", "rate", var r, ..] && ns == host.Namespace && r == rate);
        }
    }

    [Theory]
    [InlineData(0.05)]
    [InlineData(0.1)]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(100)]
    public void The_bucket_holds_a_few_frames_and_the_queue_more_than_the_bucket(double gbps)
    {
        TokenBucket bucket = TokenBucket.For(gbps);

        Assert.InRange(bucket.BurstBytes, 16 << 10, Math.Max(16 << 10, gbps * 1e9 / 8 / 1000)); // at most 1 ms of traffic above the floor
        Assert.True(bucket.LimitBytes > bucket.BurstBytes);
        Assert.True(bucket.LimitBytes >= gbps * 1e9 / 8 / 10, "the queue holds 100 ms of traffic");
    }

    [Fact]
    public void Setup_creates_the_namespace_before_using_it_and_teardown_removes_everything_setup_created()
    {
        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, Pid, []);
        IReadOnlyList<IReadOnlyList<string>> setup = plan.SetupCommands();
        IReadOnlyList<IReadOnlyList<string>> teardown = plan.TeardownCommands();

        Assert.All(setup, c => Assert.True(c[0] is "ip" or "tc", c[0]));
        foreach (EmulatedHostPlan host in plan.Hosts)
        {
            int created = IndexOf(setup, c => c is ["ip", "netns", "add", var ns] && ns == host.Namespace);
            Assert.True(created >= 0);
            Assert.All(setup.Where(c => c.Contains(host.Namespace)), c => Assert.True(IndexOf(setup, x => x == c) >= created));
            Assert.Contains(teardown, c => c is ["ip", "netns", "del", var ns] && ns == host.Namespace);
            Assert.Contains(teardown, c => c is ["ip", "link", "del", var dev] && dev == host.RootInterface);
        }

        string[] made = [.. setup.Where(c => c is ["ip", "netns", "add", _] or ["ip", "link", "add", ..]).Select(c => c[3])];
        Assert.All(made, name => Assert.Contains(teardown, c => c[3] == name));
    }

    [Fact]
    public void The_cluster_gets_an_endpoint_on_the_host_address_for_each_emulated_device_only()
    {
        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, Pid, []);

        ClusterSpec emulated = plan.Apply(s_threeHosts);

        Assert.Null(emulated.Devices.Single(d => d.Name == "a0").Endpoint);
        EmulatedHostPlan b = plan.Hosts[0];
        string[] endpoints = [.. emulated.Devices.Where(d => d.Host == "b").Select(d => d.Endpoint!)];
        Assert.Equal(2, endpoints.Distinct().Count());
        Assert.All(endpoints, e => Assert.StartsWith(b.HostAddress + ":", e, StringComparison.Ordinal));
        Assert.Equal(s_threeHosts.Devices.Select(d => d.Name), emulated.Devices.Select(d => d.Name));
        Assert.Equal(s_threeHosts.Links, emulated.Links);
    }

    [Fact]
    public void A_stage_server_runs_in_its_namespace_on_the_host_address_with_the_device_threads()
    {
        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, Pid, []);
        EmulatedHostPlan b = plan.Hosts[0];
        (DeviceSpec device, int port) = b.Devices[0];

        IReadOnlyList<string> command = EmulationPlan.ServerCommand(b, device, port, "/x/ggml-rpc-server");

        Assert.Equal(["netns", "exec", b.Namespace, "/x/ggml-rpc-server"], command.Take(4));
        Assert.Equal(b.HostAddress.ToString(), command[command.ToList().IndexOf("-H") + 1]);
        Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), command[command.ToList().IndexOf("-p") + 1]);
        Assert.Equal("CPU", command[command.ToList().IndexOf("-d") + 1]);
        Assert.Equal("2", command[command.ToList().IndexOf("-t") + 1]);
    }

    [Fact]
    public void A_device_to_emulate_that_already_has_an_endpoint_is_refused_with_what_to_do()
    {
        ClusterSpec cluster = s_threeHosts with { Devices = [.. s_threeHosts.Devices.Select(d => d.Name == "b1" ? d with { Endpoint = "10.0.0.9:50052" } : d)] };

        var error = Assert.Throws<ArgumentException>(() => EmulationPlan.Create(cluster, Pid, []));

        Assert.Contains("b1", error.Message, StringComparison.Ordinal);
        Assert.Contains("remove the endpoint", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cluster_on_one_host_plans_nothing()
    {
        ClusterSpec local = ClusterSpec.Parse("""{ "devices": [ { "kind": "CPU", "name": "x" }, { "kind": "CPU", "name": "y" } ] }""");

        EmulationPlan plan = EmulationPlan.Create(local, Pid, []);

        Assert.Empty(plan.Hosts);
        Assert.Empty(plan.SetupCommands());
        Assert.Equal(local.Devices, plan.Apply(local).Devices);
    }

    [Fact]
    public void Interface_names_fit_linux_for_the_largest_pid()
    {
        EmulationPlan plan = EmulationPlan.Create(s_threeHosts, 4_194_304, []);

        Assert.All(plan.Hosts, h => Assert.InRange(h.RootInterface.Length, 1, 15));
    }

    [Theory]
    [InlineData("llmpq-123-0-b", true, 123)]
    [InlineData("lq77-16383", true, 77)]
    [InlineData("llmpq-tests-5", false, 0)]
    [InlineData("eth0", false, 0)]
    [InlineData("lqx-1", false, 0)]
    public void Names_tell_their_owner(string name, bool ours, int owner)
    {
        Assert.Equal(ours, EmulationPlan.TryOwner(name, out int pid));
        Assert.Equal(owner, pid);
    }

    [Fact]
    public void The_names_of_ip_listings_are_read()
    {
        const string Links = "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\\    link/loopback 00:00\n7: lq12-0@if2: <BROADCAST,UP> mtu 1500 qdisc tbf\\    link/ether 8a\n";
        const string Namespaces = "llmpq-12-0-b (id: 3)\nother\n";

        Assert.Equal(["lo", "lq12-0"], EmulatedHosts.Names(Links, link: true));
        Assert.Equal(["llmpq-12-0-b", "other"], EmulatedHosts.Names(Namespaces, link: false));
    }

    private static int IndexOf(IReadOnlyList<IReadOnlyList<string>> commands, Func<IReadOnlyList<string>, bool> match) =>
        commands.Select((c, i) => (c, i)).FirstOrDefault(x => match(x.c), (c: null!, i: -1)).i;
}
