using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.AI;
using OpenAI;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// Any OpenAI-compatible endpoint (llama-server, <c>llmpq serve</c>, a URL) as the OpenAI .NET SDK's
/// <see cref="IChatClient"/>, so the load generator drives every target through a client nobody here wrote.
/// </summary>
internal static class OpenAITarget
{
    /// <summary>Creates the client of one target.</summary>
    /// <param name="http">The HTTP client the SDK sends through (its timeout applies).</param>
    /// <param name="baseUri">The server's address, without <c>/v1</c>.</param>
    /// <param name="model">The model name sent.</param>
    /// <param name="apiKey">A bearer key, if the server wants one.</param>
    /// <returns>The SDK's chat client for <paramref name="model"/>.</returns>
    /// <remarks>
    /// Retries are off: the bench measures the server, and a retried request would hide a refusal and count twice its
    /// time. The SDK's own network timeout is off too, so the slowest answer of a saturated server is measured, not cut.
    /// </remarks>
    public static IChatClient Create(HttpClient http, Uri baseUri, string model, string? apiKey = null)
    {
        var options = new OpenAIClientOptions
        {
            Endpoint = new Uri(baseUri, "v1/"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = Timeout.InfiniteTimeSpan,
            Transport = new HttpClientPipelineTransport(http),
        };

        // The SDK requires a key; servers started without one ignore it.
        return new OpenAIClient(new ApiKeyCredential(apiKey ?? "none"), options).GetChatClient(model).AsIChatClient();
    }

    /// <summary>Gets whether the server at <paramref name="baseUri"/> answers <c>GET /health</c> with success (llama-server and <c>llmpq serve</c> both do).</summary>
    public static async Task<bool> IsHealthyAsync(HttpClient http, Uri baseUri, CancellationToken cancellationToken)
    {
        try
        {
            using HttpResponseMessage health = await http.GetAsync(new Uri(baseUri, "health"), cancellationToken).ConfigureAwait(false);
            return health.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
