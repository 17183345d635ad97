using System.Diagnostics;
using LlmPq.Host.Emulation;
using LlmPq.Planning;
using LlmPq.Runner;
using LlmPq.Stages;
using LlmPq.Tests.Stages;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Emulation;

/// <summary>Hosts in network namespaces of this machine: the pipeline serves across the shaped links, and nothing stays behind.</summary>
[Collection(NativeTests.Name)]
public sealed class EmulatedHostsTests
{
    private const string TwoHosts = """
        {
          "devices": [
            { "kind": "CPU", "host": "a", "name": "a-cpu", "threads": 1 },
            { "kind": "CPU", "host": "b", "name": "b-cpu", "threads": 1 }
          ],
          "links": [ { "hosts": ["a", "b"], "gbps": 0.2, "latencyMs": 0 } ],
          "coordinator": "a"
        }
        """;

    [RootFact]
    public async Task A_two_host_cluster_serves_a_chat_request_across_namespaces_and_leaves_nothing_behind()
    {
        EmulationPlan plan;
        ProcessTable.Entry[] servers;
        await using (EmulatedHosts hosts = await EmulatedHosts.StartAsync(ClusterSpec.Parse(TwoHosts), loggerFactory: null, CancellationToken.None))
        {
            plan = hosts.Plan;
            EmulatedHostPlan b = Assert.Single(plan.Hosts);
            Assert.Contains(b.Namespace, await IpAsync("netns", "list"));
            Assert.Contains(EmulatedHostPlan.HostInterface, await IpAsync("-n", b.Namespace, "-o", "link", "show"));
            Assert.Contains("tbf", await IpAsync("-n", b.Namespace, "-o", "link", "show")); // the qdisc of the host's end
            servers = [.. (await IpAsync("netns", "pids", b.Namespace)).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(p => ProcessTable.Read(int.Parse(p, System.Globalization.CultureInfo.InvariantCulture))!)];
            Assert.Single(servers);

            string endpoint = hosts.Cluster.Devices.Single(d => d.Host == "b").Endpoint!;
            Assert.StartsWith(b.HostAddress + ":", endpoint, StringComparison.Ordinal);
            var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 256, MaxSequences = 1, TokenBudget = 64, Threads = 1 };
            options.Stages.Add(new LlmPqStageOptions { Layers = 2, Threads = 1 });
            options.Stages.Add(new LlmPqStageOptions { Layers = 2, Endpoint = endpoint });
            await using var pipeline = new LlmPqPipeline(options);
            await pipeline.StartAsync();
            using var client = new LlmPqChatClient(pipeline);

            ChatResponse answer = await client.GetResponseAsync("Hello over the link?", new ChatOptions { Temperature = 0, MaxOutputTokens = 4 });

            Assert.Equal(4, answer.Usage?.OutputTokenCount);
            Assert.NotEmpty(answer.Text);
        }

        await AssertGoneAsync(plan);
        Assert.All(servers, s => Assert.True(ProcessTable.WaitUntilGone(s), $"the stage server {s.Pid} survived"));
    }

    [RootFact]
    public async Task A_pipeline_that_fails_to_start_on_emulated_hosts_leaves_nothing_behind()
    {
        EmulationPlan plan;
        await using (EmulatedHosts hosts = await EmulatedHosts.StartAsync(ClusterSpec.Parse(TwoHosts), loggerFactory: null, CancellationToken.None))
        {
            plan = hosts.Plan;
            var options = new LlmPqOptions { ModelPath = TestModels.TempPath("no-such-model.gguf"), ContextLength = 256, MaxSequences = 1 };
            options.Stages.Add(new LlmPqStageOptions { Layers = 2, Threads = 1 });
            options.Stages.Add(new LlmPqStageOptions { Layers = 2, Endpoint = hosts.Cluster.Devices[1].Endpoint });
            await using var pipeline = new LlmPqPipeline(options);

            await Assert.ThrowsAnyAsync<Exception>(() => pipeline.StartAsync());
        }

        await AssertGoneAsync(plan);
    }

    [RootFact]
    public async Task A_setup_that_fails_half_way_removes_what_it_made_and_quotes_the_failing_command()
    {
        // Host c's rate rounds to 1 bit/s, which tc refuses after b is set up and c's namespace exists.
        ClusterSpec cluster = ClusterSpec.Parse("""
            {
              "devices": [ { "kind": "CPU", "host": "a" }, { "kind": "CPU", "host": "b" }, { "kind": "CPU", "host": "c" } ],
              "links": [ { "hosts": ["a", "b"], "gbps": 0.1 }, { "hosts": ["a", "c"], "gbps": 1e-9 } ],
              "coordinator": "a"
            }
            """);
        var error = await Assert.ThrowsAsync<IOException>(() => EmulatedHosts.StartAsync(cluster, loggerFactory: null, CancellationToken.None));

        Assert.Contains("tc", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(EmulationPlan.NamespacePrefix(Environment.ProcessId), await IpAsync("netns", "list"), StringComparison.Ordinal);
        Assert.DoesNotContain(EmulationPlan.InterfacePrefix(Environment.ProcessId), await IpAsync("-o", "link", "show"), StringComparison.Ordinal);
    }

    [RootFact]
    public async Task The_namespaces_of_a_process_that_is_gone_are_removed_at_start()
    {
        // A process that has exited: its id is free, and nothing of ours runs under it.
        using var exited = Process.Start(new ProcessStartInfo("true"))!;
        await exited.WaitForExitAsync();
        string stale = EmulationPlan.NamespacePrefix(exited.Id) + "0-b";
        await IpAsync("netns", "add", stale);

        await EmulatedHosts.RemoveStaleAsync(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, CancellationToken.None);

        Assert.DoesNotContain(stale, await IpAsync("netns", "list"), StringComparison.Ordinal);
    }

    private static async Task AssertGoneAsync(EmulationPlan plan)
    {
        string namespaces = await IpAsync("netns", "list");
        string links = await IpAsync("-o", "link", "show");
        Assert.All(plan.Hosts, h => Assert.DoesNotContain(h.Namespace, namespaces, StringComparison.Ordinal));
        Assert.All(plan.Hosts, h => Assert.DoesNotContain(h.RootInterface + "@", links, StringComparison.Ordinal));
    }

    private static async Task<string> IpAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        string output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"ip {string.Join(' ', arguments)} failed: {await process.StandardError.ReadToEndAsync()}");
        return output;
    }
}
