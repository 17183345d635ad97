using System.Text;
using System.Text.Json;
using LlmPq.Host.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Serving;

/// <summary>A real <see cref="OpenAIServer"/> on 127.0.0.1 and a free port, over a <see cref="FakeChatClient"/>, with an HttpClient aimed at it.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RunningServer(WebApplication app, FakeChatClient client)
    {
        _app = app;
        Client = client;
        Address = OpenAIServer.GetListenUri(app);
        Http = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public FakeChatClient Client { get; }

    public Uri Address { get; }

    public HttpClient Http { get; }

    public WebApplication App => _app;

    public static async Task<RunningServer> StartAsync(
        FakeChatClient? client = null, string? apiKey = null, IServerReadiness? readiness = null, ListLoggerProvider? logs = null, TimeSpan? shutdownTimeout = null, long? maxRequestBodyBytes = null)
    {
        client ??= new FakeChatClient();
        var options = new OpenAIServerOptions
        {
            Port = 0,
            ApiKey = apiKey,
            ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(30),
            MaxRequestBodyBytes = maxRequestBodyBytes ?? 1 << 20,
        };
        WebApplication app = OpenAIServer.Build(options, services =>
        {
            services.AddSingleton<IChatClient>(client);
            if (readiness is not null)
            {
                services.AddSingleton(readiness);
            }

            if (logs is not null)
            {
                services.AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
            }
        });
        await app.StartAsync();
        return new RunningServer(app, client);
    }

    /// <summary>Posts a chat completion request given as JSON text.</summary>
    public Task<HttpResponseMessage> PostChatAsync(string json, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead) =>
        Http.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") },
            completion);

    /// <summary>Posts a request and parses the JSON answer, checking the status code.</summary>
    public async Task<JsonElement> PostChatJsonAsync(string json, int expectedStatus = 200)
    {
        using HttpResponseMessage response = await PostChatAsync(json);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"expected {expectedStatus}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>Reads a whole server-sent event stream into its <c>data:</c> payloads.</summary>
    public static async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        string body = await response.Content.ReadAsStringAsync();
        var events = new List<string>();
        foreach (string block in body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.StartsWith("data: ", block, StringComparison.Ordinal);
            events.Add(block["data: ".Length..]);
        }

        return events;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }
}
