using System.Globalization;
using System.Text.RegularExpressions;
using LlmPq.Gguf;
using LlmPq.Native;

namespace LlmPq.Stages;

/// <summary>The devices of each stage and where llama.cpp put every layer.</summary>
/// <param name="Devices">Per stage, the device name llama.cpp reports (<c>CPU</c>, <c>RPC0</c>, …).</param>
/// <param name="LayerDevices">Per layer, the output layer last, the device llama.cpp assigned.</param>
internal sealed record Placement(IReadOnlyList<string> Devices, IReadOnlyList<string> LayerDevices);

/// <summary>
/// Loads a model across pipeline stages with exactly the planned layer ranges: the stage servers as devices in stage
/// order, <c>split_mode</c> LAYER, and a <c>tensor_split</c> of the stages' layer counts (the output layer counted on
/// the last stage), then checks llama.cpp's own report of where each layer went.
/// </summary>
/// <remarks>
/// llama.cpp gives layer <c>i</c> (of n + 1, the output layer last) to the first device whose cumulative split
/// exceeds <c>i / (n + 1)</c>; with integer layer counts as the split that is exact (the same float division on both
/// sides), so the check after loading guards against a llama.cpp that assigns differently, not against rounding.
/// </remarks>
internal static partial class LayerPlacement
{
    /// <summary>Loads <paramref name="path"/> across <paramref name="stages"/>.</summary>
    /// <exception cref="ArgumentException">The stages do not cover the model's layers, or an in-process stage is not the first.</exception>
    /// <exception cref="LlamaException">A stage server cannot be reached, or llama.cpp placed a layer elsewhere.</exception>
    public static (LlamaModel Model, Placement Placement) Load(string path, IReadOnlyList<LlmPqStageOptions> stages, bool pipelineParallelism = true)
    {
        int layers = LayerCount(path);
        Check(stages, layers);

        // ggml aborts the process on a server of another protocol version: check every one first (this is the
        // engine's own thread, so waiting here blocks nothing else).
        StageEndpointCheck.CheckAsync(
            [.. stages.Select((s, i) => (Stage: s, Index: i)).Where(x => !x.Stage.InProcess).Select(x => new StageRequirement(string.Create(CultureInfo.InvariantCulture, $"stage {x.Index}"), x.Stage.Endpoint!, x.Stage.MemoryBytes))],
            TimeSpan.FromSeconds(10),
            CancellationToken.None).GetAwaiter().GetResult();
        var devices = new List<BackendDevice>();
        var names = new List<string>();
        foreach (LlmPqStageOptions stage in stages)
        {
            if (stage.InProcess)
            {
                names.Add("CPU");
                continue;
            }

            IReadOnlyList<BackendDevice> served = BackendDevice.AddRpcServer(stage.Endpoint!);
            if (served.Count != 1)
            {
                throw new LlamaException(string.Create(CultureInfo.InvariantCulture, $"The stage server at {stage.Endpoint} serves {served.Count} devices; run one server per device (llmpq stage --device DEV) so each stage is one device."));
            }

            devices.Add(served[0]);
            names.Add(served[0].Name);
        }

        // Layers in this process: the first stage's when it is in-process, and the output layer too when it is the only stage.
        bool firstLocal = stages[0].InProcess;
        int local = firstLocal ? stages[0].Layers + (stages.Count == 1 ? 1 : 0) : 0;
        var load = new LlamaModelLoadOptions
        {
            Devices = devices,
            SplitMode = LlamaSplitMode.Layer,
            GpuLayers = layers + 1 - local,
            TensorSplit = Split(stages, firstLocal),
            PipelineParallelism = pipelineParallelism,
        };

        var assigned = new string?[layers + 1];
        LlamaModel model;
        using (LlamaBackend.ObserveLog(text => Record(text, assigned)))
        {
            model = LlamaModel.Load(path, load);
        }

        var expected = Expected(stages, names);
        for (int i = 0; i <= layers; i++)
        {
            if (assigned[i] != expected[i])
            {
                model.Dispose();
                string layer = i == layers ? "the output layer" : $"layer {i}";
                throw new LlamaException($"llama.cpp placed {layer} on {assigned[i] ?? "an unreported device"}; the pipeline puts it on {expected[i]}. The plan cannot be honoured by this llama.cpp build.");
            }
        }

        return (model, new Placement(names, expected));
    }

    /// <summary>The tensor split: each offloaded stage's layer count, the output layer counted on the last.</summary>
    internal static float[] Split(IReadOnlyList<LlmPqStageOptions> stages, bool firstInProcess)
    {
        float[] split = [.. stages.Skip(firstInProcess ? 1 : 0).Select(s => (float)s.Layers)];
        if (split.Length > 0)
        {
            split[^1] += 1;
        }

        return split;
    }

    /// <summary>Where each layer must go: per layer, the output layer last, the device of its stage.</summary>
    internal static string[] Expected(IReadOnlyList<LlmPqStageOptions> stages, IReadOnlyList<string> devices)
    {
        var expected = new List<string>();
        for (int s = 0; s < stages.Count; s++)
        {
            expected.AddRange(Enumerable.Repeat(devices[s], stages[s].Layers));
        }

        expected.Add(devices[^1]);
        return [.. expected];
    }

    /// <summary>Refuses stages that do not cover the model or put an in-process stage after a server.</summary>
    internal static void Check(IReadOnlyList<LlmPqStageOptions> stages, int layers)
    {
        if (stages.Count == 0)
        {
            throw new ArgumentException("A pipeline needs at least one stage.", nameof(stages));
        }

        string[] problems = [.. LlmPqStageOptions.Problems(stages)];
        if (problems.Length > 0)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(stages));
        }

        for (int i = 0; i < stages.Count; i++)
        {
            if (!stages[i].InProcess && string.IsNullOrEmpty(stages[i].Endpoint))
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"Stage {i} has no endpoint: the engine loads onto running stage servers only. Give its host:port, or serve through LlmPqPipeline, which starts local stage servers."), nameof(stages));
            }
        }

        int total = stages.Sum(s => s.Layers);
        if (total != layers)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"The stages run {total} layers in all; the model has {layers}. Make the stages' layer counts add up to the model's (a plan for this model does)."), nameof(stages));
        }
    }

    private static int LayerCount(string path) => Planning.ModelSpec.FromGguf(GgufReader.Read(path)).LayerCount;

    private static bool Record(string text, string?[] assigned)
    {
        Match m = AssignedLine().Match(text);
        if (m.Success && int.TryParse(m.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out int layer) && layer < assigned.Length)
        {
            assigned[layer] = m.Groups[2].Value;
        }

        return false;
    }

    [GeneratedRegex(@"layer\s+(\d+) assigned to device (\S+?),")]
    private static partial Regex AssignedLine();
}
