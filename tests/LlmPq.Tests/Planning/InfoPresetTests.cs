using System.Text.Json;
using LlmPq.Planning;
using LlmPq.Tests.Cli;

namespace LlmPq.Tests.Planning;

/// <summary><c>llmpq info --preset</c>, run as a process.</summary>
public sealed class InfoPresetTests
{
    [Fact]
    public void Info_prints_a_preset_as_a_table_and_as_json()
    {
        CliRunner.Result table = CliRunner.Run("info", "--preset", "llama-3.1-8b");
        Assert.True(table.ExitCode == 0, table.StandardError);
        Assert.Contains("architecture      llama", table.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("heads / kv heads  32 / 8", table.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("blk.31", table.StandardOutput, StringComparison.Ordinal);

        CliRunner.Result json = CliRunner.Run("info", "--preset", "LLAMA-3.1-8B", "--json");
        Assert.True(json.ExitCode == 0, json.StandardError);
        ModelSpec spec = JsonSerializer.Deserialize<ModelSpec>(json.StandardOutput, PlanningJson.Options)!;
        Assert.Equal(ModelSpec.Preset("llama-3.1-8b").Parameters, spec.Parameters);
    }

    [Theory]
    [InlineData("--preset", "nope")]
    [InlineData]
    public void Info_needs_exactly_one_model_and_lists_the_presets(params string[] extra)
    {
        CliRunner.Result result = CliRunner.Run(["info", .. extra]);
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("llmpq: error: ", result.StandardError, StringComparison.Ordinal);
        if (extra.Length > 0)
        {
            Assert.All(ModelPresets.Names, name => Assert.Contains(name, result.StandardError, StringComparison.Ordinal));
        }

        CliRunner.Result both = CliRunner.Run("info", TestModels.Small, "--preset", "opt-13b");
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("not both", both.StandardError, StringComparison.Ordinal);
    }
}
