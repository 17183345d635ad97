using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Host.Commands;
using LlmPq.Tests.Quantization;

namespace LlmPq.Tests.Cli;

[Collection(NativeTests.Name)]
public sealed class QuantizeEvalCliTests
{
    [Fact]
    public void Quantize_then_eval_from_the_command_line()
    {
        string plan = TestModels.TempPath("plan.json");
        File.WriteAllText(plan, TestPlans.Uniform(TestModels.Small, GgmlType.Q5_K).ToJson());
        string output = TestModels.TempPath("q5.gguf");

        CliRunner.Result quantize = CliRunner.Run("quantize", "-m", TestModels.Small, "--plan", plan, "-o", output, "-t", "2");

        Assert.True(quantize.ExitCode == 0, quantize.StandardError);
        Assert.Contains("every type as planned", quantize.StandardOutput, StringComparison.Ordinal);
        Assert.All(GgufReader.Read(output).Tensors.Where(t => t.Layer is not null && t.Shape.Count == 2), t => Assert.Equal(GgmlType.Q5_K, t.Type));

        CliRunner.Result eval = CliRunner.Run("eval", "--base", TestModels.Small, "--model", output, "--ctx", "128", "--chunks", "2", "-t", "2", "--json");

        Assert.True(eval.ExitCode == 0, eval.StandardError);
        using JsonDocument json = JsonDocument.Parse(eval.StandardOutput);
        Assert.True(json.RootElement.GetProperty("kldMean").GetDouble() > 0);
        Assert.Equal(2, json.RootElement.GetProperty("chunks").GetInt32());
    }

    [Fact]
    public void Quantize_refuses_a_plan_for_another_model_in_one_line()
    {
        string other = TestModels.Write("other-cli", new TinyLlamaModelOptions { Layers = 2, EmbeddingLength = 256, FeedForwardLength = 512, VocabularyPath = TestModels.VocabularyPath });
        string plan = TestModels.TempPath("plan.json");
        File.WriteAllText(plan, TestPlans.Uniform(TestModels.Small, GgmlType.Q4_K).ToJson());
        string output = TestModels.TempPath("never.gguf");

        CliRunner.Result r = CliRunner.Run("quantize", "-m", other, "--plan", plan, "-o", output);

        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("llmpq: error: The plan is for a model of 4 layers", r.StandardError, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Eval_of_a_missing_file_fails_in_one_line()
    {
        CliRunner.Result r = CliRunner.Run("eval", "--base", TestModels.Small, "--model", TestModels.TempPath("missing.gguf"));

        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("llmpq: error:", r.StandardError, StringComparison.Ordinal);
    }
}

public sealed class SpearmanTests
{
    [Fact]
    public void Monotone_orders_give_plus_or_minus_one()
    {
        double[] x = [1, 2, 3, 4, 5];
        Assert.Equal(1, IndicatorStudyCommand.Spearman(x, [10, 20, 25, 90, 100]), 12);
        Assert.Equal(-1, IndicatorStudyCommand.Spearman(x, [5, 4, 3, 2, 1]), 12);
    }

    [Fact]
    public void Ties_share_their_mean_rank()
    {
        // Ranks of y: 1.5, 1.5, 3, 4 against 1, 2, 3, 4: Pearson of those ranks.
        double rho = IndicatorStudyCommand.Spearman([1, 2, 3, 4], [7, 7, 8, 9]);
        double[] rx = [1, 2, 3, 4];
        double[] ry = [1.5, 1.5, 3, 4];
        double mx = rx.Average(), my = ry.Average();
        double expected = rx.Zip(ry).Sum(p => (p.First - mx) * (p.Second - my))
            / Math.Sqrt(rx.Sum(v => (v - mx) * (v - mx)) * ry.Sum(v => (v - my) * (v - my)));
        Assert.Equal(expected, rho, 12);
    }

    [Fact]
    public void A_single_swap_lowers_the_correlation()
    {
        double rho = IndicatorStudyCommand.Spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]);
        Assert.Equal(1 - (6.0 * 2 / (5 * 24)), rho, 12);
    }
}
