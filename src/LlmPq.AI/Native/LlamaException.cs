namespace LlmPq.Native;

/// <summary>A llama.cpp call failed; the message says which call, on what, and what llama.cpp logged about it.</summary>
public sealed class LlamaException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="LlamaException"/> class.</summary>
    public LlamaException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="LlamaException"/> class with a message.</summary>
    /// <param name="message">What failed.</param>
    public LlamaException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="LlamaException"/> class with a message and a cause.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The cause.</param>
    public LlamaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
