using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace LlmPq.Host.Serving;

/// <summary>An error as the OpenAI API reports it: a status code and the <c>{"error": …}</c> body.</summary>
internal sealed record OpenAIError(int StatusCode, string Type, string Message, string? Param = null, string? Code = null)
{
    private const string InvalidRequest = "invalid_request_error";

    /// <summary>The <c>Retry-After</c> of a 503: long enough for a model to finish loading or a peer to take over.</summary>
    private const string RetryAfterSeconds = "5";

    /// <summary>Gets the error that answers an exception; an unexpected one becomes a 500 that tells nothing of its cause.</summary>
    public static OpenAIError From(Exception exception) => exception switch
    {
        OpenAIRequestException e => new(400, InvalidRequest, e.Message, e.Param),
        JsonException e => new(
            400,
            InvalidRequest,
            $"The request body is not valid JSON or a field has the wrong type (at {e.Path ?? "$"}, line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}).",
            e.Path?.TrimStart('$', '.') is { Length: > 0 } field ? field : null),
        LlmPqRequestException { Code: "model_not_found" } e => new(404, InvalidRequest, e.Message, "model", e.Code),
        LlmPqRequestException e => new(400, InvalidRequest, e.Message, Code: e.Code),
        LlmPqUnavailableException e => new(503, "server_error", e.Message, Code: "service_unavailable"),
        BadHttpRequestException e => new(e.StatusCode, InvalidRequest, e.Message),
        ArgumentException e => new(400, InvalidRequest, e.Message),
        _ => new(500, "server_error", "The server had an error while processing your request."),
    };

    /// <summary>Gets the error body.</summary>
    public ErrorResponse ToResponse() => new() { Error = new() { Message = Message, Type = Type, Param = Param, Code = Code } };

    /// <summary>Answers the request with this error; a 503 tells the client when to retry.</summary>
    public Task WriteAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCode;
        if (StatusCode == StatusCodes.Status503ServiceUnavailable)
        {
            context.Response.Headers.RetryAfter = RetryAfterSeconds;
        }

        return context.Response.WriteAsJsonAsync(ToResponse(), OpenAIJsonContext.Wire.ErrorResponse, cancellationToken: context.RequestAborted);
    }
}
