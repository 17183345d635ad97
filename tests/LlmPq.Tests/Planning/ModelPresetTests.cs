using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public sealed class ModelPresetTests
{
    public static TheoryData<string, double, double> ParameterCounts => new()
    {
        // Published sizes: Meta's model cards (8.03B, 70.6B), Qwen's (72.7B), Mistral's (7.24B), OPT and BLOOM by name.
        { "opt-13b", 12.85e9, 0.03 },
        { "opt-30b", 29.97e9, 0.03 },
        { "opt-66b", 66e9, 0.05 },
        { "bloom-176b", 176e9, 0.03 },
        { "llama-3.1-8b", 8.0e9, 0.03 },
        { "llama-3.1-70b", 70.6e9, 0.03 },
        { "qwen2.5-72b", 72.7e9, 0.03 },
        { "mistral-7b", 7.24e9, 0.03 },
    };

    [Theory]
    [MemberData(nameof(ParameterCounts))]
    public void Every_preset_has_its_published_parameter_count(string name, double expected, double tolerance)
    {
        ModelSpec spec = ModelSpec.Preset(name);
        Assert.Equal(name, spec.Name);
        Assert.InRange(spec.Parameters, expected * (1 - tolerance), expected * (1 + tolerance));
        Assert.Equal(spec.LayerCount, spec.Output.Index);
        Assert.All(spec.Layers, l => Assert.Equal(2 * l.MatrixParameters, l.FlopsPerToken));
        Assert.All(spec.Layers, l => Assert.Equal(2L * l.KvHeadCount * l.HeadDim * 2, l.KvBytesPerToken));
    }

    [Fact]
    public void Names_list_every_preset_and_lookup_ignores_case()
    {
        Assert.Equal(ParameterCounts.Select(row => (string)row[0]!), ModelPresets.Names);
        Assert.Equal("llama-3.1-70b", ModelSpec.Preset("Llama-3.1-70B").Name);
    }

    [Fact]
    public void An_unknown_preset_lists_the_known_ones()
    {
        var ex = Assert.Throws<ArgumentException>(() => ModelSpec.Preset("gpt-5"));
        Assert.Contains("gpt-5", ex.Message, StringComparison.Ordinal);
        Assert.All(ModelPresets.Names, name => Assert.Contains(name, ex.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void Presets_have_their_attention_and_output_layout()
    {
        ModelSpec llama = ModelSpec.Preset("llama-3.1-8b");
        Assert.Equal((32, 8, 128), (llama.HeadCount, llama.KvHeadCount, llama.HeadDim));
        Assert.Equal(2 * 8 * 128 * 2, llama.Layers[0].KvBytesPerToken);
        Assert.False(llama.OutputTied);
        Assert.Equal(131072, llama.ContextLength);

        ModelSpec opt = ModelSpec.Preset("opt-13b");
        Assert.True(opt.OutputTied);
        Assert.Equal(5120 * 2050, opt.InputParameters); // learned positions
        Assert.Equal(2 * 5120 * 2, opt.Layers[0].KvBytesPerToken); // multi-head: 40 heads of 128

        ModelSpec bloom = ModelSpec.Preset("bloom-176b");
        Assert.Equal(new MatrixSpec("attn_qkv", 14336, 3 * 14336), bloom.Layers[0].Matrices[0]);
        Assert.Equal(250880, bloom.VocabularySize);

        ModelSpec qwen = ModelSpec.Preset("qwen2.5-72b");
        Assert.Equal((2 * 8192) + 8192 + (2 * 1024), qwen.Layers[0].OtherParameters); // two RMSNorms, q/k/v biases
    }

    [Fact]
    public void Qwen_72b_ffn_rows_are_not_whole_k_quant_blocks()
    {
        // 29568 = 115.5 × 256: llama.cpp falls back to another type for ffn_down, so a plan offers only F16 and Q8_0.
        Assert.Equal([GgmlType.F16, GgmlType.Q8_0], PlanTypes.Allowed(ModelSpec.Preset("qwen2.5-72b").Layers[0]));
        Assert.All(
            ModelPresets.Names.Where(n => n != "qwen2.5-72b"),
            name => Assert.Equal(PlanTypes.Default, PlanTypes.Allowed(ModelSpec.Preset(name).Layers[0])));
    }
}
