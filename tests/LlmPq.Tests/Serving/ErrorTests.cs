using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Serving;

public sealed class ErrorTests
{
    private const string Hello = """{"messages":[{"role":"user","content":"Hi"}]}""";
    private const string HelloStreamed = """{"messages":[{"role":"user","content":"Hi"}],"stream":true}""";

    [Theory]
    [InlineData("{not json", null)]
    [InlineData("", null)]
    [InlineData("null", null)]
    [InlineData("""{"model":"m"}""", "messages")]
    [InlineData("""{"messages":[]}""", "messages")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"temperature":"hot"}""", "temperature")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1.5}""", "max_tokens")]
    [InlineData("""{"messages":[{"role":"wizard","content":"Hi"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":"user","content":42}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content[1]")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"stop":[1]}""", "stop")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"xml"}}""", "response_format.type")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema"}}""", "response_format.json_schema")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"n":2}""", "n")]
    public async Task A_malformed_request_gets_400_invalid_request_error(string body, string? param)
    {
        await using var server = await RunningServer.StartAsync();

        JsonElement error = (await server.PostChatJsonAsync(body, 400)).GetProperty("error");

        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.True(error.TryGetProperty("code", out _));
        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }

        Assert.Null(server.Client.ReceivedMessages);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_request_exception_gets_400_with_its_code(bool stream)
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient
        {
            ThrowAtStart = new LlmPqRequestException("context_length_exceeded", "The prompt has 5000 tokens; the context holds 4096."),
        });

        JsonElement error = (await server.PostChatJsonAsync(stream ? HelloStreamed : Hello, 400)).GetProperty("error");

        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("The prompt has 5000 tokens; the context holds 4096.", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Model_not_found_gets_404()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient
        {
            ThrowAtStart = new LlmPqRequestException("model_not_found", "The model 'gpt-9' is not the loaded model 'fake-model'."),
        });

        JsonElement error = (await server.PostChatJsonAsync("""{"model":"gpt-9","messages":[{"role":"user","content":"Hi"}]}""", 404)).GetProperty("error");

        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Unavailable_gets_503(bool stream)
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { ThrowAtStart = new LlmPqUnavailableException("The engine is loading.") });

        JsonElement error = (await server.PostChatJsonAsync(stream ? HelloStreamed : Hello, 503)).GetProperty("error");

        Assert.Equal("The engine is loading.", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task An_argument_exception_of_the_client_gets_400()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { ThrowAtStart = new ArgumentOutOfRangeException("options", "Temperature must be at least 0.") });

        JsonElement error = (await server.PostChatJsonAsync(Hello, 400)).GetProperty("error");

        Assert.Contains("Temperature must be at least 0.", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unexpected_exception_gets_500_without_its_details_and_is_logged()
    {
        var logs = new ListLoggerProvider();
        await using var server = await RunningServer.StartAsync(new FakeChatClient { ThrowAtStart = new InvalidOperationException("secret internals") }, logs: logs);

        using HttpResponseMessage response = await server.PostChatAsync(Hello);
        string body = await response.Content.ReadAsStringAsync();

        Assert.Equal(500, (int)response.StatusCode);
        Assert.Equal("server_error", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain("secret", body, StringComparison.Ordinal);
        Assert.DoesNotContain("InvalidOperationException", body, StringComparison.Ordinal);
        Assert.Contains(logs.Lines, l => l.Level == LogLevel.Error);
    }

    [Fact]
    public async Task A_stream_that_fails_part_way_ends_with_an_error_event()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { ThrowAfterFirstPiece = new LlmPqUnavailableException("A stage went away.") });

        using HttpResponseMessage response = await server.PostChatAsync(HelloStreamed);
        List<string> events = await RunningServer.ReadEventsAsync(response);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("assistant", JsonDocument.Parse(events[0]).RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal(FakeChatClient.Pieces[0], JsonDocument.Parse(events[1]).RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());
        JsonElement error = JsonDocument.Parse(events[^1]).RootElement.GetProperty("error");
        Assert.Equal("A stage went away.", error.GetProperty("message").GetString());
        Assert.Equal(3, events.Count);
    }

    [Fact]
    public async Task An_unknown_path_gets_an_openai_style_404()
    {
        await using var server = await RunningServer.StartAsync();

        using HttpResponseMessage response = await server.Http.GetAsync(new Uri("/v1/embeddings", UriKind.Relative));

        Assert.Equal(404, (int)response.StatusCode);
        JsonElement error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }
}
