using LlmPq.Gguf;

namespace LlmPq.Planning.Indicator;

/// <summary>How <see cref="QualityIndicator.Compute"/> measures a model.</summary>
public sealed record QualityIndicatorOptions
{
    /// <summary>Gets the candidate types, the columns of the table; by default <see cref="QualityIndicator.CandidateTypes"/>.</summary>
    public IReadOnlyList<GgmlType> Types { get; init; } = QualityIndicator.CandidateTypes;

    /// <summary>
    /// Gets the most rows of one matrix to quantize; a matrix with more has this many, evenly spaced, and its error is
    /// scaled to all its rows. 256 rows of a 70B model's matrices are 2 to 7 million weights, plenty for a mean.
    /// </summary>
    public int MaxRowsPerMatrix { get; init; } = 256;

    /// <summary>Gets the most matrices measured at once; -1 (the default) for one per processor.</summary>
    public int MaxDegreeOfParallelism { get; init; } = -1;
}
