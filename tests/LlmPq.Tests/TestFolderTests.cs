using System.Diagnostics;

namespace LlmPq.Tests;

/// <summary>The test runs' temporary folders: a run removes those of runs that ended without removing their own.</summary>
public sealed class TestFolderTests
{
    [Fact]
    public void A_run_removes_the_folders_of_ended_runs_and_keeps_those_of_live_ones()
    {
        using Process ended = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        ended.WaitForExit();
        string stale = Path.Combine(Path.GetTempPath(), $"llmpq-tests-{ended.Id}");
        string live = Path.Combine(Path.GetTempPath(), "llmpq-tests-1"); // process 1 always runs
        Directory.CreateDirectory(Path.Combine(stale, "models"));
        File.WriteAllText(Path.Combine(stale, "models", "m.gguf"), "x");
        Directory.CreateDirectory(live);
        string own = Path.GetDirectoryName(TestModels.TempPath("x"))!;
        try
        {
            TestModels.RemoveFoldersOfEndedRuns();

            Assert.False(Directory.Exists(stale));
            Assert.True(Directory.Exists(live));
            Assert.True(Directory.Exists(own), "this run's own folder stays");
        }
        finally
        {
            Directory.Delete(live, recursive: true);
            if (Directory.Exists(stale))
            {
                Directory.Delete(stale, recursive: true);
            }
        }
    }
}
