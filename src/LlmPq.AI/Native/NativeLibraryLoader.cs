using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace LlmPq.Native;

/// <summary>
/// Finds the pinned llama.cpp build and checks its version before any binding call runs.
/// Search order: <c>LLMPQ_LLAMA_DIR</c>, then the cache that <c>eng/build-native.sh</c> fills
/// (<c>LLMPQ_NATIVE_CACHE</c>, else <c>$XDG_CACHE_HOME/llmpq</c>, else <c>~/.cache/llmpq</c>), CUDA flavor first.
/// An empty cache is filled on first use by running that script, whose progress reaches standard error, and a tool the
/// cache lacks (the tools build apart, after the libraries) the same way; <c>LLMPQ_SKIP_NATIVE=1</c> turns both off.
/// </summary>
internal static class NativeLibraryLoader
{
    /// <summary>The node-llama-cpp package version the native build script pins.</summary>
    public const string NodeLlamaCppVersion = "3.22.1";

    /// <summary>The ggml version of that llama.cpp release; a library reporting another is refused.</summary>
    public const string PinnedGgmlVersion = "0.25.1";

    private static readonly Lazy<string> s_directory = new(FindDirectory);
    private static readonly Lazy<IntPtr> s_ggmlBase = new(() => LoadCheckedGgmlBase(Directory));
    private static readonly Lock s_toolBuild = new();
    private static int s_registered;

    /// <summary>Gets the folder holding <c>libllama.so</c> and the llama.cpp tools of the same build.</summary>
    public static string Directory => s_directory.Value;

    /// <summary>Installs the import resolver for this assembly; later calls do nothing.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);
        }
    }

    /// <summary>
    /// Gets the path of a tool (for example <c>ggml-rpc-server</c>) of the same build, building the tools into the
    /// cache first when it lacks this one.
    /// </summary>
    public static string ToolPath(string name) => ToolPath(Directory, name, BuildScript());

    /// <summary>Gets the path of a tool in <paramref name="directory"/>, running <paramref name="buildScript"/> <c>--tools</c> first when it is missing there.</summary>
    internal static string ToolPath(string directory, string name, string? buildScript)
    {
        string path = Path.Combine(directory, name);
        if (!File.Exists(path) && buildScript is not null)
        {
            // Threads that want a tool at once wait for one build; processes wait on the script's lock.
            lock (s_toolBuild)
            {
                if (!File.Exists(path))
                {
                    RunBuildScript(buildScript, "--tools");
                }
            }
        }

        return File.Exists(path)
            ? path
            : throw new FileNotFoundException($"The llama.cpp build in '{directory}' has no '{name}' ('bash eng/build-native.sh --tools' builds the tools into the cache).", path);
    }

    /// <summary>
    /// Gets the script that builds llama.cpp into the cache (<c>eng/build-native.sh</c> of the source tree this assembly
    /// was built from), or null where it must not run: <c>LLMPQ_LLAMA_DIR</c> names another build,
    /// <c>LLMPQ_SKIP_NATIVE=1</c>, Windows, or a tree that is gone.
    /// </summary>
    internal static string? BuildScript()
    {
        string? script = typeof(NativeLibraryLoader).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "LlmPq.NativeBuildScript")?.Value;
        return string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LLMPQ_LLAMA_DIR"))
            && Environment.GetEnvironmentVariable("LLMPQ_SKIP_NATIVE") != "1"
            && !OperatingSystem.IsWindows()
            && File.Exists(script)
            ? script
            : null;
    }

    /// <summary>
    /// Runs the build script and returns the folder it prints on its last line. Its standard error stays this process's,
    /// so its progress reaches the user as it happens.
    /// </summary>
    internal static string RunBuildScript(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new LlamaException($"bash did not start '{script}'.");
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return process.ExitCode == 0 && lines.Length > 0
            ? lines[^1]
            : throw new LlamaException($"'{script} {string.Join(' ', arguments)}' failed (exit code {process.ExitCode}); its messages are above on standard error.");
    }

    /// <summary>Lists the folders searched, in order, for error messages and diagnostics.</summary>
    public static IReadOnlyList<string> Candidates()
    {
        var list = new List<string>();
        string? explicitDir = Environment.GetEnvironmentVariable("LLMPQ_LLAMA_DIR");
        if (!string.IsNullOrEmpty(explicitDir))
        {
            list.Add(explicitDir);
            return list; // an explicit choice is never silently replaced by the cache
        }

        string cache = CacheRoot();
        foreach (string flavor in new[] { "cuda", "cpu" })
        {
            list.Add(Path.Combine(cache, $"llama-node-llama-cpp-{NodeLlamaCppVersion}-{flavor}"));
        }

        return list;
    }

    /// <summary>Gets the folder <c>eng/build-native.sh</c> caches its builds in (the stage launcher's <c>bin</c> included), whether or not <c>LLMPQ_LLAMA_DIR</c> is set.</summary>
    public static string CacheRoot()
    {
        string? cache = Environment.GetEnvironmentVariable("LLMPQ_NATIVE_CACHE");
        if (!string.IsNullOrEmpty(cache))
        {
            return cache;
        }

        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = string.IsNullOrEmpty(xdg)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache")
            : xdg;
        return Path.Combine(root, "llmpq");
    }

    private static string FindDirectory()
    {
        IReadOnlyList<string> candidates = Candidates();
        foreach (string dir in candidates)
        {
            if (File.Exists(Path.Combine(dir, "libllama.so")))
            {
                return dir;
            }
        }

        if (BuildScript() is string script && RunBuildScript(script) is var built && File.Exists(Path.Combine(built, "libllama.so")))
        {
            return built;
        }

        throw new DllNotFoundException(
            $"No llama.cpp build found (looked in: {string.Join(", ", candidates)}). " +
            "Run 'bash eng/build-native.sh' (LlmPq runs it on first use unless LLMPQ_SKIP_NATIVE=1), " +
            "or set LLMPQ_LLAMA_DIR to the library folder of an existing llama.cpp build.");
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        string file = libraryName switch
        {
            LlamaNative.Library => "libllama.so",
            GgmlNative.Library => "libggml-base.so",
            GgmlBackendNative.Library => "libggml.so",
            LlmPqChatNative.Library => LlmPqChatNative.FileName, // built beside libllama.so by eng/native/build-chat.sh
            _ => string.Empty,
        };
        if (file.Length == 0)
        {
            return IntPtr.Zero;
        }

        // Every library of the build depends on ggml-base, so its version check guards them all.
        IntPtr ggmlBase = s_ggmlBase.Value;
        return libraryName == GgmlNative.Library ? ggmlBase : NativeLibrary.Load(Path.Combine(Directory, file));
    }

    /// <summary>Loads <c>libggml-base.so</c> from <paramref name="directory"/> and refuses it unless it is the pinned ggml version.</summary>
    internal static unsafe IntPtr LoadCheckedGgmlBase(string directory)
    {
        IntPtr ggmlBase = NativeLibrary.Load(Path.Combine(directory, "libggml-base.so"));

        // Read through the raw export: the typed binding cannot be used while its own library is resolving.
        var version = (delegate* unmanaged[Cdecl]<byte*>)NativeLibrary.GetExport(ggmlBase, "ggml_version");
        string actual = Marshal.PtrToStringUTF8((IntPtr)version()) ?? "?";
        if (actual != PinnedGgmlVersion)
        {
            NativeLibrary.Free(ggmlBase);
            throw new LlamaException(
                $"The llama.cpp build in '{directory}' has ggml {actual}, but LlmPq binds ggml {PinnedGgmlVersion} " +
                $"(node-llama-cpp {NodeLlamaCppVersion}). Rebuild with eng/build-native.sh or point LLMPQ_LLAMA_DIR at a build of that version.");
        }

        return ggmlBase;
    }
}
