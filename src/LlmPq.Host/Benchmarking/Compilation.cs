using System.Runtime;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// .NET's tiered compilation recompiles the methods a first run made hot on a background thread; on a machine whose
/// cores stage servers share, that thread takes a core from them for the next second or so. Measurements wait it out.
/// </summary>
internal static class Compilation
{
    /// <summary>Waits until this process has compiled no method for 300 ms (at most 6 s).</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A task that completes when compilation is quiet.</returns>
    public static async Task WaitUntilQuietAsync(CancellationToken cancellationToken)
    {
        TimeSpan quiet = TimeSpan.FromMilliseconds(300);
        long compiled = JitInfo.GetCompiledMethodCount();
        for (int i = 0; i < 20; i++)
        {
            await Task.Delay(quiet, cancellationToken).ConfigureAwait(false);
            long now = JitInfo.GetCompiledMethodCount();
            if (now == compiled)
            {
                return;
            }

            compiled = now;
        }
    }
}
