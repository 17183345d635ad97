namespace LlmPq;

/// <summary>
/// LlmPq cannot serve any request right now (the engine is not loaded yet or has stopped, the queue is full, or a
/// pipeline stage failed). The same request may succeed later. The OpenAI endpoint answers it with status 503.
/// </summary>
public sealed class LlmPqUnavailableException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="LlmPqUnavailableException"/> class.</summary>
    public LlmPqUnavailableException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="LlmPqUnavailableException"/> class with a message.</summary>
    /// <param name="message">Why, and when to retry.</param>
    public LlmPqUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="LlmPqUnavailableException"/> class with a message and a cause.</summary>
    /// <param name="message">Why, and when to retry.</param>
    /// <param name="innerException">The cause.</param>
    public LlmPqUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
