using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// Measured layer times of one device, which replace the roofline for the types they cover (see <see cref="ProfiledCostModel"/>).
/// </summary>
/// <remarks>
/// LLM-PQ profiles one decoder layer per (device, model size, bit width) over a grid of batch sizes and lengths and
/// fits a linear regression per phase (prefill on [b, s, b·s, b·s², 1], decode on [b·(s+i), b, i, 1]). A profile here
/// keeps the same idea in the smallest form that still separates the three costs that matter: a fixed cost per layer
/// step, a cost per token, and a cost per token and context position (attention). It is measured on layers of
/// <see cref="LayerParameters"/> weights and scaled by weights to layers of other sizes, so one profile serves every
/// layer of a model exactly and other models approximately.
/// </remarks>
/// <param name="LayerParameters">The matrix weights of the layer the profile was measured on (<see cref="LayerSpec.MatrixParameters"/>).</param>
/// <param name="Types">One entry per measured type.</param>
public sealed record DeviceProfile(long LayerParameters, IReadOnlyList<TypeProfile> Types)
{
    /// <summary>Gets the name of the model the profile was measured with, for people reading it.</summary>
    public string? Model { get; init; }

    /// <summary>Finds the entry of <paramref name="type"/>.</summary>
    /// <param name="type">A ggml type.</param>
    /// <returns>The entry, or null when the profile did not measure that type.</returns>
    public TypeProfile? Find(GgmlType type) => Types.FirstOrDefault(t => t.Type == type);
}

/// <summary>The measured costs of one layer at one weight type.</summary>
/// <param name="Type">The weight type of the layer's matrices.</param>
/// <param name="Prefill">Seconds to prefill a chunk: tokens = the chunk's tokens, context = the mean position attended to.</param>
/// <param name="Decode">Seconds for one decode step: tokens = the sequences in the batch, context = their context length.</param>
public sealed record TypeProfile(GgmlType Type, LayerTimeFit Prefill, LayerTimeFit Decode);

/// <summary>A fitted layer time: <c>seconds = Fixed + PerToken × tokens + PerTokenContext × tokens × context</c>.</summary>
/// <param name="Fixed">Seconds per layer step whatever its size (kernel launches, synchronization).</param>
/// <param name="PerToken">Seconds per token (the matrix work, or reading the weights when that dominates).</param>
/// <param name="PerTokenContext">Seconds per token and context position (attention).</param>
public sealed record LayerTimeFit(double Fixed, double PerToken, double PerTokenContext)
{
    /// <summary>Evaluates the fit.</summary>
    /// <param name="tokens">The tokens (prefill) or sequences (decode).</param>
    /// <param name="context">The context length the tokens attend to.</param>
    /// <returns>Seconds for one layer.</returns>
    public double Seconds(double tokens, double context) => Fixed + (PerToken * tokens) + (PerTokenContext * tokens * context);
}
