using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LlmPq.Gguf;
using LlmPq.Native;
using LlmPq.Planning;
using Microsoft.Extensions.Logging;

namespace LlmPq.Quantization;

/// <summary>How far <see cref="PlanQuantizer"/> has come: llama.cpp is writing tensor <see cref="Tensor"/> of <see cref="TensorCount"/>.</summary>
/// <param name="Tensor">The tensor being written, from 1.</param>
/// <param name="TensorCount">The tensors of the model.</param>
/// <param name="TensorName">The tensor's name.</param>
public readonly record struct QuantizationProgress(int Tensor, int TensorCount, string TensorName);

/// <summary>A mixed-precision GGUF written by <see cref="PlanQuantizer"/>, checked against its plan.</summary>
/// <param name="Path">The written file.</param>
/// <param name="FileBytes">The file's size.</param>
/// <param name="TensorBytes">The bytes of its tensors (the data section without alignment padding).</param>
/// <param name="PredictedWeightBytes">The weight bytes the planner predicted for the plan (<see cref="MemoryModel.WeightBytes"/>).</param>
/// <param name="TensorCount">The tensors written.</param>
/// <param name="Elapsed">How long quantizing took.</param>
public sealed record QuantizationResult(string Path, long FileBytes, long TensorBytes, long PredictedWeightBytes, int TensorCount, TimeSpan Elapsed);

/// <summary>
/// Turns a plan into the one mixed-precision GGUF its stages load: llama.cpp's <c>llama_model_quantize</c> with a
/// tensor-type override per planned type (<c>^blk\.(3|4|9)\.</c> → Q4_K), the plan's token-embedding and output types,
/// and no type mixing of its own (<c>pure</c>), so every tensor gets exactly the planned type.
/// </summary>
/// <remarks>
/// The output is written to a temporary file beside the destination and renamed only once it has been read back and
/// every tensor's type checked against the plan, so a failure or a cancellation never leaves a half-written model.
/// </remarks>
public static partial class PlanQuantizer
{
    // llama_ftype values whose default type is the named one (llama.h); the mix presets (_M, _L) are not used.
    private static readonly Dictionary<GgmlType, int> s_fileTypes = new()
    {
        [GgmlType.F16] = 1, [GgmlType.Q8_0] = 7, [GgmlType.Q2_K] = 10, [GgmlType.Q3_K] = 11,
        [GgmlType.Q4_K] = 14, [GgmlType.Q5_K] = 16, [GgmlType.Q6_K] = 18,
    };

    /// <summary>Quantizes <paramref name="source"/> by <paramref name="plan"/> into <paramref name="destination"/>.</summary>
    /// <param name="source">An F32, F16 or BF16 GGUF of the model the plan was made for.</param>
    /// <param name="plan">The plan.</param>
    /// <param name="destination">The file to write; an existing one is replaced once the new one is complete.</param>
    /// <param name="threads">Quantization threads; 0 uses every core.</param>
    /// <param name="progress">Told of each tensor as llama.cpp starts it.</param>
    /// <param name="loggerFactory">Receives llama.cpp's log.</param>
    /// <param name="cancellationToken">
    /// Cancels the wait. llama.cpp cannot be interrupted: it finishes in the background, and its temporary file is
    /// removed.
    /// </param>
    /// <returns>The written file, with its sizes against the prediction.</returns>
    /// <exception cref="ArgumentException">The destination is the source.</exception>
    /// <exception cref="InvalidDataException">The plan was made for another model, the source is already quantized, or the output does not match the plan.</exception>
    /// <exception cref="LlamaException">llama.cpp failed.</exception>
    public static async Task<QuantizationResult> QuantizeAsync(
        string source,
        Plan plan,
        string destination,
        int threads = 0,
        IProgress<QuantizationProgress>? progress = null,
        ILoggerFactory? loggerFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        source = Path.GetFullPath(source);
        destination = Path.GetFullPath(destination);
        if (SameFile(source, destination))
        {
            throw new ArgumentException($"The output {destination} is the source model; write the quantized model to another file.", nameof(destination));
        }

        GgufFile input = GgufReader.Read(source);
        ModelSpec model = ModelSpec.FromGguf(input);
        CheckPlanFits(model, plan, source);
        CheckSourceTypes(input, source);
        Dictionary<string, GgmlType> expected = ExpectedTypes(input, plan);

        LlamaBackend.EnsureInitialized(loggerFactory);
        string directory = Path.GetDirectoryName(destination)!;
        Directory.CreateDirectory(directory);
        string partial = Path.Combine(directory, string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(destination)}.{Environment.ProcessId}.partial"));
        var watch = Stopwatch.StartNew();
        Task native = Task.Factory.StartNew(
            () => Run(source, partial, plan, threads, input.Tensors.Count, progress),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        try
        {
            await native.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The file is open in llama.cpp; unlinking it now still frees it when the process ends before llama.cpp does.
            File.Delete(partial);
            _ = native.ContinueWith(_ => File.Delete(partial), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            throw;
        }
        catch
        {
            File.Delete(partial);
            throw;
        }

        try
        {
            GgufFile output = GgufReader.Read(partial);
            CheckTypes(output, expected, destination);
            long tensorBytes = output.Tensors.Sum(t => GgmlTypes.TensorBytes(t.Type, t.Shape));
            File.Move(partial, destination, overwrite: true);
            return new QuantizationResult(
                destination,
                output.FileLength,
                tensorBytes,
                new MemoryModel(model, plan.Workload).WeightBytes(plan),
                output.Tensors.Count,
                watch.Elapsed);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
    }

    /// <summary>Refuses a plan made for another model.</summary>
    internal static void CheckPlanFits(ModelSpec model, Plan plan, string source)
    {
        if (plan.LayerCount != model.LayerCount)
        {
            throw new InvalidDataException($"The plan is for a model of {plan.LayerCount} layers ({plan.Model}); {source} has {model.LayerCount}. Make a plan for this model with 'llmpq plan'.");
        }

        string shape = Planner.ShapeFingerprint(model);
        if (!string.Equals(plan.ModelShape, shape, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"The plan was made for another model ({plan.Model}, shape {plan.ModelShape}); {source} has shape {shape}. Make a plan for this model with 'llmpq plan'.");
        }

        IReadOnlyList<GgmlType> types = plan.LayerTypes();
        for (int i = 0; i < types.Count; i++)
        {
            if (!model.Layers[i].CanTake(types[i]))
            {
                throw new InvalidDataException($"The plan gives layer {i} type {GgmlTypes.Name(types[i])}, whose blocks do not divide its rows; llama.cpp would substitute another type.");
            }
        }
    }

    private static void CheckSourceTypes(GgufFile input, string source)
    {
        GgufTensorInfo? quantized = input.Tensors.FirstOrDefault(t => GgufModelReader.IsQuantized(t) && t.Type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16));
        if (quantized is not null)
        {
            throw new InvalidDataException($"{source} is already quantized ({quantized.Name} is {GgmlTypes.Name(quantized.Type)}); quantize from the F32, F16 or BF16 model, as requantizing compounds the error.");
        }
    }

    /// <summary>The type each tensor must have in the output.</summary>
    internal static Dictionary<string, GgmlType> ExpectedTypes(GgufFile input, Plan plan)
    {
        IReadOnlyList<GgmlType> layers = plan.LayerTypes();
        var expected = new Dictionary<string, GgmlType>(StringComparer.Ordinal);
        foreach (GgufTensorInfo tensor in input.Tensors)
        {
            expected[tensor.Name] = !GgufModelReader.IsQuantized(tensor) ? tensor.Type
                : tensor.Name == "token_embd.weight" ? plan.EmbeddingType
                : tensor.Name == "output.weight" ? plan.OutputType
                : tensor.Layer is int layer ? layers[layer]
                : DefaultType(plan);
        }

        return expected;
    }

    private static void CheckTypes(GgufFile output, Dictionary<string, GgmlType> expected, string destination)
    {
        var wrong = output.Tensors
            .Where(t => !expected.TryGetValue(t.Name, out GgmlType type) || type != t.Type)
            .Select(t => expected.TryGetValue(t.Name, out GgmlType type) ? $"{t.Name} is {GgmlTypes.Name(t.Type)}, planned {GgmlTypes.Name(type)}" : $"{t.Name} was not in the source")
            .Take(5)
            .ToList();
        if (output.Tensors.Count != expected.Count)
        {
            wrong.Add($"{output.Tensors.Count} tensors written, {expected.Count} in the source");
        }

        if (wrong.Count > 0)
        {
            throw new InvalidDataException($"llama.cpp's output does not follow the plan, so {destination} was not written: {string.Join("; ", wrong)}.");
        }
    }

    // The file type names the most common quantized layer type. It must be a quantized type: llama.cpp applies
    // tensor overrides only when the default type is one.
    private static GgmlType DefaultType(Plan plan) =>
        plan.LayerTypes().Where(t => t != GgmlType.F16 && s_fileTypes.ContainsKey(t))
            .GroupBy(t => t).OrderByDescending(g => g.Count()).Select(g => g.Key).DefaultIfEmpty(GgmlType.Q8_0).First();

    /// <summary>The tensor-type overrides: one regex per planned type, naming its layers.</summary>
    internal static IReadOnlyList<(string Pattern, GgmlType Type)> Overrides(Plan plan) =>
        [.. plan.LayerTypes()
            .Select((type, layer) => (type, layer))
            .GroupBy(x => x.type)
            .Select(g => (string.Create(CultureInfo.InvariantCulture, $@"^blk\.({string.Join('|', g.Select(x => x.layer))})\."), g.Key))];

    private static unsafe void Run(string source, string partial, Plan plan, int threads, int tensorCount, IProgress<QuantizationProgress>? progress)
    {
        IReadOnlyList<(string Pattern, GgmlType Type)> overrides = Overrides(plan);
        var patterns = new IntPtr[overrides.Count];
        var table = new LlamaModelTensorOverride[overrides.Count + 1];
        Exception? progressFailure = null;
        try
        {
            for (int i = 0; i < overrides.Count; i++)
            {
                patterns[i] = Marshal.StringToCoTaskMemUTF8(overrides[i].Pattern);
                table[i] = new LlamaModelTensorOverride { Pattern = patterns[i], Type = (int)overrides[i].Type };
            }

            LlamaModelQuantizeParams parameters = LlamaNative.llama_model_quantize_default_params();
            parameters.Nthread = threads;
            parameters.Ftype = s_fileTypes[DefaultType(plan)];
            parameters.OutputTensorType = (int)plan.OutputType;
            parameters.TokenEmbeddingType = (int)plan.EmbeddingType;
            parameters.QuantizeOutputTensor = 1;
            parameters.Pure = 1;
            parameters.AllowRequantize = 0;
            uint status;
            fixed (LlamaModelTensorOverride* tableStart = table)
            {
                parameters.TtOverrides = (IntPtr)tableStart;
                using var errors = LlamaBackend.CaptureErrors();
                using var observation = LlamaBackend.ObserveLog(text =>
                {
                    // This runs inside llama.cpp's log callback, where an exception would end the process.
                    Match match = TensorLine().Match(text);
                    if (progressFailure is null && progress is not null && match.Success)
                    {
                        try
                        {
                            progress.Report(new QuantizationProgress(int.Parse(match.Groups[1].ValueSpan, CultureInfo.InvariantCulture), tensorCount, match.Groups[2].Value));
                        }
                        catch (Exception ex) when (ex is not OutOfMemoryException)
                        {
                            progressFailure = ex;
                        }
                    }

                    // llama.cpp warns of every override; here they are the plan, not news.
                    return text.Contains("applying manual override", StringComparison.Ordinal);
                });
                status = LlamaNative.llama_model_quantize(source, partial, &parameters);
                if (status != 0)
                {
                    throw new LlamaException($"llama_model_quantize failed on {source}: {errors.Summary}");
                }
            }
        }
        finally
        {
            foreach (IntPtr pattern in patterns)
            {
                Marshal.FreeCoTaskMem(pattern);
            }
        }

        if (progressFailure is not null)
        {
            throw new InvalidOperationException("The progress handler failed.", progressFailure);
        }
    }

    private static bool SameFile(string a, string b)
    {
        if (string.Equals(a, b, StringComparison.Ordinal))
        {
            return true;
        }

        // A link to the source is the source.
        static string Resolve(string path) => File.Exists(path) ? new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path : path;
        return string.Equals(Resolve(a), Resolve(b), StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^\[\s*(\d+)/\s*\d+\]\s+(\S+)")]
    private static partial Regex TensorLine();
}
