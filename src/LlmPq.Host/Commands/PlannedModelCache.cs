using System.CommandLine;
using System.Globalization;
using LlmPq.Planning;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq planned-cache</c>: the models that <c>serve --cluster</c>, <c>demo</c> and <c>plan --validate</c> quantized
/// by their plans, kept for reuse (<see cref="PlannedModel.CacheFolder"/>), with when each was last used; <c>--prune</c>
/// removes those unused for a number of days, but never one a running server holds (<see cref="Use"/>): its stages and
/// runner restart from it. Nothing is removed otherwise.
/// </summary>
internal static class PlannedModelCache
{
    private const string InUsePrefix = "in-use-";

    /// <summary>A cached planned model.</summary>
    /// <param name="Path">The quantized model.</param>
    /// <param name="Bytes">Its size with the rest of its folder (a quantization in progress, say).</param>
    /// <param name="LastUsed">When it was last written or reused (its access time, which reuse sets).</param>
    /// <param name="InUse">Whether a running process holds it (<see cref="Use"/>).</param>
    internal sealed record Entry(string Path, long Bytes, DateTime LastUsed, bool InUse);

    /// <summary>Marks <paramref name="model"/> as held by this process until the result is disposed, so that no prune removes it.</summary>
    /// <param name="model">A model in the cache.</param>
    /// <returns>The hold.</returns>
    public static IDisposable Use(string model)
    {
        string marker = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(model)!, $"{InUsePrefix}{Environment.ProcessId}");
        File.WriteAllText(marker, string.Empty);
        File.SetLastAccessTimeUtc(model, DateTime.UtcNow);
        return new Hold(marker);
    }

    /// <summary>Creates the <c>planned-cache</c> command.</summary>
    /// <returns>The command.</returns>
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
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"removed {removed.Count} planned models unused for {days:0.##} days ({ByteSize.Format(removed.Sum(e => e.Bytes))}); {entries.Count - removed.Count} kept"));
                return Task.FromResult(0);
            }

            foreach (Entry e in entries)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.LastUsed.ToLocalTime():yyyy-MM-dd HH:mm}  {ByteSize.Format(e.Bytes),10}  {(e.InUse ? "in use" : "      ")}  {e.Path}"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{entries.Count} planned models, {ByteSize.Format(entries.Sum(e => e.Bytes))} in {PlannedModel.CacheFolder}"));
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
            // Another process may be renaming, writing or removing files here: what vanishes is left out.
            try
            {
                FileInfo[] files = new DirectoryInfo(dir).GetFiles();
                FileInfo? model = files.FirstOrDefault(f => f.Name.EndsWith(".planned.gguf", StringComparison.Ordinal));
                if (model is not null)
                {
                    entries.Add(new Entry(model.FullName, files.Sum(f => f.Exists ? f.Length : 0), Latest(model.FullName), files.Any(IsHeld)));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
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
        foreach (Entry e in entries.Where(e => e.LastUsed < before && !e.InUse))
        {
            try
            {
                // Reused or taken since it was listed: keep it.
                string dir = System.IO.Path.GetDirectoryName(e.Path)!;
                if (File.Exists(e.Path) && Latest(e.Path) < before && !new DirectoryInfo(dir).GetFiles().Any(IsHeld))
                {
                    Directory.Delete(dir, recursive: true);
                    removed.Add(e);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A file in use where the system forbids removing it: the rest are still pruned.
            }
        }

        return removed;
    }

    // A marker of a process that still runs.
    private static bool IsHeld(FileInfo file) =>
        file.Name.StartsWith(InUsePrefix, StringComparison.Ordinal)
        && int.TryParse(file.Name.AsSpan(InUsePrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
        && RunningProcess.Is(pid);

    private static DateTime Latest(string path)
    {
        var info = new FileInfo(path);
        return info.LastAccessTimeUtc > info.LastWriteTimeUtc ? info.LastAccessTimeUtc : info.LastWriteTimeUtc;
    }

    private sealed class Hold(string marker) : IDisposable
    {
        public void Dispose() => File.Delete(marker);
    }
}
