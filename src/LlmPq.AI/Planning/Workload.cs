using System.Text.Json.Serialization;
using LlmPq.Gguf;

namespace LlmPq.Planning;

/// <summary>
/// The offline batch a plan is made for, as LLM-PQ states it: <see cref="BatchSize"/> prompts of
/// <see cref="PromptTokens"/> tokens, each generating up to <see cref="GeneratedTokens"/> tokens.
/// </summary>
/// <remarks>LLM-PQ's experiments use B = 32, s = 512, n = 100 (and s = 128, n = 200 for latency-aware runs).</remarks>
public sealed record Workload
{
    /// <summary>Creates a workload.</summary>
    /// <param name="batchSize">The global batch B: sequences served together; at least 1.</param>
    /// <param name="promptTokens">The prompt length s; at least 1.</param>
    /// <param name="generatedTokens">The most tokens n a sequence generates; at least 1.</param>
    /// <param name="gamma">γ, the expected fraction of n a sequence generates before it stops, in (0, 1]; 1 by default.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    [JsonConstructor]
    public Workload(int batchSize, int promptTokens, int generatedTokens, double gamma = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(promptTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(generatedTokens, 1);
        if (!(gamma > 0 && gamma <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma is the expected fraction of the generated tokens, in (0, 1].");
        }

        BatchSize = batchSize;
        PromptTokens = promptTokens;
        GeneratedTokens = generatedTokens;
        Gamma = gamma;
    }

    /// <summary>Gets the global batch B.</summary>
    public int BatchSize { get; }

    /// <summary>Gets the prompt length s.</summary>
    public int PromptTokens { get; }

    /// <summary>Gets the most tokens n a sequence generates.</summary>
    public int GeneratedTokens { get; }

    /// <summary>Gets γ, the expected fraction of <see cref="GeneratedTokens"/> a sequence generates.</summary>
    public double Gamma { get; }

    /// <summary>Gets μn = max(1, round(γ·n)), the decode steps a plan expects.</summary>
    [JsonIgnore]
    public int ExpectedGeneratedTokens => Math.Max(1, (int)Math.Round(Gamma * GeneratedTokens, MidpointRounding.AwayFromZero));

    /// <summary>Gets the KV cache tokens every layer must hold: B × (s + n), all sequences at their longest.</summary>
    [JsonIgnore]
    public long KvCacheTokens => (long)BatchSize * (PromptTokens + GeneratedTokens);
}

/// <summary>
/// What a plan must keep of the model's quality: a soft weight θ on the quality indicator, and optionally a hard
/// bound that the plan's total indicator be no worse than one type used for every layer.
/// </summary>
/// <remarks>
/// The optimizer minimizes batch latency in seconds + θ × Σ ω over the layers' chosen types (LLM-PQ's objective),
/// subject to Σ ω ≤ Σ ω(<see cref="NoWorseThan"/>) when that is set. LLM-PQ has only the soft term, and its θ must be
/// tuned per cluster (1 to 50000 in its scripts); a bound stated as a type is a target a user can read, and θ then only
/// breaks near-ties toward better quality.
/// </remarks>
/// <param name="Theta">θ: seconds of batch latency one unit of the indicator ω is worth; not negative.</param>
/// <param name="NoWorseThan">The type whose uniform use bounds the plan's total indicator; null for no bound.</param>
public sealed record QualityTarget(double Theta, GgmlType? NoWorseThan)
{
    /// <summary>
    /// The default θ, 1e-4: LLM-PQ's command-line default (<c>--theta</c> in <c>llm_pq/algo/utils.py</c>).
    /// </summary>
    public const double DefaultTheta = 1e-4;

    /// <summary>
    /// Gets the default target: no worse than Q4_K everywhere, θ = <see cref="DefaultTheta"/>. Q4_K is the weight type of
    /// llama.cpp's most used preset (Q4_K_M), the usual point below which quality drops quickly.
    /// </summary>
    public static QualityTarget Default { get; } = new(DefaultTheta, GgmlType.Q4_K);

    /// <summary>Gets θ.</summary>
    public double Theta { get; } = double.IsFinite(Theta) && Theta >= 0
        ? Theta
        : throw new ArgumentOutOfRangeException(nameof(Theta), Theta, "theta is a finite weight, not negative.");
}
