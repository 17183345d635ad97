using System.Diagnostics;
using LlmPq.Native;

namespace LlmPq.Tests.Native;

/// <summary>The first-use build of llama.cpp: tools built on demand, and the progress its script shows.</summary>
public sealed class NativeBuildTests
{
    private static string Script => NativeLibraryLoader.BuildScript()
        ?? throw new InvalidOperationException("LlmPq.AI names no eng/build-native.sh (LLMPQ_LLAMA_DIR or LLMPQ_SKIP_NATIVE set?)");

    [Fact]
    public void A_missing_tool_is_built_with_the_tools_stage_and_then_found()
    {
        string build = Directory.CreateDirectory(TestModels.TempPath("build")).FullName;
        string script = FakeBuildScript($"[ \"$1\" = --tools ] && touch \"{build}/llama-fake\" && echo \"{build}\"");

        string path = NativeLibraryLoader.ToolPath(build, "llama-fake", script);

        Assert.Equal(Path.Combine(build, "llama-fake"), path);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void A_present_tool_builds_nothing()
    {
        string build = Directory.CreateDirectory(TestModels.TempPath("build")).FullName;
        File.WriteAllText(Path.Combine(build, "llama-fake"), string.Empty);
        string script = FakeBuildScript("exit 1");

        Assert.Equal(Path.Combine(build, "llama-fake"), NativeLibraryLoader.ToolPath(build, "llama-fake", script));
    }

    [Fact]
    public void A_tool_the_build_does_not_make_is_reported_missing()
    {
        string build = Directory.CreateDirectory(TestModels.TempPath("build")).FullName;
        string script = FakeBuildScript($"echo \"{build}\"");

        FileNotFoundException e = Assert.Throws<FileNotFoundException>(() => NativeLibraryLoader.ToolPath(build, "llama-fake", script));
        Assert.Contains("--tools", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_build_says_so()
    {
        string build = Directory.CreateDirectory(TestModels.TempPath("build")).FullName;
        string script = FakeBuildScript("exit 3");

        LlamaException e = Assert.Throws<LlamaException>(() => NativeLibraryLoader.ToolPath(build, "llama-fake", script));
        Assert.Contains("exit code 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_real_build_finds_every_tool_the_project_starts()
    {
        foreach (string tool in new[] { "ggml-rpc-server", "llama-server", "llama-bench", "llama-batched-bench", "llama-perplexity" })
        {
            Assert.True(File.Exists(NativeLibraryLoader.ToolPath(tool)), tool);
        }
    }

    [Theory]
    [InlineData("[ 41%] Building CXX object ggml/src/CMakeFiles/ggml-cpu.dir/ggml-cpu/ops.cpp.o\n[ 42%] Building CXX object src/CMakeFiles/llama.dir/llama-vocab.cpp.o\n", "42% (llama-vocab.cpp)")]
    [InlineData("[ 96%] Linking CXX shared library ../bin/libllama.so\nsome warning: text\n", "96% (libllama.so)")]
    [InlineData("[100%] Built target llama\n", "100% (llama)")]
    [InlineData("[120/300] Building CXX object src/CMakeFiles/llama.dir/llama.cpp.o\n", "40% (llama.cpp)")]
    [InlineData("-- Configuring done\n", "")]
    public void The_progress_is_the_last_step_cmake_logged(string log, string expected)
    {
        string file = TestModels.TempPath("build.log");
        File.WriteAllText(file, log);

        Assert.Equal(expected, Bash($"source \"{ProgressScript}\" && cmake_progress \"{file}\""));
    }

    [Fact]
    public void A_long_step_says_what_it_does_while_it_runs()
    {
        string log = TestModels.TempPath("build.log");
        string said = TestModels.TempPath("said.txt");

        // The step logs one line, then lasts until the progress line about it appears (or gives up after a minute).
        string step = $"echo '[ 42%] Building CXX object src/CMakeFiles/llama.dir/llama-vocab.cpp.o'; for i in {{1..300}}; do grep -q 42% '{said}' && exit 0; sleep 0.2; done; exit 1";
        Bash($"source \"{ProgressScript}\" && run_with_progress 'building the libraries' '{log}' bash -c \"{step}\" 2>'{said}'");

        Assert.Contains("building the libraries: 42% (llama-vocab.cpp)", File.ReadAllText(said), StringComparison.Ordinal);
    }

    private static string ProgressScript => Path.Combine(Path.GetDirectoryName(Script)!, "native", "progress.sh");

    private static string FakeBuildScript(string body)
    {
        string path = TestModels.TempPath("build-native.sh");
        File.WriteAllText(path, body + "\n");
        return path;
    }

    private static string Bash(string command)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using Process process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return output.TrimEnd('\n');
    }
}
