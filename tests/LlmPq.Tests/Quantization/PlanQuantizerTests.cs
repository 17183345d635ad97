using LlmPq.Engine;
using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Quantization;

namespace LlmPq.Tests.Quantization;

[Collection(NativeTests.Name)]
public sealed class PlanQuantizerTests
{
    private static readonly GgmlType[] s_mixed = [GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.F16, GgmlType.Q3_K];

    [Fact]
    public async Task Every_tensor_gets_the_planned_type()
    {
        Plan plan = TestPlans.With(TestModels.Small, s_mixed, embedding: GgmlType.Q8_0, output: GgmlType.Q6_K);
        string output = TestModels.TempPath("mixed.gguf");
        var seen = new List<QuantizationProgress>();

        QuantizationResult result = await PlanQuantizer.QuantizeAsync(TestModels.Small, plan, output, threads: 2, progress: new CallbackProgress<QuantizationProgress>(seen.Add));

        GgufFile source = GgufReader.Read(TestModels.Small);
        GgufFile written = GgufReader.Read(output);
        Assert.Equal(source.Tensors.Select(t => t.Name).Order(), written.Tensors.Select(t => t.Name).Order());
        foreach (GgufTensorInfo tensor in written.Tensors)
        {
            GgmlType original = source.Tensors.Single(t => t.Name == tensor.Name).Type;
            GgmlType expected = tensor.Shape.Count < 2 ? original
                : tensor.Name == "token_embd.weight" ? GgmlType.Q8_0
                : tensor.Name == "output.weight" ? GgmlType.Q6_K
                : s_mixed[tensor.Layer!.Value];
            Assert.True(expected == tensor.Type, $"{tensor.Name}: {tensor.Type}, planned {expected}");
        }

        Assert.Equal(written.Tensors.Count, seen.Count);
        Assert.Equal(Enumerable.Range(1, seen.Count), seen.Select(p => p.Tensor));
        Assert.Equal(new FileInfo(output).Length, result.FileBytes);
        Assert.Equal(written.Tensors.Sum(t => GgmlTypes.TensorBytes(t.Type, t.Shape)), result.TensorBytes);
        Assert.Equal(result.PredictedWeightBytes, result.TensorBytes);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(output)!, "*.partial"));
    }

    [Fact]
    public async Task A_planner_plan_is_applied_and_the_output_loads_and_generates()
    {
        ModelSpec spec = ModelSpec.FromGguf(GgufReader.Read(TestModels.Small));
        QualityIndicatorTable indicator = QualityIndicator.Compute(TestModels.Small);
        ClusterSpec cluster = ClusterSpec.Parse("""{"devices":[{"kind":"CPU","host":"local"}]}""");
        Plan plan = Planner.Create(spec, cluster, new Workload(4, 64, 16), new QualityTarget(1e-4, null), indicator);
        string output = TestModels.TempPath("planned.gguf");

        QuantizationResult result = await PlanQuantizer.QuantizeAsync(TestModels.Small, plan, output, threads: 2);

        GgufFile written = GgufReader.Read(output);
        IReadOnlyList<GgmlType> types = plan.LayerTypes();
        Assert.All(written.Tensors.Where(t => t.Layer is not null && t.Shape.Count == 2), t => Assert.Equal(types[t.Layer!.Value], t.Type));
        Assert.Equal(result.PredictedWeightBytes, result.TensorBytes);

        using LlamaModel model = LlamaModel.Load(output);
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 256, Threads = 2 });
        using var sampler = new LlamaSampler(model, new SamplingSettings());
        GenerationResult generated = SingleSequenceGenerator.Generate(context, sampler, model.Tokenize("Once upon a time", addSpecial: true, parseSpecial: false), 8);
        Assert.True(generated.Tokens.Count == 8 || generated.EndedByModel);
    }

    [Fact]
    public async Task A_plan_for_another_model_fails_and_leaves_no_file()
    {
        string other = TestModels.Write("other", new TinyLlamaModelOptions { Layers = 4, EmbeddingLength = 256, FeedForwardLength = 768, VocabularyPath = TestModels.VocabularyPath });
        Plan plan = TestPlans.Uniform(TestModels.Small, GgmlType.Q4_K);
        string output = TestModels.TempPath("wrong.gguf");

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => PlanQuantizer.QuantizeAsync(other, plan, output));

        Assert.Contains("another model", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(output)!, "*.partial"));
    }

    [Fact]
    public async Task A_plan_with_another_layer_count_names_both_counts()
    {
        string deeper = TestModels.Write("deeper", new TinyLlamaModelOptions { Layers = 6, EmbeddingLength = 256, FeedForwardLength = 512, VocabularyPath = TestModels.VocabularyPath });
        Plan plan = TestPlans.Uniform(TestModels.Small, GgmlType.Q8_0);

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => PlanQuantizer.QuantizeAsync(deeper, plan, TestModels.TempPath("x.gguf")));

        Assert.Contains("4 layers", error.Message, StringComparison.Ordinal);
        Assert.Contains("has 6", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_source_is_never_overwritten()
    {
        string copy = TestModels.TempPath("source.gguf");
        File.Copy(TestModels.Small, copy);
        byte[] before = await File.ReadAllBytesAsync(copy);

        await Assert.ThrowsAsync<ArgumentException>(() => PlanQuantizer.QuantizeAsync(copy, TestPlans.Uniform(copy, GgmlType.Q4_K), copy));

        Assert.Equal(before, await File.ReadAllBytesAsync(copy));
    }

    [Fact]
    public async Task A_quantized_source_is_refused()
    {
        string q8 = TestModels.TempPath("q8.gguf");
        await PlanQuantizer.QuantizeAsync(TestModels.Small, TestPlans.Uniform(TestModels.Small, GgmlType.Q8_0), q8);

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => PlanQuantizer.QuantizeAsync(q8, TestPlans.Uniform(q8, GgmlType.Q4_K), TestModels.TempPath("q4.gguf")));

        Assert.Contains("already quantized", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cancelled_quantization_leaves_no_file()
    {
        string output = TestModels.TempPath("cancelled.gguf");
        using var cts = new CancellationTokenSource();
        var progress = new CallbackProgress<QuantizationProgress>(_ => cts.Cancel());

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => PlanQuantizer.QuantizeAsync(TestModels.Small, TestPlans.Uniform(TestModels.Small, GgmlType.Q4_K), output, progress: progress, cancellationToken: cts.Token));

        Assert.False(File.Exists(output));
        await WaitUntilAsync(() => Directory.GetFiles(Path.GetDirectoryName(output)!, "*.partial").Length == 0);
    }

    [Fact]
    public void The_overrides_name_each_layer_once()
    {
        Plan plan = TestPlans.With(TestModels.Small, s_mixed);

        IReadOnlyList<(string Pattern, GgmlType Type)> overrides = PlanQuantizer.Overrides(plan);

        for (int layer = 0; layer < s_mixed.Length; layer++)
        {
            string name = $"blk.{layer}.ffn_up.weight";
            var matching = overrides.Where(o => System.Text.RegularExpressions.Regex.IsMatch(name, o.Pattern)).ToList();
            Assert.Single(matching);
            Assert.Equal(s_mixed[layer], matching[0].Type);
        }

        Assert.DoesNotContain(overrides, o => System.Text.RegularExpressions.Regex.IsMatch("blk.10.ffn_up.weight", o.Pattern));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        // The native quantizer cannot be interrupted; its temporary file goes when it returns.
        for (int i = 0; i < 600 && !condition(); i++)
        {
            await Task.Delay(100);
        }

        Assert.True(condition());
    }

    private sealed class CallbackProgress<T>(Action<T> callback) : IProgress<T>
    {
        public void Report(T value) => callback(value);
    }
}
