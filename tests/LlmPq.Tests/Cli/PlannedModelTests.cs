using System.Diagnostics;
using LlmPq.Host.Commands;
using LlmPq.Planning;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Cli;

/// <summary>Where <c>serve --cluster</c> and <c>demo</c> keep the model quantized by their plan.</summary>
[Collection(NativeTests.Name)]
public sealed class PlannedModelTests
{
    private const string Cluster = """{"devices":[{"kind":"CPU","name":"a","memoryGiB":1,"threads":1},{"kind":"CPU","name":"b","memoryGiB":1,"threads":1}]}""";

    [Fact]
    public async Task Sources_of_the_same_name_get_their_own_planned_model_and_one_source_reuses_its_own()
    {
        string first = Path.Combine(TestModels.TempPath("a"), "model.gguf");
        string second = Path.Combine(TestModels.TempPath("b"), "model.gguf");
        foreach (string path in (string[])[first, second])
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.Copy(TestModels.Small, path);
        }

        var workload = new Workload(2, 64, 64);
        (Plan plan, string quantized) = await PlannedModel.PlanAndQuantizeAsync(first, ClusterSpec.Parse(Cluster), workload, NullLoggerFactory.Instance, CancellationToken.None);
        try
        {
            Assert.NotEqual(quantized, PlannedModel.OutputPath(second, plan));
            Assert.Equal("model.planned.gguf", Path.GetFileName(quantized));
            DateTime written = File.GetLastWriteTimeUtc(quantized);
            File.SetLastAccessTimeUtc(quantized, written.AddDays(-1));

            (_, string again) = await PlannedModel.PlanAndQuantizeAsync(first, ClusterSpec.Parse(Cluster), workload, NullLoggerFactory.Instance, CancellationToken.None);

            Assert.Equal(quantized, again);
            Assert.Equal(written, File.GetLastWriteTimeUtc(again));
            Assert.True(File.GetLastAccessTimeUtc(again) >= written, "reuse marks the planned model used");
            Assert.Single(Directory.GetFiles(Path.GetDirectoryName(quantized)!));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(quantized)!, recursive: true);
        }
    }

    [Fact]
    public void The_cache_lists_its_models_by_last_use_and_prunes_only_those_unused_since_the_cut_off()
    {
        string folder = TestModels.TempPath("planned-cache");
        string Model(string key, int bytes, double daysAgo)
        {
            string path = Path.Combine(folder, key, "m.planned.gguf");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, new byte[bytes]);
            DateTime when = DateTime.UtcNow.AddDays(-daysAgo);
            File.SetLastWriteTimeUtc(path, when.AddDays(-30));
            File.SetLastAccessTimeUtc(path, when);
            return path;
        }

        string old = Model("old", 100, daysAgo: 10);
        string recent = Model("recent", 200, daysAgo: 1);
        Directory.CreateDirectory(Path.Combine(folder, "empty")); // no model: not an entry, never removed

        IReadOnlyList<PlannedModelCache.Entry> entries = PlannedModelCache.List(folder);
        Assert.Equal([recent, old], entries.Select(e => e.Path));
        Assert.Equal([200L, 100L], entries.Select(e => e.Bytes));

        IReadOnlyList<PlannedModelCache.Entry> removed = PlannedModelCache.Prune(entries, DateTime.UtcNow.AddDays(-7));
        Assert.Equal([old], removed.Select(e => e.Path));
        Assert.False(Directory.Exists(Path.GetDirectoryName(old)));
        Assert.True(File.Exists(recent));
        Assert.True(Directory.Exists(Path.Combine(folder, "empty")));
        Assert.Empty(PlannedModelCache.List(Path.Combine(folder, "missing")));
    }

    [Fact]
    public void A_model_a_running_process_holds_is_never_pruned()
    {
        string folder = TestModels.TempPath("planned-held");
        string model = Path.Combine(folder, "k", "m.planned.gguf");
        Directory.CreateDirectory(Path.GetDirectoryName(model)!);
        File.WriteAllBytes(model, new byte[10]);
        using Process ended = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        ended.WaitForExit();
        File.WriteAllText(Path.Combine(folder, "k", $"in-use-{ended.Id}"), string.Empty); // a server that died: no hold

        IDisposable hold = PlannedModelCache.Use(model);
        File.SetLastAccessTimeUtc(model, DateTime.UtcNow.AddDays(-30));
        File.SetLastWriteTimeUtc(model, DateTime.UtcNow.AddDays(-30));
        PlannedModelCache.Entry entry = Assert.Single(PlannedModelCache.List(folder));
        Assert.True(entry.InUse);
        Assert.Empty(PlannedModelCache.Prune(PlannedModelCache.List(folder), DateTime.UtcNow));
        Assert.True(File.Exists(model));

        hold.Dispose();
        Assert.False(Assert.Single(PlannedModelCache.List(folder)).InUse);
        Assert.Equal([model], PlannedModelCache.Prune(PlannedModelCache.List(folder), DateTime.UtcNow).Select(e => e.Path));
        Assert.False(File.Exists(model));
    }

    [Fact]
    public void The_cache_command_lists_and_refuses_a_negative_age()
    {
        CliRunner.Result listed = CliRunner.Run("planned-cache");
        Assert.Equal(0, listed.ExitCode);
        Assert.Contains("planned models,", listed.StandardOutput, StringComparison.Ordinal);

        CliRunner.Result refused = CliRunner.Run("planned-cache", "--prune", "--unused-days", "-1");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("--unused-days must be", refused.StandardError, StringComparison.Ordinal);
    }
}
