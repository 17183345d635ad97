using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// A streaming-only <see cref="IChatClient"/> for any OpenAI-compatible endpoint (llama-server, <c>llmpq serve</c>),
/// so the load generator drives every target through the same interface.
/// </summary>
/// <param name="http">The HTTP client.</param>
/// <param name="baseUri">The server's address, without <c>/v1</c>.</param>
/// <param name="model">The model name sent.</param>
/// <param name="apiKey">A bearer key, if the server wants one.</param>
internal sealed class OpenAIHttpChatClient(HttpClient http, Uri baseUri, string model, string? apiKey = null) : IChatClient
{
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken).ConfigureAwait(false);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages,
        ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var body = new JsonObject
        {
            ["model"] = options?.ModelId ?? model,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["messages"] = new JsonArray([.. messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role.Value, ["content"] = m.Text })]),
        };
        if (options?.MaxOutputTokens is int max)
        {
            body["max_tokens"] = max;
        }

        if (options?.Temperature is float t)
        {
            body["temperature"] = t;
        }

        if (options?.Seed is long seed)
        {
            body["seed"] = seed;
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, "v1/chat/completions"))
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (apiKey is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            string error = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            throw new HttpRequestException($"{(int)response.StatusCode} from {request.RequestUri}: {error}", null, response.StatusCode);
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
        bool cachedReported = false;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
            {
                continue;
            }

            string data = line[5..].Trim();
            if (data == "[DONE]")
            {
                yield break;
            }

            using JsonDocument chunk = JsonDocument.Parse(data);
            yield return ToUpdate(chunk.RootElement, ref cachedReported);
        }
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

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
    }

    /// <summary>
    /// One streamed chunk as an update. Cached prompt tokens come from <c>usage.prompt_tokens_details.cached_tokens</c>
    /// (OpenAI, llama-server) or llama-server's <c>timings.cache_n</c>, whichever comes first, once per answer.
    /// </summary>
    private static ChatResponseUpdate ToUpdate(JsonElement chunk, ref bool cachedReported)
    {
        var update = new ChatResponseUpdate { Role = ChatRole.Assistant };
        if (chunk.TryGetProperty("error", out JsonElement error))
        {
            throw new HttpRequestException($"The server failed mid-stream: {error}");
        }

        if (chunk.TryGetProperty("choices", out JsonElement choices))
        {
            foreach (JsonElement choice in choices.EnumerateArray())
            {
                if (choice.TryGetProperty("delta", out JsonElement delta) && delta.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String)
                {
                    update.Contents.Add(new TextContent(content.GetString()));
                }

                if (choice.TryGetProperty("finish_reason", out JsonElement finish) && finish.ValueKind == JsonValueKind.String)
                {
                    update.FinishReason = new ChatFinishReason(finish.GetString()!);
                }
            }
        }

        UsageDetails? details = null;
        if (chunk.TryGetProperty("usage", out JsonElement usage) && usage.ValueKind == JsonValueKind.Object)
        {
            details = new UsageDetails
            {
                InputTokenCount = usage.GetProperty("prompt_tokens").GetInt64(),
                OutputTokenCount = usage.GetProperty("completion_tokens").GetInt64(),
                TotalTokenCount = usage.GetProperty("total_tokens").GetInt64(),
            };
        }

        long? cached = Number(chunk, "usage", "prompt_tokens_details", "cached_tokens") ?? Number(chunk, "timings", "cache_n");
        if (cached is not null && !cachedReported)
        {
            details ??= new UsageDetails();
            details.CachedInputTokenCount = cached;
            cachedReported = true;
        }

        if (details is not null)
        {
            update.Contents.Add(new UsageContent(details));
        }

        return update;
    }

    private static long? Number(JsonElement element, params string[] path)
    {
        foreach (string name in path)
        {
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out element))
            {
                return null;
            }
        }

        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out long n) ? n : null;
    }
}
