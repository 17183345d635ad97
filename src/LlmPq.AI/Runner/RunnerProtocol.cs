using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.AI;

namespace LlmPq.Runner;

/// <summary>
/// The runner protocol: one local socket connection per request. The client writes one JSON line (the chat request),
/// the runner answers with one JSON line per update and a last line that ends it (done, or an error). Closing the
/// connection cancels the request. Messages, options and updates travel in Microsoft.Extensions.AI's own JSON.
/// </summary>
internal static class RunnerProtocol
{
    /// <summary>Gets the serializer options: M.E.AI's, with options' collections populated in place.</summary>
    public static JsonSerializerOptions Json { get; } = new(AIJsonUtilities.DefaultOptions)
    {
        PreferredObjectCreationHandling = JsonObjectCreationHandling.Populate,

        // One message per line.
        WriteIndented = false,
    };

    /// <summary>A request: the conversation and its options; or a readiness probe.</summary>
    public sealed record Request(IList<ChatMessage>? Messages, ChatOptions? Options, bool Ping = false);

    /// <summary>One line of the answer: an update, the end, or an error.</summary>
    public sealed record Reply(ChatResponseUpdate? Update = null, bool Done = false, Failure? Error = null);

    /// <summary>An error that crosses the process boundary as the exception type the caller would have seen in-process.</summary>
    public sealed record Failure(string Kind, string Message, string? Code = null)
    {
        public const string Request = "request";
        public const string Unavailable = "unavailable";
        public const string Internal = "internal";

        public static Failure From(Exception exception) => exception switch
        {
            LlmPqRequestException e => new(Request, e.Message, e.Code),
            LlmPqUnavailableException e => new(Unavailable, e.Message),
            _ => new(Internal, $"The LlmPq runner failed: {exception.GetType().Name}: {exception.Message}"),
        };

        public Exception ToException() => Kind switch
        {
            Request => Code is null ? new LlmPqRequestException(Message) : new LlmPqRequestException(Code, Message),
            Unavailable => new LlmPqUnavailableException(Message),
            _ => new InvalidOperationException(Message),
        };
    }
}
