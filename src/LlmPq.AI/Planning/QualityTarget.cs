using LlmPq.Gguf;

namespace LlmPq.Planning;

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
