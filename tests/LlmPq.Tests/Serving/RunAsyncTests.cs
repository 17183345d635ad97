using LlmPq.Host.Serving;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Serving;

public sealed class RunAsyncTests
{
    [Fact]
    public async Task RunAsync_serves_until_cancelled_and_logs_where_it_listens()
    {
        var logs = new ListLoggerProvider();
        using var stop = new CancellationTokenSource();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Task run = OpenAIServer.RunAsync(
            new OpenAIServerOptions { Port = 0 },
            services => services.AddSingleton<IChatClient>(new FakeChatClient()).AddLogging(b => b.AddProvider(logs)),
            stop.Token);

        // The address (its port chosen by the system) is known only from the log line written once the server listens.
        const string Marker = "Serving the OpenAI-compatible API at ";
        string? line = null;
        while (line is null)
        {
            Assert.False(run.IsCompleted, "RunAsync ended before it listened");
            await Task.Delay(20, timeout.Token);
            line = logs.Lines.Select(l => l.Message).FirstOrDefault(m => m.StartsWith(Marker, StringComparison.Ordinal));
        }

        using (var http = new HttpClient { BaseAddress = new Uri(line[Marker.Length..]) })
        {
            using HttpResponseMessage models = await http.GetAsync(new Uri("/v1/models", UriKind.Relative), timeout.Token);
            Assert.Equal(200, (int)models.StatusCode);
        }

        Assert.False(run.IsCompleted);
        await stop.CancelAsync();
        await run.WaitAsync(timeout.Token);
    }
}
