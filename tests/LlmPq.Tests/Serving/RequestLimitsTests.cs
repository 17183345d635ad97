using System.Text;
using System.Text.Json;
using LlmPq.Host.Serving;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Serving;

/// <summary>What a request may not be: too large, badly encoded, out of range; and how refusals are logged.</summary>
public sealed class RequestLimitsTests
{
    [Fact]
    public async Task A_body_over_the_size_limit_is_a_413_json_error_and_never_reaches_the_client()
    {
        await using var server = await RunningServer.StartAsync(maxRequestBodyBytes: 1 << 20);
        string body = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = new string('a', 10_000_000) } } });

        // As curl does for a large body: wait for the server's go-ahead, so the refusal is read rather than a broken pipe.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;

        using HttpResponseMessage response = await server.Http.SendAsync(request);

        Assert.Equal(413, (int)response.StatusCode);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Null(server.Client.ReceivedMessages);
    }

    [Theory]
    [InlineData("\"\\ud800 lone\"")]
    [InlineData("\"\\udc00\"")]
    public async Task A_lone_surrogate_in_the_json_is_a_400(string content)
    {
        await using var server = await RunningServer.StartAsync();

        await server.PostChatJsonAsync($$"""{"messages":[{"role":"user","content":{{content}}}]}""", expectedStatus: 400);
    }

    [Fact]
    public async Task Invalid_utf8_in_the_body_is_a_400()
    {
        await using var server = await RunningServer.StartAsync();
        byte[] body = [.. """{"messages":[{"role":"user","content":"a"""u8, 0xff, 0xfe, .. "\"}]}"u8];
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");

        using HttpResponseMessage response = await server.Http.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), content);

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("invalid_request_error", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("max_tokens")]
    [InlineData("max_completion_tokens")]
    public async Task A_non_positive_token_limit_names_its_field(string field)
    {
        await using var server = await RunningServer.StartAsync();

        JsonElement error = await server.PostChatJsonAsync($$"""{"messages":[{"role":"user","content":"Hi"}],"{{field}}":0}""", expectedStatus: 400);

        Assert.Equal(field, error.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains(field, error.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Null(server.Client.ReceivedMessages);
    }

    [Fact]
    public async Task Refused_requests_log_no_warnings()
    {
        var logs = new ListLoggerProvider();
        await using var server = await RunningServer.StartAsync(apiKey: "sk-limits", logs: logs);
        server.Http.DefaultRequestHeaders.Authorization = new("Bearer", "sk-limits");
        for (int i = 0; i < 20; i++)
        {
            using HttpResponseMessage bad = await server.PostChatAsync("""{"messages":[]}""");
            using HttpResponseMessage unauthorized = await server.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new("Bearer", "wrong") } });
        }

        Assert.DoesNotContain(logs.Lines, l => l.Level >= LogLevel.Warning);
    }

    [Fact]
    public void A_host_beyond_loopback_without_a_key_is_refused_by_the_options_alone()
    {
        var options = new OpenAIServerOptions { Address = "0.0.0.0" };

        Assert.Throws<ArgumentException>(options.Validate);
    }

    [Fact]
    public async Task Oversized_headers_get_a_431_json_error()
    {
        await using var server = await RunningServer.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Add("X-Big", new string('x', 40_000));

        using HttpResponseMessage response = await server.Http.SendAsync(request);

        Assert.Equal(431, (int)response.StatusCode);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_request_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}
