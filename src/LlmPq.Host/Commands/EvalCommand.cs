using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LlmPq.Evaluation;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq eval</c>: perplexity of a base model and a quantized one, and the KL divergence between them (llama-perplexity's method).</summary>
internal static class EvalCommand
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create()
    {
        var baseModel = new Option<FileInfo>("--base", "-b") { Description = "The reference GGUF (the unquantized source).", Required = true };
        var model = new Option<FileInfo>("--model", "-m") { Description = "The GGUF to evaluate (a quantized copy of the base).", Required = true };
        var text = new Option<FileInfo?>("--text") { Description = "Evaluation text (default: the text shipped with LlmPq)." };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Window length in tokens; the second half of each window is scored.", DefaultValueFactory = _ => 256 };
        var chunks = new Option<int>("--chunks") { Description = "Most windows to score (0: all).", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var command = new Command("eval", "Measure the quality a quantized model kept: perplexity of both, KL divergence and top-token agreement against the base.")
        {
            baseModel, model, text, ctx, chunks, threads, json,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var c = CultureInfo.InvariantCulture;
            string body = parse.GetValue(text) is { } file ? await File.ReadAllTextAsync(file.FullName, ct).ConfigureAwait(false) : EvaluationText.Default;
            var options = new QualityEvaluationOptions { ContextLength = parse.GetValue(ctx), MaxChunks = parse.GetValue(chunks), Threads = parse.GetValue(threads) };
            using var loggers = Cli.CreateLoggerFactory(parse);
            IProgress<QualityEvaluationProgress>? progress = Cli.StatusLine<QualityEvaluationProgress>(p => string.Create(c, $"{p.Model,-5} window {p.Chunk}/{p.Chunks}   "));
            QualityEvaluation r = await QualityEvaluator.EvaluateAsync(
                parse.GetValue(baseModel)!.FullName, parse.GetValue(model)!.FullName, body, options, progress, loggers, ct).ConfigureAwait(false);
            Cli.EndStatusLine();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(r, s_json));
                return 0;
            }

            Console.WriteLine(string.Create(c, $"windows     {r.Chunks} of {r.ContextLength} tokens, {r.Tokens} tokens scored"));
            Console.WriteLine(string.Create(c, $"perplexity  base {r.BasePerplexity:F4}, model {r.ModelPerplexity:F4} ({r.ModelPerplexity / r.BasePerplexity:F4}×)"));
            Console.WriteLine(string.Create(c, $"KLD         mean {r.KldMean:F6}, median {r.KldMedian:F6}, p99 {r.KldP99:F6}, max {r.KldMax:F6}"));
            Console.WriteLine(string.Create(c, $"same top    {r.SameTopToken:P2} of tokens"));
            return 0;
        }));
        return command;
    }
}

/// <summary>The evaluation text LlmPq ships: original prose written for the project, under its license.</summary>
internal static class EvaluationText
{
    /// <summary>Gets the text.</summary>
    public static string Default { get; } = Read();

    private static string Read()
    {
        using Stream stream = typeof(EvaluationText).Assembly.GetManifestResourceStream("LlmPq.Host.eval-text.txt")
            ?? throw new InvalidOperationException("The evaluation text is missing from the llmpq assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
