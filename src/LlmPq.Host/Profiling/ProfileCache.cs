using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Planning;

namespace LlmPq.Host.Profiling;

/// <summary>
/// Earlier profiles, one file per measurement, named by the hash of everything the times depend on: the device
/// (kind, threads, endpoint, host), the model's shape, the types, the grid and the llama.cpp build.
/// </summary>
/// <param name="folder">The cache folder.</param>
internal sealed class ProfileCache(string folder)
{
    /// <summary>Gets the default folder: <c>$XDG_CACHE_HOME/llmpq/profiles</c>, else <c>~/.cache/llmpq/profiles</c>.</summary>
    public static string DefaultFolder =>
        Path.Combine(
            Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
            "llmpq",
            "profiles");

    /// <summary>Gets the folder.</summary>
    public string Folder => folder;

    // Bumped when what a measurement means changes (2: the hop's bytes count the attention mask; 3: 9-layer long probes; 4: one thread on this side of a stage server), so older entries are measured again.
    private const int MeasurementVersion = 4;

    /// <summary>Gets the key of a measurement.</summary>
    /// <param name="device">The device: its kind, threads, endpoint and host count, not its name or memory.</param>
    /// <param name="shape">The model's <see cref="Planner.ShapeFingerprint"/>.</param>
    /// <param name="types">The measured types.</param>
    /// <param name="grid">The grid.</param>
    /// <returns>The key, 16 hexadecimal digits.</returns>
    public static string Key(DeviceSpec device, string shape, IReadOnlyList<GgmlType> types, ProfileGrid grid)
    {
        ArgumentNullException.ThrowIfNull(device);
        var text = new StringBuilder()
            .Append(device.Kind).Append('|').Append(device.Threads).Append('|').Append(device.Endpoint).Append('|').Append(device.Host)
            .Append('|').Append(shape)
            .Append('|').AppendJoin(',', types.Select(GgmlTypes.Name))
            .Append('|').AppendJoin(',', grid.Prefill).Append('|').AppendJoin(',', grid.Decode).Append('|').Append(grid.Repeats)
            .Append('|').Append(LlamaBackend.GgmlVersion).Append('|').Append(MeasurementVersion);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    /// <summary>Reads the profile of <paramref name="key"/>, or null when there is none (or it cannot be read).</summary>
    /// <param name="key">The key.</param>
    /// <returns>The profile, or null.</returns>
    public DeviceProfile? TryGet(string key)
    {
        string path = PathOf(key);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<DeviceProfile>(File.ReadAllText(path), PlanningJson.Options) : null;
        }
        catch (JsonException)
        {
            return null; // a damaged entry is measured again
        }
    }

    /// <summary>Stores a profile under <paramref name="key"/>, whole or not at all.</summary>
    /// <param name="key">The key.</param>
    /// <param name="profile">The profile.</param>
    public void Put(string key, DeviceProfile profile)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.Write(PathOf(key), JsonSerializer.Serialize(profile, PlanningJson.Options));
    }

    private string PathOf(string key) => Path.Combine(folder, key + ".json");
}

/// <summary>Replaces a file whole: a temporary file beside it, then a rename, so an interruption leaves the old file or the new one.</summary>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="text">Its new text.</param>
    public static void Write(string path, string text)
    {
        string full = Path.GetFullPath(path);
        string partial = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.partial");
        try
        {
            File.WriteAllText(partial, text);
            File.Move(partial, full, overwrite: true);
        }
        finally
        {
            File.Delete(partial);
        }
    }
}
