using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using LlmPq.Host.Benchmarking;
using LlmPq.Stages;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Cli;

/// <summary><c>llmpq serve</c> as a process with the real engine, spoken to over HTTP on loopback.</summary>
[Collection(NativeTests.Name)]
public sealed class ServeTests
{
    [Fact]
    public async Task Serve_answers_the_openai_chat_api_streaming_and_not()
    {
        int port = Loopback.FreePort();
        string[] arguments = [Path.Combine(AppContext.BaseDirectory, "llmpq.dll"), "serve", "--model", TestModels.Small, "--port", port.ToString(CultureInfo.InvariantCulture), "--ctx", "512", "--threads", "2"];
        await using ChildProcess server = await ChildProcess.StartAsync("dotnet", arguments, NullLogger.Instance);
        var baseUri = new Uri($"http://127.0.0.1:{port}/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        await server.WaitUntilAsync(ct => OpenAITarget.IsHealthyAsync(http, baseUri, ct), "answered /health", TimeSpan.FromSeconds(60), CancellationToken.None);

        string model = Path.GetFileNameWithoutExtension(TestModels.Small);
        using IChatClient client = OpenAITarget.Create(http, baseUri, model);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };
        List<ChatResponseUpdate> updates = [];
        await foreach (ChatResponseUpdate u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Hello server")], options))
        {
            updates.Add(u);
        }

        ChatResponse streamed = updates.ToChatResponse();
        Assert.NotNull(streamed.Usage);
        Assert.NotNull(streamed.FinishReason);

        string body = JsonSerializer.Serialize(new { model, messages = new[] { new { role = "user", content = "Hello server" } }, temperature = 0, max_tokens = 12 });
        using HttpResponseMessage response = await http.PostAsync(new Uri(baseUri, "v1/chat/completions"), new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement choice = doc.RootElement.GetProperty("choices")[0];
        Assert.Equal(streamed.Text, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(streamed.Usage.OutputTokenCount, doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt64());

        string tooLong = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = string.Join(' ', Enumerable.Repeat("word", 1000)) } } });
        using HttpResponseMessage refused = await http.PostAsync(new Uri(baseUri, "v1/chat/completions"), new StringContent(tooLong, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("context_length_exceeded", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_with_a_cluster_plans_quantizes_and_serves_a_pipeline()
    {
        int port = Loopback.FreePort();
        string cluster = TestModels.TempPath("cluster.json");
        await File.WriteAllTextAsync(cluster, """{"devices":[{"kind":"CPU","name":"a","memoryGiB":1,"threads":1},{"kind":"CPU","name":"b","memoryGiB":1,"threads":1}]}""");
        string[] arguments = [Path.Combine(AppContext.BaseDirectory, "llmpq.dll"), "serve", "--model", TestModels.Small, "--cluster", cluster, "--port", port.ToString(CultureInfo.InvariantCulture), "--ctx", "256", "--parallel", "2", "--policy", "prefill-first"];
        await using ChildProcess server = await ChildProcess.StartAsync("dotnet", arguments, NullLogger.Instance);
        var baseUri = new Uri($"http://127.0.0.1:{port}/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        await server.WaitUntilAsync(ct => OpenAITarget.IsHealthyAsync(http, baseUri, ct), "answered /health", TimeSpan.FromSeconds(120), CancellationToken.None);

        using IChatClient client = OpenAITarget.Create(http, baseUri, Path.GetFileNameWithoutExtension(TestModels.Small) + ".planned");
        ChatResponse response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Hello pipeline")], new ChatOptions { Temperature = 0, MaxOutputTokens = 8 });

        Assert.NotEmpty(response.Text);
        Assert.Contains("stage", server.LastOutput, StringComparison.Ordinal);
    }
}
