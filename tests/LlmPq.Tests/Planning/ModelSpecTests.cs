using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public sealed class ModelSpecTests
{
    [Fact]
    public void From_gguf_matches_the_tensor_table_of_the_small_test_model()
    {
        GgufFile file = GgufReader.Read(TestModels.Small);
        ModelSpec spec = ModelSpec.FromGguf(file);

        Assert.Equal("llama", spec.Architecture);
        Assert.Equal(4, spec.LayerCount);
        Assert.Equal(256, spec.EmbeddingLength);
        Assert.Equal(512, spec.FeedForwardLength);
        Assert.Equal(4, spec.HeadCount);
        Assert.Equal(4, spec.KvHeadCount);
        Assert.Equal(64, spec.HeadDim);
        Assert.Equal(32000, spec.VocabularySize);
        Assert.Equal(2048, spec.ContextLength);
        Assert.False(spec.OutputTied);
        Assert.Equal(0, spec.InputParameters);
        Assert.Equal(file.Tensors.Sum(t => t.ElementCount), spec.Parameters);

        foreach (LayerSpec layer in spec.Layers)
        {
            GgufTensorInfo[] tensors = [.. file.Tensors.Where(t => t.Layer == layer.Index)];
            Assert.Equal(tensors.Sum(t => t.ElementCount), layer.Parameters);

            // The test model stores matrices as F16 and norms as F32, exactly what WeightBytes(F16) assumes.
            Assert.Equal(tensors.Sum(t => t.Bytes), layer.WeightBytes(GgmlType.F16));
            Assert.Equal(["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"], layer.Matrices.Select(m => m.Name));
            Assert.Equal(2 * 256, layer.OtherParameters); // attn_norm and ffn_norm
            Assert.Equal(2 * layer.MatrixParameters, layer.FlopsPerToken);
            Assert.Equal(2 * 4 * 64 * 2, layer.KvBytesPerToken); // K and V, 4 kv heads of 64, F16
            Assert.Equal(4L * 4 * 64 * 1000, layer.AttentionFlops(1000));
        }

        MatrixSpec downProjection = spec.Layers[0].Matrices.Single(m => m.Name == "ffn_down");
        Assert.Equal((512, 256), (downProjection.RowLength, downProjection.Rows));
        Assert.Equal(new MatrixSpec("token_embd", 256, 32000), spec.TokenEmbedding);
        Assert.Equal(4, spec.Output.Index);
        Assert.Equal(new MatrixSpec("output", 256, 32000), Assert.Single(spec.Output.Matrices));
        Assert.Equal(256, spec.Output.OtherParameters); // output_norm
        Assert.Equal(0, spec.Output.KvBytesPerToken);
    }

    [Fact]
    public void From_gguf_reads_quantized_grouped_query_expert_and_tied_models()
    {
        // Two layers of a made-up architecture: Q4_K matrices, per-layer kv heads (the second layer has no attention
        // cache), an expert tensor with 2 of 4 experts used, a router that stays F32, learned positions, a tied output.
        var writer = new GgufWriter();
        writer.AddMetadata("general.architecture", "toy");
        writer.AddMetadata("general.name", "toy model");
        writer.AddMetadata("toy.block_count", 2u);
        writer.AddMetadata("toy.embedding_length", 512u);
        writer.AddMetadata("toy.feed_forward_length", 1024u);
        writer.AddMetadata("toy.attention.head_count", 8u);
        writer.AddMetadata("toy.attention.head_count_kv", GgufArray.Create<uint>([2, 0]));
        writer.AddMetadata("toy.expert_count", 4u);
        writer.AddMetadata("toy.expert_used_count", 2u);
        void Add(string name, GgmlType type, params long[] shape) =>
            writer.AddTensor(name, type, shape, new byte[GgmlTypes.TensorBytes(type, shape)]);

        Add("token_embd.weight", GgmlType.Q8_0, 512, 1000);
        Add("position_embd.weight", GgmlType.F32, 512, 64);
        Add("output_norm.weight", GgmlType.F32, 512);
        for (int i = 0; i < 2; i++)
        {
            Add($"blk.{i}.attn_norm.weight", GgmlType.F32, 512);
            Add($"blk.{i}.attn_q.weight", GgmlType.Q4_K, 512, 512);
            Add($"blk.{i}.attn_q.bias", GgmlType.F32, 512);
            Add($"blk.{i}.attn_k.weight", GgmlType.Q4_K, 512, 128);
            Add($"blk.{i}.ffn_gate_inp.weight", GgmlType.F32, 512, 4);
            Add($"blk.{i}.attn_scale.weight", GgmlType.F32, 512, 1); // 1-D to ggml: trailing 1s do not count
            Add($"blk.{i}.ffn_up_exps.weight", GgmlType.Q4_K, 512, 1024, 4);
        }

        string path = TestModels.TempPath("toy.gguf");
        writer.Write(path);
        GgufFile file = GgufReader.Read(path);
        ModelSpec spec = ModelSpec.FromGguf(file);

        Assert.Equal("toy model", spec.Name);
        Assert.Equal(1000, spec.VocabularySize);
        Assert.Equal(1024, spec.FeedForwardLength);
        Assert.Equal(512 * 64, spec.InputParameters);
        Assert.True(spec.OutputTied);
        Assert.Equal(spec.TokenEmbedding with { Name = "output" }, Assert.Single(spec.Output.Matrices));
        Assert.Equal(file.Tensors.Sum(t => t.ElementCount), spec.Parameters);

        LayerSpec first = spec.Layers[0];
        Assert.Equal(["attn_q", "attn_k", "ffn_up_exps"], first.Matrices.Select(m => m.Name));
        Assert.Equal(512 + 512 + (512 * 4) + 512, first.OtherParameters); // norm, bias, router, scale
        MatrixSpec experts = first.Matrices[2];
        Assert.Equal((512, 1024 * 4, (long?)(1024 * 2)), (experts.RowLength, experts.Rows, experts.ActiveRows));
        Assert.Equal(2 * ((512 * 512) + (512 * 128) + (512 * 1024 * 2)), first.FlopsPerToken);
        Assert.Equal(2 * 2 * 64 * 2, first.KvBytesPerToken);
        Assert.Equal(0, spec.Layers[1].KvBytesPerToken);

        // The planned bytes at the file's own type are the file's bytes.
        long fileBytes = file.Tensors.Where(t => t.Layer == 0).Sum(t => t.Bytes);
        Assert.Equal(file.Tensors.Where(t => t.Layer == 0 && t.Type == GgmlType.F32).Sum(t => t.ElementCount), first.OtherParameters);
        Assert.Equal(fileBytes, first.WeightBytes(GgmlType.Q4_K));
    }

    [Fact]
    public void From_gguf_refuses_a_file_that_is_not_a_layered_model()
    {
        var writer = new GgufWriter();
        writer.AddMetadata("general.architecture", "llama");
        string path = TestModels.TempPath("empty.gguf");
        writer.Write(path);
        var ex = Assert.Throws<InvalidDataException>(() => ModelSpec.FromGguf(GgufReader.Read(path)));
        Assert.Contains("token_embd", ex.Message, StringComparison.Ordinal);

        // A hostile layer count is refused before anything of its size is allocated.
        writer.AddMetadata("llama.block_count", 4_000_000_000u);
        writer.AddTensor("token_embd.weight", GgmlType.F32, [4, 4], new byte[64]);
        writer.Write(path);
        ex = Assert.Throws<InvalidDataException>(() => ModelSpec.FromGguf(GgufReader.Read(path)));
        Assert.Contains("4000000000 layers", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_form_round_trips()
    {
        ModelSpec spec = ModelSpec.FromGguf(GgufReader.Read(TestModels.Small));
        string json = JsonSerializer.Serialize(spec, PlanningJson.Options);
        Assert.Contains("\"kvBytesPerToken\": 1024", json, StringComparison.Ordinal);
        Assert.Contains("\"rowLength\": 256", json, StringComparison.Ordinal);

        ModelSpec back = JsonSerializer.Deserialize<ModelSpec>(json, PlanningJson.Options)!;
        Assert.Equal(json, JsonSerializer.Serialize(back, PlanningJson.Options));
        Assert.Equal(spec.Parameters, back.Parameters);
    }
}
