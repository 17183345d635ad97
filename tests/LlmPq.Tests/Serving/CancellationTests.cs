using System.Text;

namespace LlmPq.Tests.Serving;

public sealed class CancellationTests
{
    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_the_chat_client()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { HangAfterFirstPiece = true });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // A client of its own, so that disposing it closes the connection at once.
        using (var http = new HttpClient { BaseAddress = server.Address })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent("""{"messages":[{"role":"user","content":"Hi"}],"stream":true}""", Encoding.UTF8, "application/json"),
            };
            using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));

            // Read until the first piece arrives: the fake now waits for its token.
            string? line;
            while ((line = await reader.ReadLineAsync(timeout.Token)) is not null && !line.Contains($"\"content\":\"{FakeChatClient.Pieces[0]}\"", StringComparison.Ordinal))
            {
            }

            Assert.NotNull(line);
            Assert.False(server.Client.Cancelled.IsCompleted);
        }

        await server.Client.Cancelled.WaitAsync(timeout.Token);
    }
}
