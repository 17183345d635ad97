using LlmPq.Gguf;
using LlmPq.Planning.Indicator;

namespace LlmPq.Tests.Planning.Indicator;

public sealed class FallbackIndicatorTests
{
    [Fact]
    public void Costs_interpolate_the_LLM_PQ_table_at_bits_per_weight()
    {
        Assert.Equal(0.1, QualityIndicator.FallbackCost(GgmlType.F16), 1e-12);
        Assert.Equal(0.1, QualityIndicator.FallbackCost(GgmlType.F32), 1e-12);
        Assert.Equal(0.4 - (0.3 / 16), QualityIndicator.FallbackCost(GgmlType.Q8_0), 1e-12);
        Assert.Equal(1.45, QualityIndicator.FallbackCost(GgmlType.Q4_K), 1e-12);
        Assert.Equal(4.8 - (0.4375 * 3.2), QualityIndicator.FallbackCost(GgmlType.Q3_K), 1e-12);
        Assert.Equal(6.4 - (0.625 * 1.6), QualityIndicator.FallbackCost(GgmlType.Q2_K), 1e-12);
        Assert.Equal(6.4, QualityIndicator.FallbackCost(GgmlType.IQ1_S), 1e-12);
    }

    [Fact]
    public void Table_is_monotone_in_bits_scaled_by_layer_size_and_deterministic()
    {
        long[] parameters = [1000, 1000, 2000, 0];
        var table = QualityIndicator.Fallback(parameters);
        var again = QualityIndicator.Fallback(parameters);

        Assert.Equal(QualityIndicator.FallbackMethod, table.Method);
        Assert.Null(table.MaxRowsPerMatrix);
        Assert.Equal(4, table.LayerCount);
        Assert.Equal(QualityIndicator.CandidateTypes, table.Types);
        for (int layer = 0; layer < 4; layer++)
        {
            Assert.Equal(table.Omega[layer], again.Omega[layer]);
            var row = table.Omega[layer].Select(v => v!.Value).ToArray();
            for (int t = 1; t < row.Length; t++)
            {
                Assert.True(layer == 3 ? row[t] == 0 : row[t] > row[t - 1]);
            }
        }

        // Mean layer: 1000 weights, so layer 0 has the table itself and layer 2 twice it.
        Assert.Equal(1.45, table.Get(0, GgmlType.Q4_K)!.Value, 1e-12);
        Assert.Equal(2.9, table.Get(2, GgmlType.Q4_K)!.Value, 1e-12);
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Get(0, GgmlType.Q4_0));
        Assert.Throws<ArgumentException>(() => QualityIndicator.Fallback([-1L]));
        Assert.Throws<ArgumentException>(() => QualityIndicator.Fallback([1L], []));
    }

    [Fact]
    public void Table_from_a_tensor_table_leaves_out_types_the_rows_cannot_take()
    {
        var wide = GgufReader.Read(IndicatorModels.Llama("fallback-256", layers: 3, width: 256, feedForward: 512));
        var table = QualityIndicator.Fallback(wide);
        Assert.Equal(3, table.LayerCount);
        Assert.All(table.Omega, row => Assert.Equal(QualityIndicator.CandidateTypes.Select(QualityIndicator.FallbackCost), row.Select(v => v!.Value)));

        var narrow = GgufReader.Read(IndicatorModels.Llama("fallback-96", layers: 2, width: 96, feedForward: 288, heads: 2));
        table = QualityIndicator.Fallback(narrow, [GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_K]);
        Assert.All(table.Omega, row =>
        {
            Assert.NotNull(row[0]);
            Assert.NotNull(row[1]);
            Assert.Null(row[2]);
        });
    }
}
