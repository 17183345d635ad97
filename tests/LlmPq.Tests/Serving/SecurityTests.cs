using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LlmPq.Host.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Serving;

public sealed class SecurityTests
{
    private const string Key = "sk-test-0123456789";

    [Fact]
    public async Task The_server_listens_on_loopback_on_the_port_it_was_given()
    {
        await using var server = await RunningServer.StartAsync();

        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(server.Address.Host)));
        Assert.NotEqual(0, server.Address.Port);
        using HttpResponseMessage response = await server.Http.GetAsync(new Uri("/health", UriKind.Relative));
        Assert.Equal(200, (int)response.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer wrong-key")]
    [InlineData("Basic " + Key)]
    [InlineData("Bearer " + Key + "x")]
    public async Task Without_the_right_key_every_endpoint_but_health_answers_401(string? authorization)
    {
        await using var server = await RunningServer.StartAsync(apiKey: Key);

        foreach (HttpRequestMessage request in Requests())
        {
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            using HttpResponseMessage response = await server.Http.SendAsync(request);
            string body = await response.Content.ReadAsStringAsync();

            Assert.True((int)response.StatusCode == 401, $"{request.RequestUri}: {(int)response.StatusCode} {body}");
            Assert.Equal("invalid_api_key", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
        }

        Assert.Null(server.Client.ReceivedMessages);
        using HttpResponseMessage health = await server.Http.GetAsync(new Uri("/health", UriKind.Relative));
        Assert.Equal(200, (int)health.StatusCode);
    }

    [Fact]
    public async Task With_the_right_key_requests_are_served()
    {
        await using var server = await RunningServer.StartAsync(apiKey: Key);
        server.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);

        foreach (HttpRequestMessage request in Requests())
        {
            using HttpResponseMessage response = await server.Http.SendAsync(request);
            Assert.Equal(200, (int)response.StatusCode);
        }

        Assert.NotNull(server.Client.ReceivedMessages);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("192.0.2.1")]
    public void A_non_loopback_address_without_a_key_refuses_to_start(string address)
    {
        var ex = Assert.Throws<ArgumentException>(() => OpenAIServer.Build(new OpenAIServerOptions { Address = address, Port = 0 }, AddFakeClient));

        Assert.Contains("API key", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_non_loopback_address_with_a_key_is_allowed_with_a_loud_warning()
    {
        var logs = new ListLoggerProvider();

        WebApplication app = OpenAIServer.Build(
            new OpenAIServerOptions { Address = "0.0.0.0", Port = 0, ApiKey = Key },
            services => AddFakeClient(services.AddLogging(b => b.AddProvider(logs))));
        await app.DisposeAsync();

        Assert.Contains(logs.Lines, l => l.Level == LogLevel.Warning && l.Message.Contains("0.0.0.0", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("example.com", 8080, null)]
    [InlineData("127.0.0.1", 70000, null)]
    [InlineData("127.0.0.1", 8080, " ")]
    public void Invalid_options_are_refused(string address, int port, string? apiKey) =>
        Assert.Throws<ArgumentException>(() => OpenAIServer.Build(new OpenAIServerOptions { Address = address, Port = port, ApiKey = apiKey }, AddFakeClient));

    private static void AddFakeClient(IServiceCollection services) => services.AddSingleton<IChatClient>(new FakeChatClient());

    private static HttpRequestMessage[] Requests() =>
    [
        new(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"messages":[{"role":"user","content":"Hi"}]}""", Encoding.UTF8, "application/json"),
        },
        new(HttpMethod.Get, "/v1/models"),
    ];
}
