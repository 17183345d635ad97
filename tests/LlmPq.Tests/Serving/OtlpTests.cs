using System.Collections.Concurrent;
using System.Net;
using LlmPq.Host.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace LlmPq.Tests.Serving;

/// <summary><c>--otlp-endpoint</c>: metrics and traces pushed over OTLP/HTTP to a collector.</summary>
public sealed class OtlpTests
{
    [Fact]
    public async Task Metrics_and_traces_reach_the_collector_by_the_time_the_server_is_gone()
    {
        var received = new ConcurrentQueue<string>();
        WebApplicationBuilder collectorBuilder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        collectorBuilder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        collectorBuilder.Services.AddRoutingCore();
        await using WebApplication collector = collectorBuilder.Build();
        collector.MapPost("/v1/{signal}", (HttpContext context, string signal) =>
        {
            received.Enqueue(signal);
            return Results.Ok();
        });
        await collector.StartAsync();

        var options = new OpenAIServerOptions { Port = 0, OtlpEndpoint = OpenAIServer.GetListenUri(collector) };
        WebApplication server = OpenAIServer.Build(options, services => services.AddSingleton<IChatClient>(new FakeChatClient()));
        await using (server)
        {
            await server.StartAsync();
            using var http = new HttpClient { BaseAddress = OpenAIServer.GetListenUri(server) };
            using HttpResponseMessage models = await http.GetAsync(new Uri("/v1/models", UriKind.Relative));
            Assert.Equal(200, (int)models.StatusCode);
            await server.StopAsync();
        }

        // Disposing the providers flushes them.
        Assert.Contains("traces", received);
        Assert.Contains("metrics", received);
    }
}
