using System.Diagnostics;

namespace LlmPq.Chat;

/// <summary>
/// The <c>LlmPq</c> activity source: one span per chat request served by the engine, with the OpenTelemetry GenAI
/// attributes (operation, provider, model, token usage, finish reason) and the first token as an event. M.E.AI's
/// <c>UseOpenTelemetry</c> adds the client's own span around it.
/// </summary>
internal static class ChatTelemetry
{
    /// <summary>The activity source's name (the same as the engine's meter).</summary>
    public const string SourceName = "LlmPq";

    /// <summary>Gets the activity source.</summary>
    public static ActivitySource Source { get; } = new(SourceName);
}
