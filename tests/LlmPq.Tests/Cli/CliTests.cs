using System.Security.Cryptography;
using System.Text.Json;
using LlmPq.Gguf;

namespace LlmPq.Tests.Cli;

/// <summary>The <c>make-model</c> and <c>info</c> commands, run as processes, and how <c>llmpq</c> is built to run.</summary>
public sealed class CliTests
{
    [Fact]
    public void Llmpq_and_its_runner_compile_every_method_once_so_no_recompiling_thread_takes_a_stage_s_core()
    {
        using JsonDocument config = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "llmpq.runtimeconfig.json")));

        JsonElement properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.False(properties.GetProperty("System.Runtime.TieredCompilation").GetBoolean());
    }

    [Fact]
    public void Make_model_writes_the_requested_shape_and_info_json_describes_it()
    {
        string path = TestModels.TempPath("cli.gguf");
        CliRunner.Result made = CliRunner.Run("make-model", "--out", path, "--layers", "3", "--embd", "128", "--ff", "256", "--heads", "4", "--kv-heads", "2", "--seed", "7", "--vocab", TestModels.VocabularyPath);
        Assert.True(made.ExitCode == 0, made.StandardError);

        CliRunner.Result info = CliRunner.Run("info", path, "--json");
        Assert.True(info.ExitCode == 0, info.StandardError);
        using JsonDocument doc = JsonDocument.Parse(info.StandardOutput);
        JsonElement root = doc.RootElement;
        Assert.Equal("llama", root.GetProperty("architecture").GetString());
        Assert.Equal(3, root.GetProperty("layerCount").GetInt32());
        Assert.Equal(128, root.GetProperty("embeddingLength").GetInt32());
        Assert.Equal(32000, root.GetProperty("vocabularySize").GetInt32());

        GgufFile file = GgufReader.Read(path);
        JsonElement[] tensors = [.. root.GetProperty("tensors").EnumerateArray()];
        Assert.Equal(file.Tensors.Count, tensors.Length);
        JsonElement k = tensors.Single(t => t.GetProperty("name").GetString() == "blk.2.attn_k.weight");
        Assert.Equal("f16", k.GetProperty("type").GetString());
        Assert.Equal(128 * 64 * 2, k.GetProperty("bytes").GetInt64()); // 2 kv heads of 32 → 64 wide, f16
        Assert.Equal("f32", tensors.Single(t => t.GetProperty("name").GetString() == "output_norm.weight").GetProperty("type").GetString());
    }

    [Fact]
    public void Make_model_is_byte_identical_for_the_same_arguments()
    {
        string a = TestModels.TempPath("a.gguf");
        string b = TestModels.TempPath("b.gguf");
        string[] common = ["--layers", "2", "--embd", "64", "--ff", "128", "--type", "f32", "--vocab", TestModels.VocabularyPath];
        Assert.Equal(0, CliRunner.Run(["make-model", "--out", a, .. common]).ExitCode);
        Assert.Equal(0, CliRunner.Run(["make-model", "--out", b, .. common]).ExitCode);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(a)), SHA256.HashData(File.ReadAllBytes(b)));
    }

    [Fact]
    public void Make_model_writes_a_named_chat_template_byte_identically()
    {
        string a = TestModels.TempPath("hermes-a.gguf");
        string b = TestModels.TempPath("hermes-b.gguf");
        string[] common = ["--layers", "1", "--embd", "32", "--ff", "32", "--heads", "2", "--kv-heads", "2", "--chat-template", "hermes", "--vocab", TestModels.VocabularyPath];
        Assert.Equal(0, CliRunner.Run(["make-model", "--out", a, .. common]).ExitCode);
        Assert.Equal(0, CliRunner.Run(["make-model", "--out", b, .. common]).ExitCode);

        Assert.Equal(SHA256.HashData(File.ReadAllBytes(a)), SHA256.HashData(File.ReadAllBytes(b)));
        Assert.Equal(ChatTemplateLibrary.Hermes, GgufReader.Read(a).GetString("tokenizer.chat_template"));
    }

    [Fact]
    public void Make_model_reads_a_chat_template_file_and_refuses_an_unknown_name()
    {
        string template = TestModels.TempPath("template.jinja");
        File.WriteAllText(template, "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
        string path = TestModels.TempPath("file-template.gguf");
        string[] shape = ["--layers", "1", "--embd", "32", "--ff", "32", "--heads", "2", "--kv-heads", "2", "--vocab", TestModels.VocabularyPath];

        CliRunner.Result made = CliRunner.Run(["make-model", "--out", path, "--chat-template", template, .. shape]);
        Assert.True(made.ExitCode == 0, made.StandardError);
        Assert.Equal(File.ReadAllText(template), GgufReader.Read(path).GetString("tokenizer.chat_template"));

        CliRunner.Result refused = CliRunner.Run(["make-model", "--out", TestModels.TempPath("x.gguf"), "--chat-template", "no-such-template", .. shape]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("hermes", refused.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void Info_prints_a_readable_table()
    {
        CliRunner.Result info = CliRunner.Run("info", TestModels.Small);
        Assert.True(info.ExitCode == 0, info.StandardError);
        Assert.Contains("architecture      llama", info.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("blk.3", info.StandardOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("truncate")]
    [InlineData("corrupt-count")]
    [InlineData("not-gguf")]
    [InlineData("missing")]
    public void Info_on_a_bad_file_exits_non_zero_with_one_line(string damage)
    {
        string path = TestModels.TempPath("bad.gguf");
        switch (damage)
        {
            case "truncate":
                File.WriteAllBytes(path, File.ReadAllBytes(TestModels.Small)[..4000]);
                break;
            case "corrupt-count":
                byte[] bytes = File.ReadAllBytes(TestModels.Small);
                BitConverter.GetBytes(long.MaxValue / 3).CopyTo(bytes, 8); // the tensor count
                File.WriteAllBytes(path, bytes);
                break;
            case "not-gguf":
                File.WriteAllText(path, "hello");
                break;
        }

        CliRunner.Result info = CliRunner.Run("info", path);
        Assert.NotEqual(0, info.ExitCode);
        string[] lines = info.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("llmpq: error: ", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", info.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void Tool_check_refuses_bad_counts_naming_the_flags()
    {
        CliRunner.Result result = CliRunner.Run("tool-check", "--runs", "0");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--runs", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void Tool_check_counts_valid_forced_calls_per_template()
    {
        CliRunner.Result result = CliRunner.Run("tool-check", "--runs", "1", "--layers", "1");
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Matches(@"hermes\s+1/1\s+1/1", result.StandardOutput);
        Assert.Matches(@"llama3\.1\s+1/1\s+1/1", result.StandardOutput);
    }
}
