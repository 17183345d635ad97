using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LlmPq.Native;

namespace LlmPq.Stages;

/// <summary>
/// Starts child processes that die with this process, even when it is killed with SIGKILL. On Linux each child runs
/// through <c>llmpq-launch</c> (<c>eng/native/llmpq-launch.c</c>, compiled by <c>eng/build-native.sh</c> into
/// <c>&lt;cache&gt;/bin</c>), which sets the parent-death signal that .NET cannot set, and then becomes the program.
/// </summary>
/// <remarks>
/// The kernel sends the parent-death signal when the <em>thread</em> that forked the child exits, and .NET forks on
/// the thread that calls <see cref="Process.Start()"/>; a thread-pool thread retires when idle, which would kill a
/// healthy child. So every launch happens on one dedicated thread that lives as long as the process.
/// </remarks>
internal static class ProcessSpawner
{
    private static readonly Lazy<string?> s_launcher = new(FindLauncher);
    private static readonly Lazy<BlockingCollection<(ProcessStartInfo Start, TaskCompletionSource<Process> Started)>> s_queue = new(StartThread);

    /// <summary>Gets the launcher's path, or <see langword="null"/> where there is none (not Linux, or not built).</summary>
    public static string? LauncherPath => s_launcher.Value;

    /// <summary>Starts <paramref name="start"/> through the launcher when there is one; directly otherwise.</summary>
    /// <param name="start">What to start; its <see cref="ProcessStartInfo.ArgumentList"/> holds the arguments.</param>
    /// <returns>The started process (the program itself: the launcher keeps its pid).</returns>
    public static Task<Process> StartAsync(ProcessStartInfo start)
    {
        ArgumentNullException.ThrowIfNull(start);
        if (LauncherPath is not string launcher)
        {
            return Task.FromResult(Process.Start(start) ?? throw new InvalidOperationException($"'{start.FileName}' did not start."));
        }

        start.ArgumentList.Insert(0, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Insert(1, start.FileName);
        start.FileName = launcher;
        var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        s_queue.Value.Add((start, started));
        return started.Task;
    }

    private static string? FindLauncher()
    {
        string path = Path.Combine(NativeLibraryLoader.CacheRoot(), "bin", "llmpq-launch");
        return OperatingSystem.IsLinux() && File.Exists(path) ? path : null;
    }

    private static BlockingCollection<(ProcessStartInfo, TaskCompletionSource<Process>)> StartThread()
    {
        var queue = new BlockingCollection<(ProcessStartInfo, TaskCompletionSource<Process>)>();
        var thread = new Thread(() =>
        {
            foreach ((ProcessStartInfo start, TaskCompletionSource<Process> started) in queue.GetConsumingEnumerable())
            {
                try
                {
                    started.SetResult(Process.Start(start) ?? throw new InvalidOperationException($"'{start.FileName}' did not start."));
                }
                catch (Exception ex)
                {
                    // Whatever failed belongs to the caller; this thread must live on for the next launch.
                    started.SetException(ex);
                }
            }
        })
        {
            IsBackground = true,
            Name = "LlmPq process spawner",
        };
        thread.Start();
        return queue;
    }
}
