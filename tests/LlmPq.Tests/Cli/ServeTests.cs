using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using LlmPq.Host.Benchmarking;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Cli;

/// <summary><c>llmpq serve</c> as a process with the real engine, spoken to over HTTP on loopback.</summary>
[Collection(NativeTests.Name)]
public sealed class ServeTests
{
    [Fact]
    public async Task Serve_answers_the_openai_chat_api_streaming_and_not()
    {
        int port = Loopback.FreePort();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "llmpq.dll"), "serve", "--model", TestModels.Small, "--port", port.ToString(CultureInfo.InvariantCulture), "--ctx", "512", "--threads", "2" })
        {
            psi.ArgumentList.Add(a);
        }

        using Process server = Process.Start(psi)!;
        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, _) => { };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            var baseUri = new Uri($"http://127.0.0.1:{port}/");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            await WaitHealthy(http, baseUri, server);

            string model = Path.GetFileNameWithoutExtension(TestModels.Small);
            using var client = new OpenAIHttpChatClient(http, baseUri, model);
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
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    private static async Task WaitHealthy(HttpClient http, Uri baseUri, Process server)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            Assert.False(server.HasExited, "llmpq serve exited at start");
            try
            {
                using HttpResponseMessage health = await http.GetAsync(new Uri(baseUri, "health"));
                if (health.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        Assert.Fail("llmpq serve did not become healthy within 60 s");
    }
}
