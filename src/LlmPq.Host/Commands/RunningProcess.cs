using System.ComponentModel;
using System.Diagnostics;

namespace LlmPq.Host.Commands;

/// <summary>Whether a process id still names a running process: for markers and folders named by the process that made them.</summary>
internal static class RunningProcess
{
    /// <summary>Gets whether process <paramref name="pid"/> runs.</summary>
    /// <param name="pid">The process id.</param>
    /// <returns>True while it runs; false once it has exited, or when it cannot be seen.</returns>
    public static bool Is(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or Win32Exception)
        {
            return false;
        }
    }
}
