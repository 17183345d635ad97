using System.Diagnostics;
using System.Diagnostics.Metrics;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Options;

namespace LlmPq.Tests.Stages;

/// <summary>The stage supervisor with real ggml-rpc-server processes.</summary>
[Collection(NativeTests.Name)]
public sealed class StageSupervisorTests
{
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(60); // only keeps a broken test from hanging

    [Fact]
    public async Task Two_stages_start_with_their_settings_and_both_answer()
    {
        await using var supervisor = new StageSupervisor(Options(Cpu("s0"), Cpu("s1")));
        await supervisor.StartAsync(CancellationToken.None);

        StageGeneration generation = Assert.IsType<StageGeneration>(supervisor.Current);
        Assert.Equal(1, generation.Number);
        Assert.Equal(["s0", "s1"], generation.Stages.Select(s => s.Name));
        Assert.Equal(2, generation.Stages.Select(s => s.Endpoint).Distinct().Count());
        foreach (StageEndpoint stage in generation.Stages)
        {
            StageServerInfo info = await StageEndpointCheck.ProbeAsync(stage.Endpoint, s_limit, CancellationToken.None);
            Assert.Single(info.Devices);
        }

        foreach (StageStatus status in supervisor.Status())
        {
            Assert.Equal(StageState.Up, status.State);
            ProcessTable.Entry server = ProcessTable.Read(status.ProcessId!.Value)!;
            Assert.Equal("ggml-rpc-server", server.Command);
            Assert.Equal(Environment.ProcessId, server.ParentPid);
            string[] arguments = File.ReadAllText($"/proc/{server.Pid}/cmdline").Split('\0');
            Assert.Equal(["-p", status.Endpoint!.Split(':')[1], "-d", "CPU", "-t", "1"], arguments[3..9]);
        }
    }

    [Fact]
    public async Task A_killed_stage_is_restarted_and_answers_again_in_a_new_generation()
    {
        long restarts = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "LlmPq" && instrument.Name == "llmpq.stage.restarts")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            if (tags.ToArray().Contains(new KeyValuePair<string, object?>("llmpq.stage", "killed-s0")))
            {
                Interlocked.Add(ref restarts, value);
            }
        });
        listener.Start();

        await using var supervisor = new StageSupervisor(Options(Cpu("killed-s0"), Cpu("killed-s1")));
        await supervisor.StartAsync(CancellationToken.None);
        StageGeneration first = supervisor.Current!;
        IReadOnlyList<StageStatus> before = supervisor.Status();
        ProcessTable.Entry victim = ProcessTable.Read(before[0].ProcessId!.Value)!;

        Process.GetProcessById(victim.Pid).Kill();
        await WhenCancelled(first.Lost);
        StageGeneration second = await supervisor.WaitUntilHealthyAsync(CancellationToken.None).WaitAsync(s_limit);

        Assert.True(second.Number > first.Number);
        Assert.True(ProcessTable.IsGone(victim));
        IReadOnlyList<StageStatus> after = supervisor.Status();
        Assert.NotEqual(victim.Pid, after[0].ProcessId);
        Assert.Equal(before[1].ProcessId, after[1].ProcessId); // the other stage kept running
        Assert.True(after[0].Restarts >= 1);
        Assert.Contains("exited", after[0].LastFailure, StringComparison.Ordinal);
        Assert.True(Interlocked.Read(ref restarts) >= 1);
        StageServerInfo info = await StageEndpointCheck.ProbeAsync(second.Stages[0].Endpoint, s_limit, CancellationToken.None);
        Assert.Single(info.Devices);
    }

    [Fact]
    public async Task Disposing_the_supervisor_leaves_no_server_alive()
    {
        var supervisor = new StageSupervisor(Options(Cpu("d0"), Cpu("d1")));
        await supervisor.StartAsync(CancellationToken.None);
        StageGeneration generation = supervisor.Current!;
        ProcessTable.Entry[] servers = [.. supervisor.Status().Select(s => ProcessTable.Read(s.ProcessId!.Value)!)];

        await supervisor.DisposeAsync();

        Assert.All(servers, s => Assert.True(ProcessTable.WaitUntilGone(s), $"ggml-rpc-server {s.Pid} outlived the supervisor"));
        Assert.True(generation.Lost.IsCancellationRequested);
        Assert.Null(supervisor.Current);
        Assert.All(supervisor.Status(), s => Assert.Equal(StageState.Stopped, s.State));
        Assert.Empty(LiveStageServers());
    }

    [Fact]
    public async Task A_stage_that_cannot_start_is_reported_unhealthy_and_nothing_is_left_running()
    {
        var bad = new LocalStageOptions { Name = "bad", Device = "NO-SUCH-DEVICE", Threads = 1 };
        await using var supervisor = new StageSupervisor(Options(Cpu("good"), bad));

        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => supervisor.StartAsync(CancellationToken.None));

        Assert.Contains("Stage 'bad' is unhealthy", ex.Message, StringComparison.Ordinal);
        Assert.Contains("unknown device: NO-SUCH-DEVICE", ex.Message, StringComparison.Ordinal);
        Assert.Empty(LiveStageServers());
    }

    [Fact]
    public async Task A_stage_whose_device_lacks_the_memory_it_needs_is_refused()
    {
        var greedy = new LocalStageOptions { Name = "greedy", Device = "CPU", Threads = 1, MemoryBytes = long.MaxValue };
        await using var supervisor = new StageSupervisor(Options(greedy));
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => supervisor.StartAsync(CancellationToken.None));
        Assert.Contains($"needs {long.MaxValue >> 20} MiB", ex.Message, StringComparison.Ordinal);
    }

    internal static StageSupervisorOptions Options(params LocalStageOptions[] stages)
    {
        var options = new StageSupervisorOptions
        {
            StartTimeout = s_limit,
            RestartDelay = TimeSpan.FromMilliseconds(100),
            MaxRestartDelay = TimeSpan.FromMilliseconds(400),
            UnhealthyAfter = 2,
        };
        foreach (LocalStageOptions stage in stages)
        {
            options.Stages.Add(stage);
        }

        return options;
    }

    private static LocalStageOptions Cpu(string name) => new() { Name = name, Device = "CPU", Threads = 1 };

    private static IEnumerable<int> LiveStageServers() =>
        ProcessTable.Children(Environment.ProcessId)
            .Select(ProcessTable.Read)
            .Where(e => e is { Command: "ggml-rpc-server" } && !ProcessTable.IsGone(e))
            .Select(e => e!.Pid);

    private static async Task WhenCancelled(CancellationToken token)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using CancellationTokenRegistration registration = token.Register(() => cancelled.TrySetResult());
        await cancelled.Task.WaitAsync(s_limit, CancellationToken.None);
    }
}

/// <summary>The supervisor's options are checked before any server starts.</summary>
public sealed class StageSupervisorOptionsTests
{
    [Fact]
    public async Task Bad_options_fail_the_start_with_every_problem()
    {
        StageSupervisorOptions options = StageSupervisorTests.Options(
            new LocalStageOptions { Name = "a", Port = 40000 },
            new LocalStageOptions { Name = "A", Port = 40000, Threads = -1 },
            new LocalStageOptions { Name = " ", MemoryBytes = -1 });
        options.MaxRestartDelay = TimeSpan.FromMilliseconds(10);
        await using var supervisor = new StageSupervisor(options);

        OptionsValidationException ex = await Assert.ThrowsAsync<OptionsValidationException>(() => supervisor.StartAsync(CancellationToken.None));

        Assert.Contains(ex.Failures, f => f.Contains("'A' is used twice", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("Port 40000 is used twice", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("Stages[1]:Threads", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("Stages[2]:Name is required", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("Stages[2]:MemoryBytes", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("MaxRestartDelay", StringComparison.Ordinal));
        Assert.Equal(StageState.Starting, Assert.Single(supervisor.Status(), s => s.Name == "a").State);
    }
}
