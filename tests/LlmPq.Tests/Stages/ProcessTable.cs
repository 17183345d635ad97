using System.Diagnostics;
using System.Globalization;

namespace LlmPq.Tests.Stages;

/// <summary>Reads Linux's <c>/proc</c> to see whether a process is alive, without being fooled by a reused pid.</summary>
public static class ProcessTable
{
    /// <summary>One process as <c>/proc/PID/stat</c> describes it.</summary>
    /// <param name="Pid">Its id.</param>
    /// <param name="Command">Its command name (<c>comm</c>).</param>
    /// <param name="State">Its state letter (R, S, Z, …).</param>
    /// <param name="ParentPid">Its parent's id.</param>
    /// <param name="ProcessGroup">Its process group.</param>
    /// <param name="StartTicks">When it started, in clock ticks since boot; tells a reused pid apart.</param>
    public sealed record Entry(int Pid, string Command, char State, int ParentPid, int ProcessGroup, ulong StartTicks);

    /// <summary>Reads a process's entry, or null when there is none.</summary>
    public static Entry? Read(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return null;
        }

        // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
        // priority nice threads itrealvalue starttime ..."; comm may hold spaces and parentheses, so split after the last ')'.
        int open = stat.IndexOf('(', StringComparison.Ordinal);
        int close = stat.LastIndexOf(')');
        string[] rest = stat[(close + 2)..].Split(' ');
        return new Entry(
            pid,
            stat[(open + 1)..close],
            rest[0][0],
            int.Parse(rest[1], CultureInfo.InvariantCulture),
            int.Parse(rest[2], CultureInfo.InvariantCulture),
            ulong.Parse(rest[19], CultureInfo.InvariantCulture));
    }

    /// <summary>Polls until the process runs <paramref name="command"/> (a fresh child runs its parent's, then a launcher's, first).</summary>
    public static Entry WaitForCommand(int pid, string command)
    {
        var clock = Stopwatch.StartNew();
        Entry? entry;
        while ((entry = Read(pid)) is null || entry.Command != command)
        {
            Assert.True(entry is not null && clock.Elapsed < TimeSpan.FromSeconds(30), $"pid {pid} did not become {command}");
            Thread.Sleep(20);
        }

        return entry;
    }

    /// <summary>Gets the ids of a process's children (over all its threads).</summary>
    public static IReadOnlyList<int> Children(int pid) =>
        [.. Directory.GetDirectories($"/proc/{pid}/task")
            .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(id => int.Parse(id, CultureInfo.InvariantCulture))];

    /// <summary>Gets whether the process seen as <paramref name="seen"/> is gone: no entry, a zombie, or another process under its pid.</summary>
    public static bool IsGone(Entry seen)
    {
        Entry? now = Read(seen.Pid);
        return now is null || now.State is 'Z' or 'X' || now.StartTicks != seen.StartTicks;
    }

    /// <summary>Polls until the process is gone; a generous limit only keeps a broken test from hanging.</summary>
    public static bool WaitUntilGone(Entry seen, TimeSpan? limit = null)
    {
        var clock = Stopwatch.StartNew();
        while (!IsGone(seen))
        {
            if (clock.Elapsed > (limit ?? TimeSpan.FromSeconds(30)))
            {
                return false;
            }

            Thread.Sleep(50);
        }

        return true;
    }
}
