using System.Globalization;
using System.Text.RegularExpressions;
using LlmPq.Evaluation;
using LlmPq.Gguf;
using LlmPq.Host.Commands;
using LlmPq.Native;
using LlmPq.Quantization;
using LlmPq.Stages;
using LlmPq.Tests.Quantization;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Evaluation;

[Collection(NativeTests.Name)]
public sealed partial class QualityEvaluatorTests
{
    private static readonly QualityEvaluationOptions s_options = new() { ContextLength = 128, MaxChunks = 3, Threads = 2 };

    [Fact]
    public async Task A_model_against_itself_has_no_divergence()
    {
        QualityEvaluation r = await QualityEvaluator.EvaluateAsync(TestModels.Small, TestModels.Small, EvaluationText.Default, s_options);

        Assert.Equal(0, r.KldMean);
        Assert.Equal(0, r.KldMax);
        Assert.Equal(1, r.SameTopToken);
        Assert.Equal(r.BasePerplexity, r.ModelPerplexity);
        Assert.Equal(3, r.Chunks);
        Assert.Equal(3 * (128 - 1 - 64), r.Tokens);
    }

    [Fact]
    public async Task Q8_0_keeps_more_than_Q4_K()
    {
        string q8 = TestModels.TempPath("q8.gguf");
        string q4 = TestModels.TempPath("q4.gguf");
        await PlanQuantizer.QuantizeAsync(TestModels.Small, TestPlans.Uniform(TestModels.Small, GgmlType.Q8_0), q8);
        await PlanQuantizer.QuantizeAsync(TestModels.Small, TestPlans.Uniform(TestModels.Small, GgmlType.Q4_K), q4);

        QualityEvaluation r8 = await QualityEvaluator.EvaluateAsync(TestModels.Small, q8, EvaluationText.Default, s_options);
        QualityEvaluation r4 = await QualityEvaluator.EvaluateAsync(TestModels.Small, q4, EvaluationText.Default, s_options);

        Assert.True(r8.KldMean > 0, "a quantized model diverges from its base");
        Assert.True(r8.KldMean < r4.KldMean, $"Q8_0 KLD {r8.KldMean} should be below Q4_K's {r4.KldMean}");
        Assert.True(r8.SameTopToken >= r4.SameTopToken);
        Assert.Equal(r8.BasePerplexity, r4.BasePerplexity);
        Assert.InRange(r4.KldMedian, 0, r4.KldP99);
        Assert.InRange(r4.KldP99, r4.KldMedian, r4.KldMax);
    }

    [Fact]
    public async Task Perplexity_matches_llama_perplexity_of_the_same_build()
    {
        string text = TestModels.TempPath("text.txt");
        await File.WriteAllTextAsync(text, EvaluationText.Default);

        // llama.cpp logs from a worker thread, and a loaded machine sometimes loses the last lines at exit (the final
        // estimate among them, exit code 0): run it again then, up to three times.
        Match final = Match.Empty;
        string log = string.Empty;
        for (int attempt = 0; attempt < 3 && !final.Success; attempt++)
        {
            string logFile = TestModels.TempPath("perplexity.log");
            await using ChildProcess perplexity = await ChildProcess.StartAsync(
                NativeLibraryLoader.ToolPath("llama-perplexity"),
                ["-m", TestModels.Small, "-f", text, "-c", "128", "-b", "128", "--chunks", "3", "-t", "2", "--log-file", logFile],
                NullLogger.Instance,
                keepStandardOutput: true);
            string stdout = await perplexity.WaitForSuccessAsync(CancellationToken.None);
            log = await File.ReadAllTextAsync(logFile) + stdout;
            final = FinalEstimate().Match(log);
        }

        Assert.True(final.Success, log);
        double anchor = double.Parse(final.Groups[1].Value, CultureInfo.InvariantCulture);

        QualityEvaluation r = await QualityEvaluator.EvaluateAsync(TestModels.Small, TestModels.Small, EvaluationText.Default, s_options);

        // The same windows and scored tokens give the same perplexity; llama-perplexity's float log-softmax moves the
        // last bits (a relative 1e-7 or so), a wrong window or off-by-one token moves the first ones.
        Assert.InRange(Math.Abs(r.BasePerplexity - anchor) / anchor, 0, 1e-6);
    }

    [Fact]
    public async Task A_text_shorter_than_one_window_says_so()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => QualityEvaluator.EvaluateAsync(TestModels.Small, TestModels.Small, "Too short.", s_options));

        Assert.Contains("one window needs 128", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_model_file_is_refused_before_loading()
    {
        string bad = TestModels.TempPath("bad.gguf");
        await File.WriteAllTextAsync(bad, "not a gguf");

        await Assert.ThrowsAsync<GgufFormatException>(() => QualityEvaluator.EvaluateAsync(TestModels.Small, bad, EvaluationText.Default, s_options));
    }

    [Fact]
    public async Task Cancellation_stops_between_windows()
    {
        using var cts = new CancellationTokenSource();
        var progress = new CancelOnReport(cts);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            QualityEvaluator.EvaluateAsync(TestModels.Small, TestModels.Small, EvaluationText.Default, s_options, progress, cancellationToken: cts.Token));
        Assert.Equal(1, progress.Reports);
    }

    [GeneratedRegex(@"Final estimate: PPL = ([0-9.]+)")]
    private static partial Regex FinalEstimate();

    private sealed class CancelOnReport(CancellationTokenSource cts) : IProgress<QualityEvaluationProgress>
    {
        public int Reports { get; private set; }

        public void Report(QualityEvaluationProgress value)
        {
            Reports++;
            cts.Cancel();
        }
    }
}
