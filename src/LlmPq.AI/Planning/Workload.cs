using System.Text.Json.Serialization;

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
