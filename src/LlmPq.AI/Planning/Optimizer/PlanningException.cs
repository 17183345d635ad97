namespace LlmPq.Planning.Optimizer;

/// <summary>The exception thrown when a <see cref="PlanningProblem"/> has no feasible plan.</summary>
public sealed class PlanningException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PlanningException"/> class.</summary>
    public PlanningException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PlanningException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PlanningException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PlanningException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The exception that caused this one.</param>
    public PlanningException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PlanningException"/> class for a model that does not fit.</summary>
    /// <param name="message">The message.</param>
    /// <param name="shortfallBytes">The memory missing (see <see cref="ShortfallBytes"/>).</param>
    public PlanningException(string message, long shortfallBytes)
        : base(message)
    {
        ShortfallBytes = shortfallBytes;
    }

    /// <summary>
    /// Gets, when the model does not fit, the least total memory the devices lack over all plans with every layer at
    /// its smallest type; 0 when memory is not the reason.
    /// </summary>
    public long ShortfallBytes { get; }
}
