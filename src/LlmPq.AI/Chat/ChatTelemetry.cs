using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace LlmPq.Chat;

/// <summary>
/// The <c>LlmPq</c> activity source: one span per chat request, with the OpenTelemetry GenAI attributes (operation,
/// provider, model, token usage, finish reason) and the first update as an event. It is drawn where the request is
/// taken (<c>LlmPqChatClient</c>), so that a pipeline's requests are traced in the process that serves them, not only
/// in its runner. M.E.AI's <c>UseOpenTelemetry</c> adds the client's own span around it.
/// </summary>
internal static class ChatTelemetry
{
    /// <summary>The activity source's name (the same as the engine's meter).</summary>
    public const string SourceName = "LlmPq";

    /// <summary>Gets the activity source.</summary>
    public static ActivitySource Source { get; } = new(SourceName);

    /// <summary>Passes a request's updates through, recording them on a span of their own.</summary>
    /// <param name="modelId">The served model.</param>
    /// <param name="options">The request's options.</param>
    /// <param name="updates">The backend's updates.</param>
    /// <param name="cancellationToken">Cancels the enumeration.</param>
    /// <returns>The same updates.</returns>
    public static async IAsyncEnumerable<ChatResponseUpdate> TraceAsync(string modelId, ChatOptions? options, IAsyncEnumerable<ChatResponseUpdate> updates, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using Activity? activity = Source.StartActivity($"chat {modelId}");
        activity?.SetTag("gen_ai.operation.name", "chat").SetTag("gen_ai.provider.name", "llmpq").SetTag("gen_ai.request.model", modelId)
            .SetTag("gen_ai.request.max_tokens", options?.MaxOutputTokens).SetTag("gen_ai.request.temperature", options?.Temperature);
        bool started = false;
        bool ended = false;
        try
        {
            await foreach (ChatResponseUpdate update in updates.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                if (!started)
                {
                    started = true;
                    activity?.AddEvent(new ActivityEvent("gen_ai.first_token"));
                }

                foreach (UsageContent usage in update.Contents.OfType<UsageContent>())
                {
                    activity?.SetTag("gen_ai.usage.input_tokens", (int?)usage.Details.InputTokenCount).SetTag("gen_ai.usage.output_tokens", (int?)usage.Details.OutputTokenCount)
                        .SetTag("llmpq.usage.cached_input_tokens", (int?)usage.Details.CachedInputTokenCount);
                }

                if (update.FinishReason is { } finish)
                {
                    ended = true;
                    activity?.SetTag("gen_ai.response.finish_reasons", new[] { finish.Value });
                }

                yield return update;
            }
        }
        finally
        {
            if (!ended)
            {
                // Refused, failed or cancelled: the span says so (its exception, if any, is the caller's to see).
                activity?.SetStatus(ActivityStatusCode.Error, "the request ended before its answer did");
            }
        }
    }
}
