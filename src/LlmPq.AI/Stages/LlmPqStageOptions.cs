using System.Globalization;

namespace LlmPq.Stages;

/// <summary>
/// One stage of the pipeline the model is split across: a contiguous range of layers, in pipeline order, on a stage
/// server (<c>ggml-rpc-server</c>) or, for the first stage only, in the engine's own process.
/// </summary>
/// <remarks>
/// A stage with an <see cref="Endpoint"/> is a server someone else runs (<c>llmpq stage</c> on another machine). A
/// stage without one, and not <see cref="InProcess"/>, is a local server LlmPq starts, watches and restarts with the
/// given <see cref="Device"/> and <see cref="Threads"/>; the engine then runs in a child process of its own, so that a
/// stage's death (which makes ggml abort the process holding the model) never takes the application down.
/// </remarks>
public sealed class LlmPqStageOptions
{
    /// <summary>Gets or sets the stage server's <c>host:port</c>, or null for a local server LlmPq starts.</summary>
    public string? Endpoint { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the stage runs in the engine's process (its CPU). Only the first stage
    /// can: llama.cpp keeps the layers it does not offload before the offloaded ones.
    /// </summary>
    public bool InProcess { get; set; }

    /// <summary>Gets or sets the number of layers the stage runs (the last stage also runs the output layer).</summary>
    public int Layers { get; set; }

    /// <summary>Gets or sets the ggml device of a local server (<c>CPU</c>, <c>CUDA0</c>, …); null lets the server choose.</summary>
    public string? Device { get; set; }

    /// <summary>Gets or sets the CPU threads of a local server; 0 lets it choose.</summary>
    public int Threads { get; set; }

    /// <summary>Gets or sets the memory the stage needs (the plan's figure); a server with less free memory is refused before loading. 0 skips the check.</summary>
    public long MemoryBytes { get; set; }

    /// <summary>Gets a value indicating whether LlmPq starts this stage's server.</summary>
    internal bool IsLocalServer => !InProcess && string.IsNullOrEmpty(Endpoint);

    /// <summary>
    /// Gets what is wrong with <paramref name="stages"/> by themselves (the model is not needed), one message per
    /// problem naming the stage; the options validator and the engine's loader both ask.
    /// </summary>
    internal static IEnumerable<string> Problems(IEnumerable<LlmPqStageOptions> stages)
    {
        int i = 0;
        foreach (LlmPqStageOptions stage in stages)
        {
            if (stage.Layers <= 0)
            {
                yield return string.Create(CultureInfo.InvariantCulture, $"LlmPq:Stages:{i}:Layers must be positive (every stage runs at least one layer); it is {stage.Layers}.");
            }

            if (stage.InProcess && i > 0)
            {
                yield return string.Create(CultureInfo.InvariantCulture, $"LlmPq:Stages:{i}:InProcess: only the first stage can run in-process (llama.cpp keeps its own layers before the offloaded ones); give it a stage server.");
            }

            if (!string.IsNullOrEmpty(stage.Endpoint) && (stage.InProcess || !IsEndpoint(stage.Endpoint)))
            {
                yield return stage.InProcess
                    ? string.Create(CultureInfo.InvariantCulture, $"LlmPq:Stages:{i} is in-process and has an endpoint; give one or the other.")
                    : string.Create(CultureInfo.InvariantCulture, $"LlmPq:Stages:{i}:Endpoint '{stage.Endpoint}' is not host:port (for example 127.0.0.1:50052).");
            }

            if (stage.Threads < 0 || stage.MemoryBytes < 0)
            {
                yield return string.Create(CultureInfo.InvariantCulture, $"LlmPq:Stages:{i}: Threads and MemoryBytes must be 0 (unset) or more.");
            }

            i++;
        }
    }

    private static bool IsEndpoint(string endpoint)
    {
        int colon = endpoint.LastIndexOf(':');
        return colon > 0 && ushort.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) && port > 0;
    }
}
