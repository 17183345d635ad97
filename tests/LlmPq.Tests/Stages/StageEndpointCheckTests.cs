using System.Text.RegularExpressions;
using LlmPq.Native;
using LlmPq.Stages;

namespace LlmPq.Tests.Stages;

/// <summary>The coordinator's check of stage servers against stand-ins that say what a server of this build never says.</summary>
public sealed class StageEndpointCheckTests
{
    private const ulong GiB = 1UL << 30;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_closed_port_fails_naming_the_endpoint_and_what_to_do()
    {
        string endpoint = $"127.0.0.1:{Loopback.FreePort()}";
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => StageEndpointCheck.CheckAsync([new StageRequirement("s0", endpoint, 0)], s_timeout, CancellationToken.None));
        Assert.Contains("'s0'", ex.Message, StringComparison.Ordinal);
        Assert.Contains(endpoint, ex.Message, StringComparison.Ordinal);
        Assert.Contains("llmpq stage", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_protocol_version_fails_instead_of_aborting()
    {
        var other = new Version(StageEndpointCheck.ProtocolVersion.Major - 1, 0, 0);
        await using var server = new FakeStageServer(other, [(GiB, GiB)]);
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => StageEndpointCheck.ProbeAsync(server.Endpoint, s_timeout, CancellationToken.None));
        Assert.Contains($"speaks RPC protocol {other}, this build {StageEndpointCheck.ProtocolVersion}", ex.Message, StringComparison.Ordinal);
        Assert.Contains(server.Endpoint, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_hangs_up_on_the_hello_is_not_a_stage_server_of_this_build()
    {
        await using var server = new FakeStageServer(StageEndpointCheck.ProtocolVersion, [(GiB, GiB)], hangUp: true);
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => StageEndpointCheck.ProbeAsync(server.Endpoint, s_timeout, CancellationToken.None));
        Assert.Contains("did not answer the RPC hello", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Too_little_free_memory_and_two_devices_on_one_server_are_refused_together()
    {
        await using var small = new FakeStageServer(StageEndpointCheck.ProtocolVersion, [(GiB, 4 * GiB)]);
        await using var twoDevices = new FakeStageServer(StageEndpointCheck.ProtocolVersion, [(GiB, GiB), (GiB, GiB)]);
        await using var fine = new FakeStageServer(StageEndpointCheck.ProtocolVersion, [(2 * GiB, 2 * GiB)]);
        StageRequirement[] stages =
        [
            new("s0", small.Endpoint, (long)(2 * GiB)),
            new("s1", twoDevices.Endpoint, 0),
            new("s2", fine.Endpoint, (long)(2 * GiB)),
        ];

        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => StageEndpointCheck.CheckAsync(stages, s_timeout, CancellationToken.None));
        Assert.Contains("2 of 3 stage servers", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"'s0' at {small.Endpoint} has 1024 MiB free of 4096 MiB, but its stage needs 2048 MiB", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"'s1' at {twoDevices.Endpoint} serves 2 devices", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("'s2'", ex.Message, StringComparison.Ordinal);

        IReadOnlyList<StageServerInfo> ok = await StageEndpointCheck.CheckAsync([stages[2]], s_timeout, CancellationToken.None);
        Assert.Equal(new StageDeviceMemory(2 * GiB, 2 * GiB), Assert.Single(Assert.Single(ok).Devices));
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:70000")]
    [InlineData(":50052")]
    public void A_malformed_endpoint_is_an_argument_error(string endpoint) =>
        Assert.Throws<ArgumentException>(() => StageEndpointCheck.ParseEndpoint(endpoint));
}

/// <summary>The check against real stage servers of this build.</summary>
[Collection(NativeTests.Name)]
public sealed class StageEndpointCheckNativeTests
{
    [Fact]
    public void The_managed_protocol_version_is_the_one_of_the_build()
    {
        string header = File.ReadAllText(Path.Combine(NativeLibraryLoader.Directory, "include", "ggml-rpc.h"));
        int Define(string name) => int.Parse(Regex.Match(header, $@"#define\s+{name}\s+(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(new Version(Define("RPC_PROTO_MAJOR_VERSION"), Define("RPC_PROTO_MINOR_VERSION"), Define("RPC_PROTO_PATCH_VERSION")), StageEndpointCheck.ProtocolVersion);
    }

    [Fact]
    public async Task A_real_server_reports_one_device_and_a_need_above_its_memory_is_refused()
    {
        (ChildProcess server, string endpoint) = await TestStageServer.StartAsync("CPU", startSeconds: 60);
        await using ChildProcess stage = server;

        StageServerInfo info = await StageEndpointCheck.ProbeAsync(endpoint, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(StageEndpointCheck.ProtocolVersion, info.Protocol);
        StageDeviceMemory device = Assert.Single(info.Devices);
        Assert.InRange(device.FreeBytes, 1UL, device.TotalBytes);

        // The server serves one client at a time and went back to accepting: a second check gets through.
        long tooMuch = (long)device.TotalBytes + 1;
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => StageEndpointCheck.CheckAsync([new StageRequirement("s0", endpoint, tooMuch)], TimeSpan.FromSeconds(30), CancellationToken.None));
        Assert.Contains(endpoint, ex.Message, StringComparison.Ordinal);
        Assert.Contains($"needs {tooMuch >> 20} MiB", ex.Message, StringComparison.Ordinal);
    }
}
