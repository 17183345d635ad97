using System.Diagnostics;
using System.Globalization;
using LlmPq.Host.Commands;
using LlmPq.Stages;
using LlmPq.Tests.Cli;

namespace LlmPq.Tests.Stages;

/// <summary><c>llmpq stage</c>: one stage server in the foreground, on loopback unless told otherwise.</summary>
[Collection(NativeTests.Name)]
public sealed class StageCommandTests
{
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(60); // only keeps a broken test from hanging

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("192.168.1.20")]
    public void A_non_loopback_host_is_refused_without_the_acknowledgement(string host)
    {
        CliRunner.Result r = CliRunner.Run("stage", "--host", host, "--port", "0");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"refusing to listen on {host}", r.StandardError, StringComparison.Ordinal);
        Assert.Contains(StageCommand.ExposeFlag, r.StandardError, StringComparison.Ordinal);
        Assert.Empty(r.StandardOutput);
    }

    [Theory]
    [InlineData("127.0.0.1", false, true)]
    [InlineData("127.0.0.7", false, true)]
    [InlineData("0.0.0.0", true, false)]
    [InlineData("10.0.0.5", true, false)]
    public void Loopback_needs_no_acknowledgement_and_other_addresses_pass_with_it(string host, bool exposed, bool loopback) =>
        Assert.Equal(loopback, StageCommand.CheckListenAddress(host, exposed));

    [Theory]
    [InlineData("localhost")]
    [InlineData("::1")]
    public void A_host_the_server_cannot_bind_is_refused(string host) =>
        Assert.Contains("IPv4", Assert.Throws<ArgumentException>(() => StageCommand.CheckListenAddress(host, exposed: true)).Message, StringComparison.Ordinal);

    [Fact]
    public async Task Ctrl_c_stops_it_and_its_server()
    {
        using Process stage = StartStage(out string endpoint, out ProcessTable.Entry server);
        StageServerInfo info = await StageEndpointCheck.ProbeAsync(endpoint, s_limit, CancellationToken.None);
        Assert.Single(info.Devices);

        using (Process interrupt = Process.Start("kill", ["-INT", stage.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await interrupt.WaitForExitAsync();
        }

        await stage.WaitForExitAsync().WaitAsync(s_limit);
        Assert.Equal(0, stage.ExitCode);
        Assert.True(ProcessTable.WaitUntilGone(server));
    }

    [Fact]
    public void A_killed_llmpq_stage_leaves_no_orphan_server()
    {
        using Process stage = StartStage(out _, out ProcessTable.Entry server);
        stage.Kill(); // SIGKILL: llmpq gets no chance to stop its child
        Assert.True(ProcessTable.WaitUntilGone(server), $"ggml-rpc-server {server.Pid} outlived the killed llmpq stage");
    }

    private static Process StartStage(out string endpoint, out ProcessTable.Entry server)
    {
        // Through env, which execs dotnet (the same pid) with SIGINT at its default: a child of the test host has once
        // inherited it ignored (this Ctrl+C test and its twin ran on through their SIGINT in the same CI run).
        var start = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("--default-signal=INT");
        start.ArgumentList.Add("dotnet");
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "llmpq.dll"), "stage", "--port", "0", "--device", "CPU", "--threads", "1" })
        {
            start.ArgumentList.Add(a);
        }

        Process stage = Process.Start(start)!;
        stage.ErrorDataReceived += (_, _) => { };
        stage.BeginErrorReadLine();
        endpoint = stage.StandardOutput.ReadLineAsync().WaitAsync(s_limit).GetAwaiter().GetResult()
            ?? throw new InvalidOperationException("llmpq stage exited without printing its endpoint");
        Assert.StartsWith("127.0.0.1:", endpoint, StringComparison.Ordinal);

        ProcessTable.Entry? child = ProcessTable.Children(stage.Id).Select(ProcessTable.Read).SingleOrDefault(e => e is { Command: "ggml-rpc-server" });
        server = child ?? throw new InvalidOperationException("llmpq stage has no ggml-rpc-server child");
        return stage;
    }
}
