using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public sealed class PlanTypesTests
{
    [Fact]
    public void Candidates_have_the_bits_of_ggml_block_structs()
    {
        double[] bits = [16, 8.5, 6.5625, 5.5, 4.5, 3.4375, 2.625];
        Assert.Equal(bits, PlanTypes.All.Select(GgmlTypes.BitsPerWeight));
        Assert.Equal(PlanTypes.All.Take(6), PlanTypes.Default);
    }

    [Theory]
    [InlineData(100, new[] { GgmlType.F16 })]
    [InlineData(96, new[] { GgmlType.F16, GgmlType.Q8_0 })]
    [InlineData(768, new[] { GgmlType.F16, GgmlType.Q8_0, GgmlType.Q6_K, GgmlType.Q5_K, GgmlType.Q4_K, GgmlType.Q3_K })]
    public void A_layer_is_offered_only_the_types_every_row_can_take(int rowLength, GgmlType[] expected)
    {
        // One well-shaped matrix and one of the given row length: the narrowest decides.
        var layer = new LayerSpec(0, [new MatrixSpec("attn_q", 256, 256), new MatrixSpec("ffn_down", rowLength, 256)], 0, 4, 4, 64);
        Assert.Equal(expected, PlanTypes.Allowed(layer));
        Assert.Equal(expected.Contains(GgmlType.Q3_K), PlanTypes.Allowed(layer, PlanTypes.All).Contains(GgmlType.Q2_K));
        Assert.All(expected, t => Assert.Equal(layer.Matrices.Sum(m => GgmlTypes.TensorBytes(t, [m.RowLength, m.Rows])), layer.WeightBytes(t)));
    }

    [Fact]
    public void Embedding_and_output_default_to_q8_0_when_their_rows_allow()
    {
        ModelSpec llama = ModelSpec.Preset("llama-3.1-8b");
        Assert.Equal(GgmlType.Q8_0, PlanTypes.EmbeddingType(llama));
        Assert.Equal(GgmlType.Q8_0, PlanTypes.OutputType(llama));

        ModelSpec odd = llama with { TokenEmbedding = new MatrixSpec("token_embd", 100, 1000), OutputTied = true };
        Assert.Equal(GgmlType.F16, PlanTypes.EmbeddingType(odd));
        Assert.Equal(GgmlType.F16, PlanTypes.OutputType(odd));
    }

    [Fact]
    public void Types_are_written_as_ggml_names()
    {
        var profile = new TypeProfile(GgmlType.Q4_K, new LayerTimeFit(0, 1, 0), new LayerTimeFit(0, 1, 0));
        string json = JsonSerializer.Serialize(profile, PlanningJson.Options);
        Assert.Contains("\"type\": \"q4_K\"", json, StringComparison.Ordinal);
        Assert.Equal(profile, JsonSerializer.Deserialize<TypeProfile>(json.Replace("q4_K", "Q4_K", StringComparison.Ordinal), PlanningJson.Options));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<TypeProfile>(json.Replace("q4_K", "q4_X", StringComparison.Ordinal), PlanningJson.Options));
    }

    [Fact]
    public void Workload_counts_expected_tokens_and_cache()
    {
        var workload = new Workload(batchSize: 32, promptTokens: 512, generatedTokens: 100, gamma: 0.5);
        Assert.Equal(50, workload.ExpectedGeneratedTokens);
        Assert.Equal(32L * 612, workload.KvCacheTokens);
        Assert.Equal(1, new Workload(1, 1, 3, gamma: 0.1).ExpectedGeneratedTokens);
        Assert.Equal(100, new Workload(1, 1, 100).ExpectedGeneratedTokens);

        Assert.Throws<ArgumentOutOfRangeException>(() => new Workload(0, 512, 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Workload(1, 512, 100, gamma: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Workload(1, 512, 100, gamma: 1.5));

        string json = JsonSerializer.Serialize(workload, PlanningJson.Options);
        Assert.Equal(workload, JsonSerializer.Deserialize<Workload>(json, PlanningJson.Options));
        Assert.Throws<ArgumentOutOfRangeException>(() => JsonSerializer.Deserialize<Workload>("""{"batchSize": -1, "promptTokens": 1, "generatedTokens": 1}""", PlanningJson.Options));
    }

    [Fact]
    public void Default_quality_is_no_worse_than_uniform_q4_k()
    {
        Assert.Equal(new QualityTarget(1e-4, GgmlType.Q4_K), QualityTarget.Default);
        Assert.Throws<ArgumentOutOfRangeException>(() => new QualityTarget(-1, null));
        string json = JsonSerializer.Serialize(QualityTarget.Default, PlanningJson.Options);
        Assert.Contains("\"noWorseThan\": \"q4_K\"", json, StringComparison.Ordinal);
        Assert.Equal(QualityTarget.Default, JsonSerializer.Deserialize<QualityTarget>(json, PlanningJson.Options));
    }
}
