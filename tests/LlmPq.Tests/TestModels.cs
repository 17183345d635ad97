using System.Runtime.CompilerServices;
using LlmPq.Gguf;
using LlmPq.Native;

namespace LlmPq.Tests;

/// <summary>Tiny generated models shared by the tests of one run, written once into a temporary folder.</summary>
public static class TestModels
{
    private const string FolderPrefix = "llmpq-tests-";

    private static readonly Lazy<string> s_folder = new(() =>
    {
        RemoveFoldersOfEndedRuns();
        string dir = Path.Combine(Path.GetTempPath(), $"{FolderPrefix}{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, recursive: true);
        return dir;
    });

    /// <summary>
    /// Keeps what the tests plan and quantize (<c>PlannedModel</c>'s cache in the local data folder, for this process and
    /// the servers it starts) in the run's folder, deleted with it: each run's models are new files, so they would
    /// otherwise pile up in the user's folder.
    /// </summary>
#pragma warning disable CA2255 // The test assembly's own set-up, not a library's.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void KeepLocalDataInTheRunFolder() => Environment.SetEnvironmentVariable("XDG_DATA_HOME", Path.Combine(s_folder.Value, "data"));

    private static readonly Lazy<string> s_small = new(() => Write("small", new TinyLlamaModelOptions { Layers = 4, EmbeddingLength = 256, FeedForwardLength = 512, VocabularyPath = VocabularyPath }));

    /// <summary>
    /// Removes the folders of earlier runs whose process has ended: the test host is often stopped without its exit
    /// handlers running, and each run's folder holds hundreds of MiB of models.
    /// </summary>
    internal static void RemoveFoldersOfEndedRuns()
    {
        foreach (string dir in Directory.EnumerateDirectories(Path.GetTempPath(), FolderPrefix + "*"))
        {
            if (int.TryParse(Path.GetFileName(dir).AsSpan(FolderPrefix.Length), out int pid) && pid != Environment.ProcessId && !LlmPq.Host.Commands.RunningProcess.Is(pid))
            {
                try
                {
                    Directory.Delete(dir, recursive: true);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Another run is removing it too, or it is not ours to remove.
                }
            }
        }
    }

    /// <summary>Gets the llama.cpp vocab-only GGUF the native build ships (a real SentencePiece vocabulary).</summary>
    public static string VocabularyPath => Path.Combine(NativeLibraryLoader.Directory, "ggml-vocab-llama-spm.gguf");

    /// <summary>Gets a 4-layer, 256-wide F16 llama model.</summary>
    public static string Small => s_small.Value;

    /// <summary>Gets a fresh path in the run's temporary folder.</summary>
    public static string TempPath(string name) => Path.Combine(s_folder.Value, $"{Guid.NewGuid():N}-{name}");

    /// <summary>Writes a model with the given options into the run's temporary folder.</summary>
    public static string Write(string name, TinyLlamaModelOptions options)
    {
        string path = TempPath(name + ".gguf");
        TinyLlamaModel.Write(path, options);
        return path;
    }
}
