namespace LlmPq.Tests.Gguf;

/// <summary>Finds llama.cpp's vocab-only GGUF of the LLaMA SentencePiece tokenizer (32000 tokens).</summary>
internal static class TestVocab
{
    private const string FileName = "ggml-vocab-llama-spm.gguf";
    private const string Pinned = "3.22.1";

    private static readonly Lazy<string> s_path = new(Find);

    /// <summary>Gets the path of <c>ggml-vocab-llama-spm.gguf</c>.</summary>
    public static string LlamaSpmPath => s_path.Value;

    private static string Find()
    {
        // Same places as eng/build-native.sh: an explicit build, the build cache, then the cached llama.cpp source.
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("LLMPQ_LLAMA_DIR") is { Length: > 0 } llamaDir)
        {
            candidates.Add(Path.Combine(llamaDir, FileName));
        }

        string cache = Environment.GetEnvironmentVariable("LLMPQ_NATIVE_CACHE") is { Length: > 0 } explicitCache
            ? explicitCache
            : Path.Combine(
                Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
                "llmpq");
        foreach (string flavor in new[] { "cuda", "cpu" })
        {
            candidates.Add(Path.Combine(cache, $"llama-node-llama-cpp-{Pinned}-{flavor}", FileName));
        }

        foreach (string flavor in new[] { "cuda", "cpu" })
        {
            candidates.Add(Path.Combine(cache, $"work-{Pinned}-{flavor}", "src", "models", FileName));
        }

        return candidates.FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"{FileName} not found; build llama.cpp (eng/build-native.sh) or set LLMPQ_LLAMA_DIR. Looked at: {string.Join(", ", candidates)}");
    }
}
