using LlmPq.Engine;
using LlmPq.Tests.Chat;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Engine;

/// <summary>Stopping the engine while it decodes ends every request cleanly and leaves the process alive.</summary>
[Collection(NativeTests.Name)]
public sealed class EngineStopTests
{
    [Fact]
    public async Task Stopping_while_requests_decode_ends_each_with_a_completion_or_unavailable()
    {
        var options = new ChatOptions { Temperature = 0.8f, Seed = 7, MaxOutputTokens = 400 };
        var random = new Random(3);
        for (int round = 0; round < 10; round++)
        {
            LlmPqEngine engine = await ChatClientTests.StartAsync(o => o.DefaultMaxOutputTokens = 400);
            var client = new LlmPqChatClient(engine, ChatClientTests.Options());
            var started = Enumerable.Range(0, 3).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
            Task<string>[] requests = [.. Enumerable.Range(0, 3).Select(i => ConsumeAsync(client, $"Round {round}, story {i}: tell a long tale.", options, started[i]))];

            // Stop once every request has streamed (or finished), at a varying point of its decode.
            await Task.WhenAll(started.Select(s => s.Task));
            await Task.Delay(random.Next(0, 30));
            await engine.DisposeAsync();

            string[] outcomes = await Task.WhenAll(requests);
            Assert.All(outcomes, o => Assert.True(o is "completed" or "unavailable", $"round {round}: {o}"));
            Assert.False(engine.IsReady);
        }
    }

    /// <summary>Reads a streaming response to its end; says how it ended.</summary>
    private static async Task<string> ConsumeAsync(LlmPqChatClient client, string prompt, ChatOptions options, TaskCompletionSource started)
    {
        try
        {
            ChatFinishReason? finish = null;
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(prompt, options))
            {
                started.TrySetResult();
                finish ??= update.FinishReason;
            }

            return finish is null ? "ended without a finish reason" : "completed";
        }
        catch (LlmPqUnavailableException)
        {
            return "unavailable";
        }
        catch (Exception ex)
        {
            return ex.ToString();
        }
        finally
        {
            started.TrySetResult();
        }
    }
}
