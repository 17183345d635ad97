namespace LlmPq;

/// <summary>
/// A request LlmPq cannot serve as asked (a prompt longer than the context, a model id that is not the loaded
/// model, options out of range). The caller must change the request; retrying it unchanged fails again.
/// The OpenAI endpoint answers it with status 400.
/// </summary>
public sealed class LlmPqRequestException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="LlmPqRequestException"/> class.</summary>
    public LlmPqRequestException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="LlmPqRequestException"/> class with a message.</summary>
    /// <param name="message">What is wrong and what to do.</param>
    public LlmPqRequestException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="LlmPqRequestException"/> class with a code and a message.</summary>
    /// <param name="code">A stable machine-readable code, for example <c>context_length_exceeded</c>.</param>
    /// <param name="message">What is wrong and what to do.</param>
    public LlmPqRequestException(string code, string message)
        : base(message)
    {
        Code = code;
    }

    /// <summary>Initializes a new instance of the <see cref="LlmPqRequestException"/> class with a message and a cause.</summary>
    /// <param name="message">What is wrong and what to do.</param>
    /// <param name="innerException">The cause.</param>
    public LlmPqRequestException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Gets a stable machine-readable code (<c>context_length_exceeded</c>, <c>model_not_found</c>, <c>invalid_request</c>).</summary>
    public string Code { get; } = "invalid_request";
}
