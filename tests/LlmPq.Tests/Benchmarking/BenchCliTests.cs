using System.Globalization;
using System.Text.Json;
using LlmPq.Tests.Cli;

namespace LlmPq.Tests.Benchmarking;

/// <summary><c>llmpq bench</c> run as a process, as a user would, with tiny sizes.</summary>
[Collection(NativeTests.Name)]
public sealed class BenchCliTests
{
    [Fact]
    public void Bench_json_runs_the_in_process_target_and_writes_the_results_folder()
    {
        string folder = TestModels.TempPath("bench");
        CliRunner.Result bench = CliRunner.Run(
            "bench", "--model", TestModels.Small, "--json", "--requests", "4", "--qps", "40", "--prompt-tokens", "64", "--output-tokens", "4",
            "--parallel", "2", "--token-budget", "32", "--ctx", "256", "--threads", "2", "--out", folder);
        Assert.True(bench.ExitCode == 0, bench.StandardError);

        using JsonDocument doc = JsonDocument.Parse(bench.StandardOutput);
        JsonElement run = Assert.Single(doc.RootElement.EnumerateArray());
        Assert.Equal("in-process", run.GetProperty("target").GetString());
        Assert.Equal("sarathi", run.GetProperty("policy").GetString());
        Assert.Equal(4, run.GetProperty("completed").GetInt32());
        Assert.Equal(0, run.GetProperty("failed").GetInt32());
        Assert.Equal(64, run.GetProperty("promptTokensMean").GetDouble());   // counted with the model's own tokenizer and template
        foreach (string field in new[] { "throughputTokensPerSecond", "ttftP50Ms", "ttftP99Ms", "tbtP50Ms", "tbtP99Ms", "schedulingDelayP50Ms" })
        {
            Assert.True(run.GetProperty(field).ValueKind is JsonValueKind.Number or JsonValueKind.Null, field);
        }

        Assert.True(run.GetProperty("throughputTokensPerSecond").GetDouble() > 0);
        Assert.True(File.Exists(Path.Combine(folder, "results.json")));
        Assert.True(File.Exists(Path.Combine(folder, "tbt.svg")));
        Assert.True(File.Exists(Path.Combine(folder, "report.html")));
        Assert.Contains("sent 4/4", bench.StandardError, StringComparison.Ordinal);   // the progress line went to standard error
    }

    [Fact]
    public void Bench_refuses_a_bad_trace_row_with_its_line_number()
    {
        string trace = TestModels.TempPath("trace.csv");
        File.WriteAllText(trace, "arrival_s,prompt_tokens,completion_tokens\n0,16,4\n0.1,sixteen,4\n");
        CliRunner.Result bench = CliRunner.Run("bench", "--model", TestModels.Small, "--trace", trace, "--out", TestModels.TempPath("bench"));
        Assert.Equal(1, bench.ExitCode);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{Path.GetFileName(trace)} line 3: prompt_tokens 'sixteen'"), bench.StandardError, StringComparison.Ordinal);
        Assert.Equal(string.Empty, bench.StandardOutput);
    }

    [Fact]
    public void Bench_runs_conversations_after_a_shared_prefix_and_reports_each_turn()
    {
        string folder = TestModels.TempPath("bench");
        CliRunner.Result bench = CliRunner.Run(
            "bench", "--model", TestModels.Small, "--json", "--requests", "3", "--turns", "2", "--shared-prefix-tokens", "32", "--prompt-tokens", "48", "--output-tokens", "4",
            "--parallel", "2", "--ctx", "256", "--threads", "2", "--out", folder);
        Assert.True(bench.ExitCode == 0, bench.StandardError);

        using JsonDocument doc = JsonDocument.Parse(bench.StandardOutput);
        JsonElement run = Assert.Single(doc.RootElement.EnumerateArray());
        Assert.Equal(6, run.GetProperty("completed").GetInt32());   // three conversations of two turns
        Assert.Equal(2, run.GetProperty("ttftP50MsByTurn").GetArrayLength());

        // Sent less new is what the workload repeats on purpose: each first message (the prefix and 48 tokens, as
        // counted) once more in its second turn, and the prefix of the first turn, but for the first to send it.
        Assert.Equal((3 * ((32 + 48) + 32)) - 32, run.GetProperty("promptTokensSent").GetInt64() - run.GetProperty("promptTokensNew").GetInt64());
        Assert.Contains("sent 6/6", bench.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--turns 0", "--turns must be 1 or more; it is 0.")]
    [InlineData("--shared-prefix-tokens -8", "--shared-prefix-tokens must be 0 or more; it is -8.")]
    [InlineData("--turns two", "--turns")]
    [InlineData("--turns 10 --prompt-tokens 128 --output-tokens 64 --ctx 1024", "needs 1920 tokens (shared prefix, and prompt and output of every turn); --ctx is 1024")]
    [InlineData("--shared-prefix-tokens 1024 --prompt-tokens 64 --output-tokens 64 --ctx 1024", "needs 1152 tokens")]
    [InlineData("--turns 10 --prompt-tokens 200 --output-tokens 64 --ctx 4096", "needs 2640 tokens (shared prefix, and prompt and output of every turn); the model was trained for 2048 tokens")]
    [InlineData("--target llama-server-default", "--target 'llama-server-default' is not")]
    public void Bench_refuses_bad_reuse_settings_naming_the_flag(string arguments, string error)
    {
        CliRunner.Result bench = CliRunner.Run(["bench", "--model", TestModels.Small, "--out", TestModels.TempPath("bench"), .. arguments.Split(' ')]);
        Assert.Equal(1, bench.ExitCode);
        Assert.Contains(error, bench.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("results in", bench.StandardError, StringComparison.Ordinal);   // nothing ran (a parse error prints the help)
    }
}
