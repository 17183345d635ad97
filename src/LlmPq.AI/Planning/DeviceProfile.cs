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
/// <see cref="LayerParameters"/> weights; <c>llmpq profile</c> records the <see cref="ModelShape"/> it measured, and a
/// profile with a shape is only used to plan models of that shape (<see cref="ClusterSpec.CheckProfiles"/>).
/// </remarks>
/// <param name="LayerParameters">The matrix weights of the layer the profile was measured on (<see cref="LayerSpec.MatrixParameters"/>).</param>
/// <param name="Types">One entry per measured type.</param>
public sealed record DeviceProfile(long LayerParameters, IReadOnlyList<TypeProfile> Types)
{
    /// <summary>Gets the name of the model the profile was measured with, for people reading it.</summary>
    public string? Model { get; init; }

    /// <summary>
    /// Gets the <see cref="Planner.ShapeFingerprint"/> of the model the profile was measured for; null for a profile
    /// written by hand, which is used for any model (scaled by weights).
    /// </summary>
    public string? ModelShape { get; init; }

    /// <summary>Gets when the measurement was made (UTC), for people reading it.</summary>
    public DateTimeOffset? Measured { get; init; }

    /// <summary>
    /// Gets the measured hop between the device's stage server and the coordinator (through ggml RPC), which replaces
    /// the cluster file's link for the transfers to and from this device; null for an in-process device.
    /// </summary>
    public HopProfile? Hop { get; init; }

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
    /// <summary>Gets how well the fit explains the measured times: R² (1 is perfect), when measured.</summary>
    public double? RSquared { get; init; }

    /// <summary>Gets the largest |fit − measured| / measured over the measured points, when measured.</summary>
    public double? MaxRelativeResidual { get; init; }

    /// <summary>Gets the number of grid points the fit was made from, when measured.</summary>
    public int? Points { get; init; }

    /// <summary>Evaluates the fit.</summary>
    /// <param name="tokens">The tokens (prefill) or sequences (decode).</param>
    /// <param name="context">The context length the tokens attend to.</param>
    /// <returns>Seconds for one layer.</returns>
    public double Seconds(double tokens, double context) => Fixed + (PerToken * tokens) + (PerTokenContext * tokens * context);
}

/// <summary>
/// A measured hop between a stage server and the coordinator: <c>seconds = LatencyMs / 1000 + 8 × bytes / (Gbps × 10⁹)</c>,
/// the α-β form of <see cref="LinkSpec"/>.
/// </summary>
/// <param name="LatencyMs">The fixed cost of one step across the hop, in milliseconds (RPC round trips included).</param>
/// <param name="Gbps">The bandwidth the hidden state crossed at, in Gbit/s.</param>
public sealed record HopProfile(double LatencyMs, double Gbps)
{
    /// <summary>Gets how well the α-β line explains the measured hop times (R²), when measured.</summary>
    public double? RSquared { get; init; }

    /// <summary>Gets the largest |fit − measured| / measured over the measured points, when measured.</summary>
    public double? MaxRelativeResidual { get; init; }

    /// <summary>Gets the hop as a link between <paramref name="host"/> and <paramref name="coordinator"/>.</summary>
    /// <param name="host">The device's host.</param>
    /// <param name="coordinator">The coordinator's host.</param>
    /// <returns>The link.</returns>
    public LinkSpec ToLink(string host, string coordinator) => new([host, coordinator], Gbps, LatencyMs);
}

/// <summary>
/// The measured cost of one engine iteration outside <c>llama_decode</c>, in the process that holds the context (the
/// coordinator): scheduling, sampling each sequence over the vocabulary, detokenizing and streaming.
/// <c>seconds = (FixedMs + PerSequenceMs × sequences sampled) / 1000</c>.
/// </summary>
/// <param name="FixedMs">Milliseconds per iteration whatever its size.</param>
/// <param name="PerSequenceMs">Milliseconds per sequence that gets a token in the iteration.</param>
public sealed record CoordinatorProfile(double FixedMs, double PerSequenceMs)
{
    /// <summary>Gets the batch the profile was measured at (its largest), for people reading it.</summary>
    public int? Sequences { get; init; }

    /// <summary>Gets the vocabulary the sampler ran over, for people reading it.</summary>
    public long? Vocabulary { get; init; }

    /// <summary>Gets the decode step's cost through the pipeline of a cluster whose devices share this machine's cores, where it was measured.</summary>
    public PipelineStepProfile? Pipeline { get; init; }

    /// <summary>Gets the seconds of one iteration that samples <paramref name="sequences"/> sequences.</summary>
    /// <param name="sequences">The sequences that get a token.</param>
    /// <returns>Seconds.</returns>
    public double Seconds(int sequences) => (FixedMs + (PerSequenceMs * sequences)) / 1000;
}

/// <summary>
/// The measured cost of a decode step outside the layers and the output head, taken through the pipeline itself: the
/// runner and one local stage server per device at its threads, as <c>serve --plan</c> starts them, answering a caller
/// over the runner's stream. On a machine whose cores the stages share, the hops through every stage, the sampling and
/// the stream contend for those cores, so they are measured together rather than added up from their parts.
/// <c>seconds = (FixedMs + PerSequenceMs × sequences) / 1000</c>.
/// </summary>
/// <param name="Stages">The stages the step went through (one per device of the cluster).</param>
/// <param name="FixedMs">Milliseconds per step whatever its size.</param>
/// <param name="PerSequenceMs">Milliseconds per sequence in the step.</param>
public sealed record PipelineStepProfile(int Stages, double FixedMs, double PerSequenceMs)
{
    /// <summary>Gets the batch the step was measured at (its largest), for people reading it.</summary>
    public int? Sequences { get; init; }

    /// <summary>Gets the seconds of one step of <paramref name="sequences"/> sequences.</summary>
    /// <param name="sequences">The sequences in the step.</param>
    /// <returns>Seconds.</returns>
    public double Seconds(int sequences) => (FixedMs + (PerSequenceMs * sequences)) / 1000;
}
