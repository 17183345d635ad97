namespace LlmPq.Host.Serving;

/// <summary>An OpenAI request the endpoint cannot read: a missing field, a value of the wrong shape. Answered with 400.</summary>
internal sealed class OpenAIRequestException : Exception
{
    public OpenAIRequestException()
    {
    }

    public OpenAIRequestException(string message)
        : base(message)
    {
    }

    public OpenAIRequestException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public OpenAIRequestException(string message, string param)
        : base(message)
    {
        Param = param;
    }

    /// <summary>Gets the request field at fault, in OpenAI's notation (<c>messages[2].content</c>).</summary>
    public string? Param { get; }
}
