using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LlmPq.Host.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace LlmPq.Tests.Serving;

/// <summary>The server over the real engine in process: its metrics, and a prompt refused by its size.</summary>
[Collection(NativeTests.Name)]
public sealed class EngineServerTests
{
    private const string Key = "sk-engine-server";

    [Fact]
    public async Task Metrics_in_prometheus_format_behind_the_api_key()
    {
        await using WebApplication app = await StartAsync(new OpenAIServerOptions { Port = 0, ApiKey = Key });
        using var http = new HttpClient { BaseAddress = OpenAIServer.GetListenUri(app), Timeout = TimeSpan.FromSeconds(60) };
        using (HttpResponseMessage refused = await http.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(401, (int)refused.StatusCode);
        }

        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        using (HttpResponseMessage chat = await PostAsync(http, """{"messages":[{"role":"user","content":"Hello"}],"max_tokens":4}"""))
        {
            Assert.Equal(200, (int)chat.StatusCode);
        }

        using HttpResponseMessage metrics = await http.GetAsync(new Uri("/metrics", UriKind.Relative));
        string text = await metrics.Content.ReadAsStringAsync();
        Assert.Equal(200, (int)metrics.StatusCode);
        Assert.Contains("gen_ai_server_", text, StringComparison.Ordinal);
        Assert.Contains("llmpq_", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_can_be_open_when_asked()
    {
        await using WebApplication app = await StartAsync(new OpenAIServerOptions { Port = 0, ApiKey = Key, MetricsUnauthenticated = true });
        using var http = new HttpClient { BaseAddress = OpenAIServer.GetListenUri(app), Timeout = TimeSpan.FromSeconds(60) };

        using HttpResponseMessage metrics = await http.GetAsync(new Uri("/metrics", UriKind.Relative));
        using HttpResponseMessage models = await http.GetAsync(new Uri("/v1/models", UriKind.Relative));

        Assert.Equal(200, (int)metrics.StatusCode);
        Assert.Equal(401, (int)models.StatusCode);
    }

    [Fact]
    public async Task A_prompt_far_beyond_the_context_is_refused_by_its_size_before_it_is_tokenized()
    {
        await using WebApplication app = await StartAsync(new OpenAIServerOptions { Port = 0, MaxRequestBodyBytes = 64 << 20 });
        using var http = new HttpClient { BaseAddress = OpenAIServer.GetListenUri(app), Timeout = TimeSpan.FromSeconds(60) };
        string body = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = new string('a', 10_000_000) } } });

        using HttpResponseMessage response = await PostAsync(http, body);

        Assert.Equal(400, (int)response.StatusCode);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("context_length_exceeded", error.RootElement.GetProperty("error").GetProperty("code").GetString());

        // The engine's own check counts tokens; this one counts bytes, so it ran first.
        Assert.Contains("bytes of text", error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    internal static Task<HttpResponseMessage> PostAsync(HttpClient http, string json) =>
        http.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));

    internal static async Task<WebApplication> StartAsync(OpenAIServerOptions options)
    {
        WebApplication app = OpenAIServer.Build(options, services => services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = TestModels.Small;
            o.ContextLength = 256;
            o.Threads = 2;
        }));
        await app.StartAsync();
        return app;
    }
}
