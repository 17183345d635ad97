using LlmPq.Gguf;

namespace LlmPq.Tests.Gguf;

public class GgmlTypesTests
{
    [Theory]
    [InlineData(GgmlType.F32, 0, "f32", 1, 4)]
    [InlineData(GgmlType.F16, 1, "f16", 1, 2)]
    [InlineData(GgmlType.Q4_0, 2, "q4_0", 32, 18)]
    [InlineData(GgmlType.Q4_1, 3, "q4_1", 32, 20)]
    [InlineData(GgmlType.Q5_0, 6, "q5_0", 32, 22)]
    [InlineData(GgmlType.Q5_1, 7, "q5_1", 32, 24)]
    [InlineData(GgmlType.Q8_0, 8, "q8_0", 32, 34)]
    [InlineData(GgmlType.Q8_1, 9, "q8_1", 32, 36)]
    [InlineData(GgmlType.Q2_K, 10, "q2_K", 256, 84)]
    [InlineData(GgmlType.Q3_K, 11, "q3_K", 256, 110)]
    [InlineData(GgmlType.Q4_K, 12, "q4_K", 256, 144)]
    [InlineData(GgmlType.Q5_K, 13, "q5_K", 256, 176)]
    [InlineData(GgmlType.Q6_K, 14, "q6_K", 256, 210)]
    [InlineData(GgmlType.Q8_K, 15, "q8_K", 256, 292)]
    [InlineData(GgmlType.IQ2_XXS, 16, "iq2_xxs", 256, 66)]
    [InlineData(GgmlType.IQ2_XS, 17, "iq2_xs", 256, 74)]
    [InlineData(GgmlType.IQ3_XXS, 18, "iq3_xxs", 256, 98)]
    [InlineData(GgmlType.IQ1_S, 19, "iq1_s", 256, 50)]
    [InlineData(GgmlType.IQ4_NL, 20, "iq4_nl", 32, 18)]
    [InlineData(GgmlType.IQ3_S, 21, "iq3_s", 256, 110)]
    [InlineData(GgmlType.IQ2_S, 22, "iq2_s", 256, 82)]
    [InlineData(GgmlType.IQ4_XS, 23, "iq4_xs", 256, 136)]
    [InlineData(GgmlType.I8, 24, "i8", 1, 1)]
    [InlineData(GgmlType.I16, 25, "i16", 1, 2)]
    [InlineData(GgmlType.I32, 26, "i32", 1, 4)]
    [InlineData(GgmlType.I64, 27, "i64", 1, 8)]
    [InlineData(GgmlType.F64, 28, "f64", 1, 8)]
    [InlineData(GgmlType.IQ1_M, 29, "iq1_m", 256, 56)]
    [InlineData(GgmlType.BF16, 30, "bf16", 1, 2)]
    [InlineData(GgmlType.TQ1_0, 34, "tq1_0", 256, 54)]
    [InlineData(GgmlType.TQ2_0, 35, "tq2_0", 256, 66)]
    [InlineData(GgmlType.MXFP4, 39, "mxfp4", 32, 17)]
    [InlineData(GgmlType.NVFP4, 40, "nvfp4", 64, 36)]
    [InlineData(GgmlType.Q1_0, 41, "q1_0", 128, 18)]
    [InlineData(GgmlType.Q2_0, 42, "q2_0", 64, 18)]
    public void Traits_match_ggml(GgmlType type, int number, string name, int blockSize, int typeSize)
    {
        Assert.Equal(number, (int)type);
        Assert.Equal(name, GgmlTypes.Name(type));
        Assert.Equal(blockSize, GgmlTypes.BlockSize(type));
        Assert.Equal(typeSize, GgmlTypes.TypeSize(type));
        Assert.True(GgmlTypes.TryParse(name.ToUpperInvariant(), out var parsed));
        Assert.Equal(type, parsed);
    }

    [Fact]
    public void Every_member_has_traits()
    {
        foreach (var type in Enum.GetValues<GgmlType>())
        {
            Assert.True(GgmlTypes.TryParse(GgmlTypes.Name(type), out var parsed));
            Assert.Equal(type, parsed);
            Assert.Equal(type.ToString(), GgmlTypes.Name(type), ignoreCase: true);
        }

        Assert.Equal(35, Enum.GetValues<GgmlType>().Length);
    }

    [Theory]
    [InlineData(GgmlType.F16, 16)]
    [InlineData(GgmlType.Q8_0, 8.5)]
    [InlineData(GgmlType.Q6_K, 6.5625)]
    [InlineData(GgmlType.Q5_K, 5.5)]
    [InlineData(GgmlType.Q4_K, 4.5)]
    [InlineData(GgmlType.Q3_K, 3.4375)]
    [InlineData(GgmlType.Q2_K, 2.625)]
    public void Bits_per_weight_match_the_design(GgmlType type, double bits) => Assert.Equal(bits, GgmlTypes.BitsPerWeight(type));

    [Theory]
    [InlineData("")]
    [InlineData("q4_k_m")]
    [InlineData("DEPRECATED")]
    [InlineData(null)]
    public void TryParse_rejects_what_is_no_type(string? name) => Assert.False(GgmlTypes.TryParse(name, out _));

    [Fact]
    public void Retired_numbers_have_no_traits()
    {
        foreach (int retired in new[] { 4, 5, 31, 32, 33, 36, 37, 38, 43, -1 })
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => GgmlTypes.Name((GgmlType)retired));
            Assert.Throws<ArgumentOutOfRangeException>(() => GgmlTypes.BlockSize((GgmlType)retired));
        }
    }

    [Fact]
    public void Row_and_tensor_bytes_follow_blocks()
    {
        Assert.Equal(4096 / 256 * 144, GgmlTypes.RowBytes(GgmlType.Q4_K, 4096));
        Assert.Equal(2 * 4096 * 11008L, GgmlTypes.TensorBytes(GgmlType.F16, [4096, 11008]));
        Assert.Equal(34L * 4 * 3 * 2 * 5, GgmlTypes.TensorBytes(GgmlType.Q8_0, [128, 3, 2, 5]));
        Assert.Equal(0, GgmlTypes.TensorBytes(GgmlType.Q4_K, [256, 0]));

        Assert.Throws<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.Q4_K, 100));
        Assert.Throws<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.F32, -1));
        Assert.Throws<ArgumentException>(() => GgmlTypes.TensorBytes(GgmlType.Q8_0, [48, 2]));
        Assert.Throws<ArgumentException>(() => GgmlTypes.TensorBytes(GgmlType.F32, []));
        Assert.Throws<ArgumentException>(() => GgmlTypes.TensorBytes(GgmlType.F32, [1, 1, 1, 1, 1]));
        Assert.Throws<ArgumentException>(() => GgmlTypes.TensorBytes(GgmlType.F32, [4, -2]));
        Assert.Throws<ArgumentException>(() => GgmlTypes.TensorBytes(GgmlType.F64, [1L << 40, 1L << 30]));
    }
}
