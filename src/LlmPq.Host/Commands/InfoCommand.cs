using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq info</c>: a model's shape and its tensors, read from the GGUF header without loading weights, or the
/// shape of a named preset (<c>--preset</c>) as the planner sees it.
/// </summary>
internal static class InfoCommand
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create()
    {
        var path = new Argument<FileInfo?>("path") { Description = "GGUF model file.", Arity = ArgumentArity.ZeroOrOne };
        var preset = new Option<string?>("--preset") { Description = $"A named model shape instead of a file: {string.Join(", ", ModelPresets.Names)}." };
        var json = new Option<bool>("--json") { Description = "Print JSON (a file: architecture, layerCount, embeddingLength, vocabularySize, tensors[] …; a preset: its ModelSpec)." };
        var command = new Command("info", "Show a GGUF model's (or a preset's) architecture, dimensions and per-layer tensor types and sizes.") { path, preset, json };
        command.SetAction((parse, ct) => Cli.RunAsync(() =>
        {
            FileInfo? file = parse.GetValue(path);
            string? presetName = parse.GetValue(preset);
            if ((file is null) == (presetName is null))
            {
                throw new ArgumentException("Give either a GGUF file PATH or --preset NAME (not both).");
            }

            if (presetName is not null)
            {
                ShowPreset(presetName, parse.GetValue(json));
                return Task.FromResult(0);
            }

            ModelInfo info = ModelInfo.From(GgufReader.Read(file!.FullName));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(info, s_json));
            }
            else
            {
                Print(info);
            }

            return Task.FromResult(0);
        }));
        return command;
    }

    private static void ShowPreset(string name, bool json)
    {
        if (!ModelPresets.Names.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"There is no model preset '{name}'. Known presets: {string.Join(", ", ModelPresets.Names)}.");
        }

        ModelSpec spec = ModelSpec.Preset(name);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(spec, PlanningJson.Options));
            return;
        }

        // The file table, with sizes at F16: a preset has shapes, not types.
        const GgmlType Type = GgmlType.F16;
        var layers = new List<LayerInfo> { new("token_embd", spec.TokenEmbedding.Bytes(Type) + (spec.InputParameters * sizeof(float)), ["f16"]) };
        layers.AddRange(spec.Layers.Select(l => new LayerInfo($"blk.{l.Index}", l.WeightBytes(Type), ["f16", "f32"])));
        layers.Add(new LayerInfo("output", spec.Output.WeightBytes(Type), spec.OutputTied ? ["f16", "f32", "tied to token_embd"] : ["f16", "f32"]));
        Print(new ModelInfo(
            spec.Architecture,
            spec.Name,
            spec.LayerCount,
            spec.EmbeddingLength,
            spec.FeedForwardLength,
            spec.HeadCount,
            spec.KvHeadCount,
            spec.VocabularySize,
            spec.ContextLength,
            string.Create(CultureInfo.InvariantCulture, $"preset, {spec.Parameters / 1e9:F2} B parameters, sizes at F16"),
            layers.Sum(l => l.Bytes) - (spec.OutputTied ? spec.TokenEmbedding.Bytes(Type) : 0),
            layers,
            []));
    }

    private static void Print(ModelInfo info)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"architecture      {info.Architecture}"));
        Console.WriteLine(string.Create(c, $"name              {info.Name}"));
        Console.WriteLine(string.Create(c, $"layers            {info.LayerCount}"));
        Console.WriteLine(string.Create(c, $"embedding         {info.EmbeddingLength}"));
        Console.WriteLine(string.Create(c, $"feed-forward      {info.FeedForwardLength}"));
        Console.WriteLine(string.Create(c, $"heads / kv heads  {info.HeadCount} / {info.HeadCountKv}"));
        Console.WriteLine(string.Create(c, $"vocabulary        {info.VocabularySize}"));
        Console.WriteLine(string.Create(c, $"context length    {info.ContextLength}"));
        Console.WriteLine(string.Create(c, $"file type         {info.FileType}"));
        Console.WriteLine(info.Tensors.Count == 0
            ? string.Create(c, $"size              {info.TotalBytes / 1048576.0:F2} MiB")
            : string.Create(c, $"tensors           {info.Tensors.Count}, {info.TotalBytes / 1048576.0:F2} MiB"));
        Console.WriteLine();
        Console.WriteLine("layer               bytes  types");
        foreach (LayerInfo layer in info.Layers)
        {
            Console.WriteLine(string.Create(c, $"{layer.Name,-12} {layer.Bytes,12}  {string.Join(", ", layer.Types)}"));
        }
    }

    /// <summary>The JSON form of <c>llmpq info</c>.</summary>
    internal sealed record ModelInfo(
        string Architecture,
        string? Name,
        int LayerCount,
        long EmbeddingLength,
        long FeedForwardLength,
        long HeadCount,
        long HeadCountKv,
        long VocabularySize,
        long ContextLength,
        string FileType,
        long TotalBytes,
        IReadOnlyList<LayerInfo> Layers,
        IReadOnlyList<TensorEntry> Tensors)
    {
        public static ModelInfo From(GgufFile file)
        {
            string arch = file.Architecture ?? throw new InvalidDataException("The GGUF has no general.architecture; it is not a model file.");
            long Int(string key) => file.TryGetInteger($"{arch}.{key}", out long v) ? v : 0;
            var tensors = file.Tensors.Select(t => new TensorEntry(t.Name, GgmlTypes.Name(t.Type), t.Bytes, t.Shape)).ToList();
            long vocab = Int("vocab_size");
            if (vocab == 0 && file.Metadata.FirstOrDefault(m => m.Key == "tokenizer.ggml.tokens")?.Value is GgufArray tokens)
            {
                vocab = tokens.Count;
            }

            var layers = file.Tensors
                .GroupBy(t => GgufFile.LayerOf(t.Name) is int n ? $"blk.{n}" : t.Name.Split('.')[0])
                .Select(g => new LayerInfo(g.Key, g.Sum(t => t.Bytes), [.. g.Select(t => GgmlTypes.Name(t.Type)).Distinct()]))
                .ToList();
            return new ModelInfo(
                arch,
                file.TryGetString("general.name", out string? name) ? name : null,
                (int)Int("block_count"),
                Int("embedding_length"),
                Int("feed_forward_length"),
                Int("attention.head_count"),
                Int("attention.head_count_kv"),
                vocab,
                Int("context_length"),
                file.TryGetInteger("general.file_type", out long ft) ? FileTypeName(ft) : "unknown",
                tensors.Sum(t => t.Bytes),
                layers,
                tensors);
        }

        // llama_ftype values of the types LlmPq writes or plans with (llama.h).
        private static string FileTypeName(long ftype) => ftype switch
        {
            0 => "all F32",
            1 => "mostly F16",
            7 => "mostly Q8_0",
            10 => "mostly Q2_K",
            12 => "mostly Q3_K_M",
            15 => "mostly Q4_K_M",
            17 => "mostly Q5_K_M",
            18 => "mostly Q6_K",
            32 => "mostly BF16",
            _ => string.Create(CultureInfo.InvariantCulture, $"llama_ftype {ftype}"),
        };
    }

    /// <summary>The tensors of one layer (or of one non-layer tensor group such as <c>token_embd</c>).</summary>
    internal sealed record LayerInfo(string Name, long Bytes, IReadOnlyList<string> Types);

    /// <summary>One tensor: its name, its type as ggml names it, its size and its shape.</summary>
    internal sealed record TensorEntry(string Name, string Type, long Bytes, IReadOnlyList<long> Shape);
}
