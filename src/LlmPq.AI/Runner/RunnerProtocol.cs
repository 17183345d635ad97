using System.Text.Json;
using System.Text.Json.Serialization;
using LlmPq.Stages;
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

    /// <summary>
    /// A request: the conversation, its options and its tools' declarations (a tool's .NET delegate stays with the
    /// caller; the model only needs its name, description and schema); or a readiness probe; or a heartbeat, which the
    /// runner answers with its engine's running iteration (<see cref="Reply.Iteration"/>) for the pipeline's watchdog.
    /// </summary>
    public sealed record Request(IList<ChatMessage>? Messages, ChatOptions? Options, IList<Tool>? Tools = null, bool Ping = false, bool Heartbeat = false)
    {
        /// <summary>Gets the wire form of a call: options without tools, which travel as declarations beside them.</summary>
        public static Request For(IEnumerable<ChatMessage> messages, ChatOptions? options)
        {
            ChatOptions? wire = options?.Clone();
            if (wire is not null)
            {
                wire.Tools = null;
            }

            List<Tool>? tools = options?.Tools?.OfType<AIFunctionDeclaration>().Select(t => new Tool(t.Name, t.Description, t.JsonSchema)).ToList();
            return new([.. messages], wire, tools is { Count: > 0 } ? tools : null);
        }

        /// <summary>Gets the options the runner's client sees: the wire options with the tools declared again.</summary>
        public ChatOptions? ToOptions()
        {
            if (Tools is not { Count: > 0 } tools)
            {
                return Options;
            }

            ChatOptions options = Options ?? new();
            options.Tools = [.. tools.Select(t => AIFunctionFactory.CreateDeclaration(t.Name, t.Description, t.Schema))];
            return options;
        }
    }

    /// <summary>A tool's declaration: what the template and the grammar need of it.</summary>
    public sealed record Tool(string Name, string? Description, JsonElement Schema);

    /// <summary>One line of the answer: an update, the end, or an error; or the answer to a heartbeat (the running iteration, and the engine's measurements since the last heartbeat).</summary>
    public sealed record Reply(ChatResponseUpdate? Update = null, bool Done = false, Failure? Error = null, IterationReport? Iteration = null, IReadOnlyList<MetricRelay.Measurement>? Metrics = null);

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
