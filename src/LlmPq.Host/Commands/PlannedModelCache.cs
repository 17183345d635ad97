using System.CommandLine;
using System.Globalization;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq planned-cache</c>: the models that <c>serve --cluster</c>, <c>demo</c> and <c>plan --validate</c> quantized
/// by their plans, kept for reuse (<see cref="PlannedModel.CacheFolder"/>), with when each was last used; <c>--prune</c>
/// removes those unused for a number of days. Nothing is removed otherwise: a running server may restart from its model.
/// </summary>
internal static class PlannedModelCache
{
    /// <summary>A cached planned model.</summary>
    /// <param name="Path">The quantized model.</param>
    /// <param name="Bytes">Its size with the rest of its folder (a quantization in progress, say).</param>
    /// <param name="LastUsed">When it was last written or reused (its access time, which reuse sets).</param>
    internal sealed record Entry(string Path, long Bytes, DateTime LastUsed);

    public static Command Create()
    {
        var prune = new Option<bool>("--prune") { Description = "Remove the planned models unused for --unused-days days." };
        var unusedDays = new Option<double>("--unused-days") { Description = "With --prune: remove models not written or reused for this many days (0: every one).", DefaultValueFactory = _ => 7 };
        var command = new Command("planned-cache", $"List the models quantized by plans and kept for reuse ({PlannedModel.CacheFolder}), or prune those unused for a while.")
        {
            prune, unusedDays,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(() =>
        {
            double days = parse.GetValue(unusedDays);
            if (!double.IsFinite(days) || days < 0)
            {
                throw new ArgumentException($"--unused-days must be a number of days, 0 or more (got {days.ToString(CultureInfo.InvariantCulture)}).");
            }

            IReadOnlyList<Entry> entries = List(PlannedModel.CacheFolder);
            if (parse.GetValue(prune))
            {
                IReadOnlyList<Entry> removed = Prune(entries, DateTime.UtcNow - TimeSpan.FromDays(days));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"removed {removed.Count} planned models unused for {days:0.##} days ({Size(removed.Sum(e => e.Bytes))}); {entries.Count - removed.Count} kept"));
                return Task.FromResult(0);
            }

            foreach (Entry e in entries)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.LastUsed.ToLocalTime():yyyy-MM-dd HH:mm}  {Size(e.Bytes),10}  {e.Path}"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{entries.Count} planned models, {Size(entries.Sum(e => e.Bytes))} in {PlannedModel.CacheFolder}"));
            return Task.FromResult(0);
        }));
        return command;
    }

    /// <summary>Lists the cached planned models under <paramref name="folder"/>, most recently used first.</summary>
    /// <param name="folder">The cache folder.</param>
    /// <returns>The entries; none when the folder does not exist.</returns>
    public static IReadOnlyList<Entry> List(string folder)
    {
        if (!Directory.Exists(folder))
        {
            return [];
        }

        var entries = new List<Entry>();
        foreach (string dir in Directory.EnumerateDirectories(folder))
        {
            string[] files = Directory.GetFiles(dir);
            string? model = files.FirstOrDefault(f => f.EndsWith(".planned.gguf", StringComparison.Ordinal));
            if (model is not null)
            {
                entries.Add(new Entry(model, files.Sum(f => new FileInfo(f).Length), Latest(model)));
            }
        }

        return [.. entries.OrderByDescending(e => e.LastUsed)];
    }

    /// <summary>Removes the entries last used before <paramref name="before"/>, each with its folder.</summary>
    /// <param name="entries">The entries.</param>
    /// <param name="before">The cut-off.</param>
    /// <returns>The removed entries.</returns>
    public static IReadOnlyList<Entry> Prune(IReadOnlyList<Entry> entries, DateTime before)
    {
        var removed = new List<Entry>();
        foreach (Entry e in entries.Where(e => e.LastUsed < before))
        {
            // Reused since it was listed: keep it.
            if (File.Exists(e.Path) && Latest(e.Path) < before)
            {
                Directory.Delete(Path.GetDirectoryName(e.Path)!, recursive: true);
                removed.Add(e);
            }
        }

        return removed;
    }

    private static DateTime Latest(string path)
    {
        var info = new FileInfo(path);
        return info.LastAccessTimeUtc > info.LastWriteTimeUtc ? info.LastAccessTimeUtc : info.LastWriteTimeUtc;
    }

    private static string Size(long bytes) => bytes >= 1L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0} MiB");
}
