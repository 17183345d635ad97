using System.Net;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Serving;

/// <summary>The log messages of the OpenAI endpoint.</summary>
internal static partial class ServingLog
{
    [LoggerMessage(301, LogLevel.Information, "Serving the OpenAI-compatible API at {Address}")]
    public static partial void Listening(ILogger logger, Uri address);

    [LoggerMessage(302, LogLevel.Warning,
        "LISTENING BEYOND LOOPBACK on {Address}: every machine that can reach this port can use the model with the API key, "
        + "and the traffic, key included, is plain HTTP. Put a TLS proxy in front of it on any network you do not trust.")]
    public static partial void ListeningBeyondLoopback(ILogger logger, IPAddress address);

    [LoggerMessage(303, LogLevel.Debug, "Refused {Method} {Path} from {RemoteAddress}: missing or wrong API key")]
    public static partial void Unauthorized(ILogger logger, string method, string path, IPAddress? remoteAddress);

    [LoggerMessage(304, LogLevel.Debug, "Chat completion {RequestId} started: {MessageCount} messages, model '{Model}', streaming {Streaming}")]
    public static partial void ChatStarted(ILogger logger, string requestId, int messageCount, string? model, bool streaming);

    [LoggerMessage(305, LogLevel.Debug,
        "Chat completion {RequestId} finished ({FinishReason}): {PromptTokens} prompt and {CompletionTokens} completion tokens in {ElapsedMs} ms")]
    public static partial void ChatFinished(ILogger logger, string requestId, string finishReason, long promptTokens, long completionTokens, long elapsedMs);

    [LoggerMessage(306, LogLevel.Debug, "Chat completion {RequestId} cancelled after {ElapsedMs} ms: the client went away")]
    public static partial void ChatCancelled(ILogger logger, string requestId, long elapsedMs);

    [LoggerMessage(307, LogLevel.Debug, "Chat completion {RequestId} refused with status {StatusCode} ({Code}): {Message}")]
    public static partial void ChatRefused(ILogger logger, string requestId, int statusCode, string? code, string message);

    [LoggerMessage(308, LogLevel.Error, "Chat completion {RequestId} failed")]
    public static partial void ChatFailed(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(309, LogLevel.Information, "Stopping: {InFlight} requests in flight get up to {GraceSeconds} s to finish; new ones get 503")]
    public static partial void Draining(ILogger logger, int inFlight, long graceSeconds);

    [LoggerMessage(310, LogLevel.Warning, "Stopping: the grace period is over; ending the {InFlight} requests still in flight with an error")]
    public static partial void DrainTimedOut(ILogger logger, int inFlight);
}
