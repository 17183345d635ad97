using System.CommandLine;
using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Planning;
using LlmPq.Quantization;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq quantize</c>: one mixed-precision GGUF from a plan, through llama.cpp's quantizer, checked against the plan.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The F32, F16 or BF16 GGUF the plan was made for.", Required = true };
        var plan = new Option<FileInfo>("--plan", "-p") { Description = "The plan (JSON from 'llmpq plan --out').", Required = true };
        var output = new Option<FileInfo>("--out", "-o") { Description = "The quantized GGUF to write.", Required = true };
        var threads = new Option<int>("--threads", "-t") { Description = "Quantization threads (0: all cores).", DefaultValueFactory = _ => 0 };
        var command = new Command("quantize", "Write the mixed-precision GGUF a plan asks for: each layer at its planned type (llama.cpp's quantizer), then check every tensor.")
        {
            model, plan, output, threads,
        };

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            var c = CultureInfo.InvariantCulture;
            Plan p = Plan.Load(parse.GetValue(plan)!.FullName);
            using var loggers = Cli.CreateLoggerFactory(parse);
            IProgress<QuantizationProgress>? progress = Cli.StatusLine<QuantizationProgress>(q => string.Create(c, $"quantizing [{q.Tensor,4}/{q.TensorCount}] {q.TensorName,-40}"));
            QuantizationResult r = await PlanQuantizer.QuantizeAsync(
                parse.GetValue(model)!.FullName, p, parse.GetValue(output)!.FullName, parse.GetValue(threads), progress, loggers, ct).ConfigureAwait(false);
            Cli.EndStatusLine();

            const double MiB = 1 << 20;
            string types = PlanTable.TypeCounts(p.LayerTypes());
            Console.WriteLine(string.Create(c, $"wrote    {r.Path} in {r.Elapsed.TotalSeconds:F1} s: {r.TensorCount} tensors, every type as planned"));
            Console.WriteLine(string.Create(c, $"layers   {types}; embedding {GgmlTypes.Name(p.EmbeddingType)}, output {GgmlTypes.Name(p.OutputType)}"));
            Console.WriteLine(string.Create(c, $"size     file {r.FileBytes / MiB:F2} MiB; tensors {r.TensorBytes / MiB:F2} MiB; planner predicted {r.PredictedWeightBytes / MiB:F2} MiB ({(double)r.TensorBytes / r.PredictedWeightBytes:F4}×)"));
            return 0;
        }));
        return command;
    }
}
