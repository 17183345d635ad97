using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using LlmPq.Chat;
using LlmPq.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Serving;

/// <summary>The request handlers of the OpenAI-compatible API, over the <see cref="IChatClient"/> of the request's services.</summary>
internal sealed class OpenAIEndpoints(ILogger<OpenAIEndpoints> logger, TimeProvider timeProvider, ServerDrain drain)
{
    private readonly long _startedAt = timeProvider.GetUtcNow().ToUnixTimeSeconds();

    /// <summary><c>POST /v1/chat/completions</c>, with or without streaming.</summary>
    public async Task ChatCompletionsAsync(HttpContext context)
    {
        CancellationToken cancellationToken = context.RequestAborted;
        long started = timeProvider.GetTimestamp();
        try
        {
            // A browser may post text/plain across origins without a preflight; JSON needs one.
            if (!context.Request.HasJsonContentType())
            {
                throw new BadHttpRequestException(
                    "The request body must be JSON, sent with 'Content-Type: application/json'.", StatusCodes.Status415UnsupportedMediaType);
            }

            (ChatCompletionRequest request, List<ChatMessage> messages, ChatOptions options) = await ReadRequestAsync(context.Request, cancellationToken).ConfigureAwait(false);
            IChatClient client = context.RequestServices.GetRequiredService<IChatClient>();
            bool streaming = request.Stream == true;
            ServingLog.ChatStarted(logger, context.TraceIdentifier, messages.Count, options.ModelId, streaming);

            Outcome? outcome = streaming
                ? await StreamAsync(context, client, messages, options).ConfigureAwait(false)
                : await CompleteAsync(context, client, messages, options).ConfigureAwait(false);
            if (outcome is { } done)
            {
                ServingLog.ChatFinished(
                    logger, context.TraceIdentifier, done.FinishReason, done.Usage.PromptTokens, done.Usage.CompletionTokens, ElapsedMs(started));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            ServingLog.ChatCancelled(logger, context.TraceIdentifier, ElapsedMs(started));
        }
        catch (Exception ex) when (!context.Response.HasStarted)
        {
            OpenAIError error = Report(context, ex);
            await error.WriteAsync(context).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads the request and maps it; text that is not UTF-8, or escapes a lone surrogate (read when the mapper gets a
    /// string), is the client's error, not the server's.
    /// </summary>
    private static async Task<(ChatCompletionRequest Request, List<ChatMessage> Messages, ChatOptions Options)> ReadRequestAsync(
        HttpRequest request, CancellationToken cancellationToken)
    {
        try
        {
            ChatCompletionRequest body = await JsonSerializer.DeserializeAsync(request.Body, OpenAIJsonContext.Wire.ChatCompletionRequest, cancellationToken).ConfigureAwait(false)
                ?? throw new OpenAIRequestException("The request body must be a JSON object.");
            return (body, ChatRequestMapper.ToMessages(body), ChatRequestMapper.ToOptions(body));
        }
        catch (InvalidOperationException ex)
        {
            throw new OpenAIRequestException($"The request body is not valid text: {ex.Message}", ex);
        }
    }

    /// <summary><c>GET /v1/models</c>: the model the chat client serves.</summary>
    public Task ModelsAsync(HttpContext context)
    {
        string? id = context.RequestServices.GetRequiredService<IChatClient>().GetService<ChatClientMetadata>()?.DefaultModelId;
        var list = new ModelList { Data = id is null ? [] : [new ModelInfo { Id = id, Created = _startedAt }] };
        return context.Response.WriteAsJsonAsync(list, OpenAIJsonContext.Wire.ModelList, cancellationToken: context.RequestAborted);
    }

    /// <summary><c>GET /health</c>: 200 when ready, 503 when not (see <see cref="IServerReadiness"/>).</summary>
    public static Task HealthAsync(HttpContext context)
    {
        bool ready = context.RequestServices.GetService<IServerReadiness>()?.IsReady ?? true;
        context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        return context.Response.WriteAsJsonAsync(
            new HealthStatus { Status = ready ? "ok" : "unavailable" }, OpenAIJsonContext.Wire.HealthStatus, cancellationToken: context.RequestAborted);
    }

    /// <summary>Any other path: an OpenAI-style 404.</summary>
    public static Task NotFoundAsync(HttpContext context) =>
        new OpenAIError(404, "invalid_request_error", $"Unknown request URL: {context.Request.Method} {context.Request.Path}.").WriteAsync(context);

    private async Task<Outcome> CompleteAsync(HttpContext context, IChatClient client, List<ChatMessage> messages, ChatOptions options)
    {
        using var generation = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.GraceOver);

        // Log-probabilities come per update; a merged response would keep only the last update's.
        List<ChatCompletionTokenLogprob>? logprobs = null;
        ChatResponse response;
        if (options.AdditionalProperties?.TryGetValue("logprobs", out object? wanted) == true && wanted is true)
        {
            var updates = new List<ChatResponseUpdate>();
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(messages, options, generation.Token).ConfigureAwait(false))
            {
                updates.Add(update);
                (logprobs ??= []).AddRange(ToLogprobs(update) ?? []);
            }

            response = updates.ToChatResponse();
        }
        else
        {
            response = await client.GetResponseAsync(messages, options, generation.Token).ConfigureAwait(false);
        }

        var outcome = new Outcome(ToFinishReason(response.FinishReason), ToUsage(response.Usage));
        var completion = new ChatCompletion
        {
            Id = response.ResponseId ?? NewId(),
            Created = ToUnixSeconds(response.CreatedAt),
            Model = response.ModelId ?? options.ModelId ?? DefaultModelId(client),
            Choices = [new() { Message = ToMessage(response), FinishReason = outcome.FinishReason, Logprobs = logprobs is null ? null : new() { Content = logprobs } }],
            Usage = outcome.Usage,
        };
        await context.Response.WriteAsJsonAsync(completion, OpenAIJsonContext.Wire.ChatCompletion, cancellationToken: context.RequestAborted)
            .ConfigureAwait(false);
        return outcome;
    }

    /// <summary>Streams server-sent events; returns null when the stream failed part way and ended with an error event.</summary>
    private async Task<Outcome?> StreamAsync(HttpContext context, IChatClient client, List<ChatMessage> messages, ChatOptions options)
    {
        CancellationToken cancellationToken = context.RequestAborted;
        using var generation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, drain.GraceOver);
        IAsyncEnumerator<ChatResponseUpdate> updates =
            client.GetStreamingResponseAsync(messages, options, generation.Token).GetAsyncEnumerator(generation.Token);
        await using var disposeUpdates = updates.ConfigureAwait(false);

        // Wait for the first update before answering, so that a request refused at once gets its real status code
        // and a JSON error rather than a 200 stream.
        bool more = await updates.MoveNextAsync().ConfigureAwait(false);

        HttpResponse response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        ChatResponseUpdate? first = more ? updates.Current : null;
        string id = first?.ResponseId ?? NewId();
        long created = ToUnixSeconds(first?.CreatedAt);
        string model = first?.ModelId ?? options.ModelId ?? DefaultModelId(client);
        ChatCompletionChunk Chunk(ChatCompletionDelta delta, string? finishReason = null, List<ChatCompletionTokenLogprob>? logprobs = null) =>
            new() { Id = id, Created = created, Model = model, Choices = [new() { Delta = delta, FinishReason = finishReason, Logprobs = logprobs is null ? null : new() { Content = logprobs } }] };

        await WriteEventAsync(response, Chunk(new() { Role = "assistant", Content = string.Empty }), cancellationToken).ConfigureAwait(false);
        ChatFinishReason? finishReason = null;
        UsageDetails? usage = null;
        int toolCalls = 0;
        try
        {
            for (; more; more = await updates.MoveNextAsync().ConfigureAwait(false))
            {
                ChatResponseUpdate update = updates.Current;
                finishReason = update.FinishReason ?? finishReason;
                foreach (UsageContent content in update.Contents.OfType<UsageContent>())
                {
                    (usage ??= new()).Add(content.Details);
                }

                ChatCompletionDelta? delta = ToDelta(update, ref toolCalls);
                List<ChatCompletionTokenLogprob>? logprobs = ToLogprobs(update);
                if (delta is not null || logprobs is not null)
                {
                    await WriteEventAsync(response, Chunk(delta ?? new(), logprobs: logprobs), cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The status line is sent; OpenAI reports a failure mid-stream as an error event in place of the rest.
            OpenAIError error = Report(context, ex);
            await WriteEventAsync(response, error.ToResponse(), OpenAIJsonContext.Wire.ErrorResponse, cancellationToken).ConfigureAwait(false);
            return null;
        }

        var outcome = new Outcome(ToFinishReason(finishReason), ToUsage(usage));
        await WriteEventAsync(response, Chunk(new(), outcome.FinishReason), cancellationToken).ConfigureAwait(false);

        // OpenAI sends this only with stream_options.include_usage; LlmPq always does, as llama-server does.
        var usageChunk = new ChatCompletionChunk { Id = id, Created = created, Model = model, Choices = [], Usage = outcome.Usage };
        await WriteEventAsync(response, usageChunk, cancellationToken).ConfigureAwait(false);
        response.BodyWriter.Write("data: [DONE]\n\n"u8);
        await response.BodyWriter.FlushAsync(cancellationToken).ConfigureAwait(false);
        return outcome;
    }

    private static Task WriteEventAsync(HttpResponse response, ChatCompletionChunk chunk, CancellationToken cancellationToken) =>
        WriteEventAsync(response, chunk, OpenAIJsonContext.Wire.ChatCompletionChunk, cancellationToken);

    /// <summary>Writes one <c>data:</c> event and flushes it, so the client sees every token as it comes.</summary>
    private static async Task WriteEventAsync<T>(HttpResponse response, T value, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        response.BodyWriter.Write("data: "u8);
        using (var json = new Utf8JsonWriter(response.BodyWriter, new JsonWriterOptions { Encoder = type.Options.Encoder }))
        {
            JsonSerializer.Serialize(json, value, type);
        }

        response.BodyWriter.Write("\n\n"u8);
        await response.BodyWriter.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Logs the failure of a request (a refusal at Debug, since clients can send any number of them; a server fault at
    /// Error with its exception) and gets its answer.
    /// </summary>
    private OpenAIError Report(HttpContext context, Exception exception)
    {
        OpenAIError error = exception is OperationCanceledException && drain.GraceOver.IsCancellationRequested
            ? ServerDrain.ShuttingDown
            : OpenAIError.From(exception);
        if (error.StatusCode == StatusCodes.Status500InternalServerError)
        {
            ServingLog.ChatFailed(logger, context.TraceIdentifier, exception);
        }
        else
        {
            ServingLog.ChatRefused(logger, context.TraceIdentifier, error.StatusCode, error.Code, error.Message);
        }

        return error;
    }

    /// <summary>The answer's message: its text (null beside tool calls, as OpenAI writes it), reasoning and tool calls.</summary>
    private static ChatCompletionMessage ToMessage(ChatResponse response)
    {
        List<FunctionCallContent> calls = [.. response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>()];
        string reasoning = string.Concat(response.Messages.SelectMany(m => m.Contents).OfType<TextReasoningContent>().Select(r => r.Text));
        string text = response.Text;
        return new()
        {
            Content = text.Length == 0 && calls.Count > 0 ? null : text,
            ReasoningContent = reasoning.Length > 0 ? reasoning : null,
            ToolCalls = calls.Count > 0 ? [.. calls.Select(ToToolCall)] : null,
        };
    }

    /// <summary>The delta of one update, or null when it carries nothing to send; each tool call is sent whole, at the next index.</summary>
    private static ChatCompletionDelta? ToDelta(ChatResponseUpdate update, ref int toolCalls)
    {
        string text = string.Concat(update.Contents.OfType<TextContent>().Select(c => c.Text));
        string reasoning = string.Concat(update.Contents.OfType<TextReasoningContent>().Select(c => c.Text));
        List<ChatCompletionChunkToolCall>? calls = null;
        foreach (FunctionCallContent call in update.Contents.OfType<FunctionCallContent>())
        {
            ChatCompletionToolCall whole = ToToolCall(call);
            (calls ??= []).Add(new() { Index = toolCalls++, Id = whole.Id, Function = whole.Function! });
        }

        return text.Length == 0 && reasoning.Length == 0 && calls is null ? null : new()
        {
            Content = text.Length > 0 ? text : null,
            ReasoningContent = reasoning.Length > 0 ? reasoning : null,
            ToolCalls = calls,
        };
    }

    /// <summary>The token log-probabilities of an update: typed from the engine in this process, JSON through a runner.</summary>
    private static List<ChatCompletionTokenLogprob>? ToLogprobs(ChatResponseUpdate update)
    {
        IEnumerable<TokenLogprob>? tokens = update.AdditionalProperties?.GetValueOrDefault(TokenLogprob.PropertyName) switch
        {
            IEnumerable<TokenLogprob> typed => typed,
            JsonElement json => json.Deserialize<TokenLogprob[]>(AIJsonUtilities.DefaultOptions),
            _ => null,
        };
        return tokens?.Select(t => new ChatCompletionTokenLogprob
        {
            Token = t.Token,
            Logprob = t.Logprob,
            Bytes = Encoding.UTF8.GetBytes(t.Token),
            TopLogprobs = [.. t.Top.Select(a => new ChatCompletionTopLogprob { Token = a.Token, Logprob = a.Logprob, Bytes = Encoding.UTF8.GetBytes(a.Token) })],
        }).ToList();
    }

    private static ChatCompletionToolCall ToToolCall(FunctionCallContent call) => new()
    {
        Id = call.CallId,
        Type = "function",
        Function = new() { Name = call.Name, Arguments = ChatTemplateMapper.ArgumentsJson(call) },
    };

    private long ToUnixSeconds(DateTimeOffset? time) => (time ?? timeProvider.GetUtcNow()).ToUnixTimeSeconds();

    private long ElapsedMs(long started) => (long)timeProvider.GetElapsedTime(started).TotalMilliseconds;

    private static string ToFinishReason(ChatFinishReason? reason) => reason?.Value ?? ChatFinishReason.Stop.Value;

    private static ChatCompletionUsage ToUsage(UsageDetails? usage)
    {
        long prompt = usage?.InputTokenCount ?? 0;
        long completion = usage?.OutputTokenCount ?? 0;
        return new()
        {
            PromptTokens = prompt,
            CompletionTokens = completion,
            TotalTokens = usage?.TotalTokenCount ?? prompt + completion,
            PromptTokensDetails = usage?.CachedInputTokenCount is long cached ? new() { CachedTokens = cached } : null,
        };
    }

    private static string DefaultModelId(IChatClient client) => client.GetService<ChatClientMetadata>()?.DefaultModelId ?? string.Empty;

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");

    /// <summary>How a completion ended, for the log.</summary>
    private readonly record struct Outcome(string FinishReason, ChatCompletionUsage Usage);
}
