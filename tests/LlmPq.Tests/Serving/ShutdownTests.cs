using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace LlmPq.Tests.Serving;

/// <summary>A stopping server finishes or fails, visibly, every request it accepted, and refuses new ones with 503.</summary>
public sealed class ShutdownTests
{
    private const string StreamBody = """{"messages":[{"role":"user","content":"Hi"}],"stream":true}""";
    private const string Body = """{"messages":[{"role":"user","content":"Hi"}]}""";

    [Fact]
    public async Task While_stopping_new_requests_get_503_with_retry_after_and_the_stream_in_flight_finishes()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var logs = new ListLoggerProvider();
        await using var server = await RunningServer.StartAsync(new FakeChatClient { GateAfterFirstPiece = gate.Task }, logs: logs);
        using HttpResponseMessage streaming = await server.PostChatAsync(StreamBody, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await streaming.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync(), StringComparison.Ordinal);

        Task stopping = server.App.StopAsync();
        while (!logs.Lines.Any(l => l.Message.StartsWith("Stopping:", StringComparison.Ordinal)))
        {
            await Task.Delay(10);
        }

        using (HttpResponseMessage refused = await server.PostChatAsync(Body))
        {
            Assert.Equal(503, (int)refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            using JsonDocument error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("service_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        gate.SetResult();
        string rest = await reader.ReadToEndAsync();
        Assert.EndsWith("data: [DONE]\n\n", rest, StringComparison.Ordinal);
        await stopping;
    }

    [Fact]
    public async Task At_the_end_of_the_grace_a_stream_ends_with_an_error_event()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { HangAfterFirstPiece = true }, shutdownTimeout: TimeSpan.Zero);
        using HttpResponseMessage streaming = await server.PostChatAsync(StreamBody, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await streaming.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync(), StringComparison.Ordinal);

        await server.App.StopAsync();

        List<string> events = [.. (await reader.ReadToEndAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)];
        using JsonDocument last = JsonDocument.Parse(events[^1]["data: ".Length..]);
        Assert.Equal("service_unavailable", last.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task At_the_end_of_the_grace_a_plain_request_gets_a_503_json_error()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { HangAfterFirstPiece = true }, shutdownTimeout: TimeSpan.Zero);
        Task<HttpResponseMessage> plain = server.PostChatAsync(Body);
        while (server.Client.ReceivedMessages is null)
        {
            await Task.Delay(10);
        }

        await server.App.StopAsync();

        using HttpResponseMessage response = await plain;
        Assert.Equal(503, (int)response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(new MediaTypeHeaderValue("application/json").MediaType, response.Content.Headers.ContentType?.MediaType);
        await server.Client.Cancelled;
    }

    [Fact]
    public async Task A_body_that_is_not_json_is_refused_with_415()
    {
        await using var server = await RunningServer.StartAsync();

        using HttpResponseMessage response = await server.Http.PostAsync(
            new Uri("/v1/chat/completions", UriKind.Relative), new StringContent(Body, Encoding.UTF8, "text/plain"));

        Assert.Equal(415, (int)response.StatusCode);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Null(server.Client.ReceivedMessages);
    }
}
