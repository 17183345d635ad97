using System.ClientModel;
using OpenAI;
using OpenAI.Chat;

namespace LlmPq.Tests.Serving;

/// <summary>Failures as the OpenAI .NET SDK sees them: a stream cut by an error, and 503s that say when to retry.</summary>
public sealed class SdkErrorTests
{
    private static ChatClient Sdk(RunningServer server) =>
        new(FakeChatClient.Model, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "v1") });

    /// <remarks>
    /// The server ends the stream with OpenAI's <c>data: {"error": …}</c> event and no <c>[DONE]</c>; the Python SDK
    /// raises on it, but the .NET SDK 2.15 reads it as an update without choices and ends quietly. What it does show is
    /// that no update carried a finish reason: the answer is cut, not complete.
    /// </remarks>
    [Fact]
    public async Task An_error_after_the_first_streamed_token_leaves_the_sdk_without_a_finish_reason()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { ThrowAfterFirstPiece = new LlmPqUnavailableException("A stage went away.") });
        var updates = new List<StreamingChatCompletionUpdate>();

        await foreach (StreamingChatCompletionUpdate update in Sdk(server).CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            updates.Add(update);
        }

        Assert.Contains(FakeChatClient.Pieces[0], updates.SelectMany(u => u.ContentUpdate).Select(p => p.Text));
        Assert.All(updates, u => Assert.Null(u.FinishReason));
    }

    [Fact]
    public async Task A_complete_stream_gives_the_sdk_a_finish_reason()
    {
        await using var server = await RunningServer.StartAsync();
        var updates = new List<StreamingChatCompletionUpdate>();

        await foreach (StreamingChatCompletionUpdate update in Sdk(server).CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            updates.Add(update);
        }

        Assert.Contains(updates, u => u.FinishReason == ChatFinishReason.Stop);
    }

    [Fact]
    public async Task A_503_carries_retry_after()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { ThrowAtStart = new LlmPqUnavailableException("Loading.") });

        using HttpResponseMessage response = await server.PostChatAsync("""{"messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(503, (int)response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter?.Delta);
    }
}
