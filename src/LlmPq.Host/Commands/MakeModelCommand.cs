using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LlmPq.Gguf;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq make-model</c>: writes a deterministic random-weight llama model with a real tokenizer.</summary>
internal static class MakeModelCommand
{
    public static Command Create()
    {
        var defaults = new TinyLlamaModelOptions();
        var output = new Option<FileInfo>("--out", "-o") { Description = "Path of the GGUF file to write.", Required = true };
        var layers = new Option<int>("--layers") { Description = "Repeating layers.", DefaultValueFactory = _ => defaults.Layers };
        var embd = new Option<int>("--embd") { Description = "Embedding width.", DefaultValueFactory = _ => defaults.EmbeddingLength };
        var ff = new Option<int>("--ff") { Description = "Feed-forward width.", DefaultValueFactory = _ => defaults.FeedForwardLength };
        var heads = new Option<int>("--heads") { Description = "Attention heads.", DefaultValueFactory = _ => defaults.HeadCount };
        var kvHeads = new Option<int>("--kv-heads") { Description = "Key/value heads (grouped-query attention when fewer than --heads).", DefaultValueFactory = _ => defaults.KvHeadCount };
        var ctx = new Option<int>("--ctx") { Description = "Training context length written in the metadata.", DefaultValueFactory = _ => defaults.ContextLength };
        var type = new Option<string>("--type") { Description = "Weight type of the matrices: f32 or f16.", DefaultValueFactory = _ => GgmlTypes.Name(defaults.WeightType) };
        type.AcceptOnlyFromAmong("f32", "f16");
        var seed = new Option<ulong>("--seed") { Description = "Seed of the weights; the same arguments give a byte-identical file.", DefaultValueFactory = _ => defaults.Seed };
        var vocab = new Option<FileInfo?>("--vocab") { Description = "Vocab-only GGUF to take the tokenizer from (default: llama.cpp's ggml-vocab-llama-spm.gguf from the native build)." };
        var template = new Option<string>("--chat-template")
        {
            Description = $"Chat template: {string.Join(", ", ChatTemplateLibrary.Names)}, or the path of a Jinja file.",
            DefaultValueFactory = _ => ChatTemplateLibrary.ChatMLName,
        };
        var command = new Command("make-model", "Write a tiny llama-architecture GGUF with random weights and a real tokenizer vocabulary.")
        {
            output, layers, embd, ff, heads, kvHeads, ctx, type, seed, vocab, template,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(() =>
        {
            GgmlType weightType = parse.GetValue(type) == "f32" ? GgmlType.F32 : GgmlType.F16;
            var options = new TinyLlamaModelOptions
            {
                Layers = parse.GetValue(layers),
                EmbeddingLength = parse.GetValue(embd),
                FeedForwardLength = parse.GetValue(ff),
                HeadCount = parse.GetValue(heads),
                KvHeadCount = parse.GetValue(kvHeads),
                ContextLength = parse.GetValue(ctx),
                WeightType = weightType,
                Seed = parse.GetValue(seed),
                VocabularyPath = parse.GetValue(vocab)?.FullName,
                ChatTemplate = ChatTemplateLibrary.Resolve(parse.GetValue(template)!),
            };
            string path = parse.GetValue(output)!.FullName;
            var stopwatch = Stopwatch.StartNew();
            TinyLlamaModel.Write(path, options);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {path} ({new FileInfo(path).Length / 1048576.0:F1} MiB, {options.Layers} layers × {options.EmbeddingLength} wide, {GgmlTypes.Name(weightType)}) in {stopwatch.ElapsedMilliseconds} ms"));
            return Task.FromResult(0);
        }));
        return command;
    }
}
