namespace LlmPq.Gguf;

/// <summary>
/// The exception thrown when a file is not a valid GGUF file, or lacks what the caller needs from it.
/// </summary>
public sealed class GgufFormatException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="GgufFormatException"/> class.</summary>
    public GgufFormatException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="GgufFormatException"/> class.</summary>
    /// <param name="message">The message.</param>
    public GgufFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="GgufFormatException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The exception that caused this one.</param>
    public GgufFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="GgufFormatException"/> class.</summary>
    /// <param name="offset">The byte offset in the file where the problem is.</param>
    /// <param name="problem">What is wrong there.</param>
    public GgufFormatException(long offset, string problem)
        : base($"GGUF: at offset {offset}: {problem}")
    {
        Offset = offset;
    }

    /// <summary>Gets the byte offset in the file where the problem is, or -1 when unknown.</summary>
    public long Offset { get; } = -1;
}
