namespace LlmPq.Pipeline;

/// <summary>
/// One stage of the pipeline the engine loads the model across: a contiguous range of layers, in pipeline order, on a
/// stage server or on this process's CPU.
/// </summary>
public sealed class LlmPqStageOptions
{
    /// <summary>
    /// Gets or sets the stage server (<c>host:port</c> of a <c>ggml-rpc-server</c>, see <c>llmpq stage</c>), or null
    /// for this process's CPU. Only the first stage can be in-process: llama.cpp keeps the layers it does not offload
    /// before the offloaded ones.
    /// </summary>
    public string? Endpoint { get; set; }

    /// <summary>Gets or sets the number of layers the stage runs (the last stage also runs the output layer).</summary>
    public int Layers { get; set; }
}
