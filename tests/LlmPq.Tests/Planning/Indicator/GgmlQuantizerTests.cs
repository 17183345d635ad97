using System.Buffers.Binary;
using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Planning.Indicator;

namespace LlmPq.Tests.Planning.Indicator;

[Collection(NativeTests.Name)]
public sealed class GgmlQuantizerTests
{
    private const int RowLength = 512;
    private static readonly float[] s_rows = IndicatorModels.Gaussian(new Random(1), 64 * RowLength);

    public static TheoryData<GgmlType> Candidates => [.. QualityIndicator.CandidateTypes];

    [Theory]
    [MemberData(nameof(Candidates))]
    public void Quantized_rows_take_RowBytes_and_come_back_close(GgmlType type)
    {
        var quantized = new byte[64 * GgmlTypes.RowBytes(type, RowLength)];
        int bytes = GgmlQuantizer.Quantize(type, s_rows, RowLength, quantized);
        Assert.Equal(quantized.Length, bytes);

        var restored = new float[s_rows.Length];
        Assert.Equal(s_rows.Length, GgmlQuantizer.ToFloat(type, quantized, restored));
        Assert.True(MeanSquaredError(restored) < 0.2, $"{type}: {MeanSquaredError(restored)}");
    }

    [Fact]
    public void Error_grows_as_bits_shrink()
    {
        var errors = QualityIndicator.CandidateTypes.Select(type => MeanSquaredError(RoundTrip(type))).ToArray();

        Assert.Equal(0, errors[0], 1e-7); // F16: Gaussian values of unit size keep 11 bits
        Assert.True(errors[1] < 1e-3, $"Q8_0: {errors[1]}");
        Assert.True(errors[4] > 10 * errors[1], $"Q4_K {errors[4]} vs Q8_0 {errors[1]}");
        for (int i = 1; i < errors.Length; i++)
        {
            Assert.True(errors[i] > errors[i - 1], $"{QualityIndicator.CandidateTypes[i]} {errors[i]} <= {QualityIndicator.CandidateTypes[i - 1]} {errors[i - 1]}");
        }
    }

    [Fact]
    public void Refuses_rows_a_type_cannot_take_and_types_that_need_an_importance_matrix()
    {
        Assert.False(GgmlQuantizer.CanQuantize(GgmlType.Q4_K, 100));
        Assert.False(GgmlQuantizer.CanQuantize(GgmlType.Q8_0, 100));
        Assert.True(GgmlQuantizer.CanQuantize(GgmlType.Q8_0, 96));
        Assert.True(GgmlQuantizer.CanQuantize(GgmlType.F16, 100));
        Assert.False(GgmlQuantizer.CanQuantize(GgmlType.IQ2_XXS, 256)); // ggml_quantize_requires_imatrix
        Assert.False(GgmlQuantizer.CanQuantize(GgmlType.Q8_K, 256)); // ggml_quantize_chunk would abort
        Assert.False(GgmlQuantizer.CanQuantize(GgmlType.I32, 256));

        Assert.Throws<NotSupportedException>(() => GgmlQuantizer.Quantize(GgmlType.Q4_K, new float[200], 100, new byte[1024]));
        Assert.Throws<NotSupportedException>(() => GgmlQuantizer.Quantize(GgmlType.IQ2_XXS, new float[256], 256, new byte[1024]));
        Assert.Throws<ArgumentException>(() => GgmlQuantizer.Quantize(GgmlType.Q8_0, new float[100], 64, new byte[1024]));
        Assert.Throws<ArgumentException>(() => GgmlQuantizer.Quantize(GgmlType.Q8_0, new float[64], 64, new byte[67]));
        Assert.Throws<ArgumentException>(() => GgmlQuantizer.ToFloat(GgmlType.Q8_0, new byte[35], new float[64]));
        Assert.Throws<ArgumentException>(() => GgmlQuantizer.ToFloat(GgmlType.Q8_0, new byte[34], new float[31]));
        Assert.Throws<NotSupportedException>(() => GgmlQuantizer.ToFloat(GgmlType.I32, new byte[4], new float[1]));
    }

    [Fact]
    public void Reads_F32_F16_and_BF16_sources()
    {
        float[] values = [1.5f, -2.25f, 3.1415927f, 65504f, -1e-3f];
        var f32 = IndicatorModels.Bytes(values);
        var f16 = new byte[values.Length * 2];
        var bf16 = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(i * 2), (Half)values[i]);
            BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16));
        }

        var result = new float[values.Length];
        GgmlQuantizer.ToFloat(GgmlType.F32, f32, result);
        Assert.Equal(values, result);
        GgmlQuantizer.ToFloat(GgmlType.F16, f16, result);
        Assert.Equal(values.Select(v => (float)(Half)v), result);
        GgmlQuantizer.ToFloat(GgmlType.BF16, bf16, result);
        Assert.Equal(values.Select(v => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000)), result);
    }

    private static float[] RoundTrip(GgmlType type)
    {
        var quantized = new byte[64 * GgmlTypes.RowBytes(type, RowLength)];
        GgmlQuantizer.Quantize(type, s_rows, RowLength, quantized);
        var restored = new float[s_rows.Length];
        GgmlQuantizer.ToFloat(type, quantized, restored);
        return restored;
    }

    private static double MeanSquaredError(float[] restored) =>
        s_rows.Zip(restored, (a, b) => (double)(a - b) * (a - b)).Average();
}
