using System.Diagnostics;
using System.Globalization;
using LlmPq.Stages;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Stages;

/// <summary>The parent-death launcher (<c>eng/native/llmpq-launch.c</c>) and the spawner that uses it.</summary>
[Collection(NativeTests.Name)]
public sealed class LauncherTests
{
    private static string Launcher => ProcessSpawner.LauncherPath
        ?? throw new InvalidOperationException("eng/build-native.sh did not build llmpq-launch (it needs a C compiler).");

    [Fact]
    public void A_process_killed_with_sigkill_takes_its_launched_child_along()
    {
        // The same shell script, with and without the launcher: only the launched child dies with the shell.
        ProcessTable.Entry launched = StartShellWithSleepingChild($"\"{Launcher}\" $$ sleep 600", out Process shell);
        using (shell)
        {
            Assert.Equal(launched.Pid, launched.ProcessGroup); // a group of its own: a terminal's Ctrl+C does not reach it
            shell.Kill();
            Assert.True(ProcessTable.WaitUntilGone(launched), $"the launched child {launched.Pid} outlived its killed parent");
        }

        ProcessTable.Entry plain = StartShellWithSleepingChild("sleep 600", out Process control);
        using (control)
        {
            control.Kill();
            control.WaitForExit();
            Assert.False(ProcessTable.IsGone(plain), "without the launcher the child should have survived (the test would prove nothing)");
            Process.GetProcessById(plain.Pid).Kill();
        }
    }

    [Fact]
    public void The_launcher_starts_nothing_when_its_parent_is_not_the_one_named()
    {
        string marker = TestModels.TempPath("started");
        var start = new ProcessStartInfo(Launcher) { RedirectStandardError = true };
        foreach (string a in new[] { (Environment.ProcessId + 1).ToString(CultureInfo.InvariantCulture), "/bin/sh", "-c", $"touch '{marker}'" })
        {
            start.ArgumentList.Add(a);
        }

        using Process launcher = Process.Start(start)!;
        string error = launcher.StandardError.ReadToEnd();
        launcher.WaitForExit();

        Assert.Equal(127, launcher.ExitCode);
        Assert.Contains("is gone", error, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task A_child_outlives_the_thread_that_asked_for_it()
    {
        // The kernel signals a child when the thread that forked it exits; the spawner forks on a thread that never does.
        ChildProcess? child = null;
        var asker = new Thread(() => child = ChildProcess.StartAsync("sleep", ["600"], NullLogger.Instance).GetAwaiter().GetResult());
        asker.Start();
        asker.Join();
        await using ChildProcess sleeper = child!;

        ProcessTable.Entry entry = ProcessTable.WaitForCommand(sleeper.Id, "sleep"); // the launcher became the program: same pid
        Assert.Equal(Environment.ProcessId, entry.ParentPid);
        Assert.False(ProcessTable.WaitUntilGone(entry, TimeSpan.FromSeconds(2)), "the child died with the thread that asked for it");
    }

    private static ProcessTable.Entry StartShellWithSleepingChild(string command, out Process shell)
    {
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"{command} & echo $!; wait");
        shell = Process.Start(start)!;
        return ProcessTable.WaitForCommand(int.Parse(shell.StandardOutput.ReadLine()!, CultureInfo.InvariantCulture), "sleep");
    }
}
