using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Planning.Indicator;

namespace LlmPq.Tests.Planning.Indicator;

[Collection(NativeTests.Name)]
public sealed class QualityIndicatorTests
{
    private static readonly Lazy<string> s_tiny = new(() => IndicatorModels.Llama("indicator-8L", layers: 8, width: 256, feedForward: 768));

    [Fact]
    public void Tiny_model_has_a_value_per_layer_and_type_that_grows_as_bits_shrink()
    {
        var progress = new List<double>();
        var table = QualityIndicator.Compute(s_tiny.Value, progress: new SynchronousProgress(progress));

        Assert.Equal(8, table.LayerCount);
        Assert.Equal(QualityIndicator.CandidateTypes, table.Types);
        Assert.Equal(QualityIndicator.WeightsMethod, table.Method);
        Assert.Equal(256, table.MaxRowsPerMatrix);
        foreach (var row in table.Omega)
        {
            Assert.Equal(7, row.Count);
            Assert.All(row, value => Assert.True(value >= 0));
            Assert.Equal(0, row[0]); // the source is F16
            for (int t = 1; t < row.Count; t++)
            {
                Assert.True(row[t] > row[t - 1], $"{table.Types[t]} {row[t]} <= {table.Types[t - 1]} {row[t - 1]}");
            }
        }

        Assert.Equal(table.Omega[0][4], table.Get(0, GgmlType.Q4_K));
        Assert.Equal(1, progress[^1]);
        Assert.Equal(progress.Order(), progress);
    }

    [Fact]
    public void Types_a_layer_cannot_take_have_no_value()
    {
        // 96 is whole blocks of 32 (Q8_0), not of 256 (K-quants); 100 is neither.
        var table = QualityIndicator.Compute(IndicatorModels.Llama("indicator-96", layers: 2, width: 96, feedForward: 288, heads: 2));
        Assert.All(table.Omega, row =>
        {
            Assert.Equal(0, row[0]);
            Assert.True(row[1] > 0);
            Assert.All(row.Skip(2), value => Assert.Null(value));
        });

        table = QualityIndicator.Compute(IndicatorModels.Llama("indicator-100", layers: 1, width: 100, feedForward: 256, heads: 2));
        Assert.Equal(0, table.Omega[0][0]);
        Assert.All(table.Omega[0].Skip(1), value => Assert.Null(value));
    }

    [Fact]
    public void Larger_weights_cost_more_at_every_type()
    {
        var shapes = new Dictionary<string, long[]>
        {
            ["attn_q"] = [256, 256],
            ["attn_v"] = [256, 256],
            ["attn_output"] = [256, 256],
            ["ffn_gate"] = [256, 512],
            ["ffn_up"] = [256, 512],
            ["ffn_down"] = [512, 256],
        };
        var small = QualityIndicator.Compute(IndicatorModels.Layers("scale-1", 2, shapes, scale: 0.05f));
        var large = QualityIndicator.Compute(IndicatorModels.Layers("scale-2", 2, shapes, scale: 0.1f));

        for (int layer = 0; layer < 2; layer++)
        {
            for (int t = 0; t < small.Types.Count; t++)
            {
                Assert.True(large.Omega[layer][t] > small.Omega[layer][t], $"layer {layer} {small.Types[t]}: {large.Omega[layer][t]} <= {small.Omega[layer][t]}");
            }
        }
    }

    [Fact]
    public void Value_is_the_squared_error_weighted_by_the_norm_squared()
    {
        var shapes = new Dictionary<string, long[]> { ["attn_q"] = [256, 64] };
        string path = IndicatorModels.Layers("formula", 1, shapes, scale: 0.1f, norm: 3);
        var table = QualityIndicator.Compute(path, new QualityIndicatorOptions { Types = [GgmlType.Q4_K, GgmlType.F16] });

        var file = GgufReader.Read(path);
        Assert.True(file.TryGetTensor("blk.0.attn_q.weight", out var tensor));
        using var data = GgufTensorData.Open(path, file);
        var weights = new float[tensor.ElementCount];
        GgmlQuantizer.ToFloat(GgmlType.F32, data.ReadTensor(tensor), weights);
        var quantized = new byte[64 * GgmlTypes.RowBytes(GgmlType.Q4_K, 256)];
        GgmlQuantizer.Quantize(GgmlType.Q4_K, weights, 256, quantized);
        var restored = new float[weights.Length];
        GgmlQuantizer.ToFloat(GgmlType.Q4_K, quantized, restored);
        double expected = weights.Zip(restored, (a, b) => (double)(a - b) * (a - b)).Sum() * 9;

        Assert.Equal(expected, table.Omega[0][0]!.Value, expected * 1e-5);
        Assert.True(table.Omega[0][1] > 0); // F16 rounding of F32 weights
        Assert.True(table.Omega[0][1] < expected * 1e-3);
    }

    [Fact]
    public void Sampled_rows_estimate_the_whole_matrix_deterministically()
    {
        var shapes = new Dictionary<string, long[]> { ["attn_q"] = [256, 1000], ["ffn_up"] = [256, 300] };
        string path = IndicatorModels.Layers("sampled", 1, shapes, scale: 1);
        var full = QualityIndicator.Compute(path, new QualityIndicatorOptions { MaxRowsPerMatrix = 1000 });
        var sampled = QualityIndicator.Compute(path, new QualityIndicatorOptions { MaxRowsPerMatrix = 100 });
        var again = QualityIndicator.Compute(path, new QualityIndicatorOptions { MaxRowsPerMatrix = 100, MaxDegreeOfParallelism = 1 });

        Assert.Equal(100, sampled.MaxRowsPerMatrix);
        Assert.Equal(sampled.Omega[0], again.Omega[0]);
        for (int t = 1; t < full.Types.Count; t++)
        {
            double ratio = sampled.Omega[0][t]!.Value / full.Omega[0][t]!.Value;
            Assert.InRange(ratio, 0.9, 1.1);
        }
    }

    [Fact]
    public void Refuses_types_that_need_an_importance_matrix_and_stops_when_canceled()
    {
        Assert.Throws<ArgumentException>(() => QualityIndicator.Compute(s_tiny.Value, new QualityIndicatorOptions { Types = [GgmlType.Q4_K, GgmlType.IQ2_XXS] }));
        Assert.Throws<ArgumentException>(() => QualityIndicator.Compute(s_tiny.Value, new QualityIndicatorOptions { Types = [GgmlType.Q4_K, GgmlType.Q4_K] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => QualityIndicator.Compute(s_tiny.Value, new QualityIndicatorOptions { MaxRowsPerMatrix = 0 }));
        Assert.ThrowsAny<OperationCanceledException>(() => QualityIndicator.Compute(s_tiny.Value, cancellationToken: new CancellationToken(canceled: true)));
    }

    [Fact]
    public void Table_round_trips_through_json()
    {
        var table = QualityIndicator.Compute(IndicatorModels.Llama("indicator-json", layers: 2, width: 96, feedForward: 288, heads: 2));
        string json = table.ToJson();
        Assert.Contains("\"q4_K\"", json, StringComparison.Ordinal);
        Assert.Contains("null", json, StringComparison.Ordinal);

        var back = QualityIndicatorTable.FromJson(json);
        Assert.Equal(table.Types, back.Types);
        Assert.Equal(table.Method, back.Method);
        Assert.Equal(table.MaxRowsPerMatrix, back.MaxRowsPerMatrix);
        Assert.Equal(table.Omega.Count, back.Omega.Count);
        for (int layer = 0; layer < table.LayerCount; layer++)
        {
            Assert.Equal(table.Omega[layer], back.Omega[layer]);
        }

        Assert.Throws<System.Text.Json.JsonException>(() => QualityIndicatorTable.FromJson("""{"types":["f16","q8_0"],"omega":[[0]],"method":"m"}"""));
        Assert.Throws<System.Text.Json.JsonException>(() => QualityIndicatorTable.FromJson("""{"types":["f16"],"omega":[[-1]],"method":"m"}"""));
    }

    // Progress<T> posts to the thread pool, out of order; this records in the order of the reports.
    private sealed class SynchronousProgress(List<double> values) : IProgress<double>
    {
        public void Report(double value) => values.Add(value);
    }
}
