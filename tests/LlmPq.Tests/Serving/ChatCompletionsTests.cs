using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Serving;

public sealed class ChatCompletionsTests
{
    private const string Hello = """{"model":"fake-model","messages":[{"role":"user","content":"Hi"}]}""";

    [Fact]
    public async Task A_request_without_streaming_gets_a_chat_completion_with_usage()
    {
        await using var server = await RunningServer.StartAsync();

        JsonElement completion = await server.PostChatJsonAsync(Hello);

        Assert.Equal(FakeChatClient.ResponseId, completion.GetProperty("id").GetString());
        Assert.Equal("chat.completion", completion.GetProperty("object").GetString());
        Assert.Equal(FakeChatClient.Created.ToUnixTimeSeconds(), completion.GetProperty("created").GetInt64());
        Assert.Equal(FakeChatClient.Model, completion.GetProperty("model").GetString());
        JsonElement choice = Assert.Single(completion.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(string.Concat(FakeChatClient.Pieces), choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        JsonElement usage = completion.GetProperty("usage");
        Assert.Equal(FakeChatClient.InputTokens, usage.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(FakeChatClient.Pieces.Length, usage.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(FakeChatClient.InputTokens + FakeChatClient.Pieces.Length, usage.GetProperty("total_tokens").GetInt64());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_finished_request_is_logged_at_debug_with_its_tokens(bool stream)
    {
        var logs = new ListLoggerProvider();
        await using var server = await RunningServer.StartAsync(logs: logs);

        using HttpResponseMessage response = await server.PostChatAsync($$"""{"messages":[{"role":"user","content":"Hi"}],"stream":{{(stream ? "true" : "false")}}}""");
        await response.Content.ReadAsStringAsync();

        Assert.Contains(logs.Lines, l => l.Level == LogLevel.Debug && l.Message.Contains("started", StringComparison.Ordinal));
        Assert.Contains(logs.Lines, l => l.Level == LogLevel.Debug
            && l.Message.Contains($"{FakeChatClient.InputTokens} prompt and {FakeChatClient.Pieces.Length} completion tokens", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_completion_cut_by_the_token_limit_finishes_with_length()
    {
        await using var server = await RunningServer.StartAsync(new FakeChatClient { FinishReason = ChatFinishReason.Length });

        JsonElement completion = await server.PostChatJsonAsync(Hello);

        Assert.Equal("length", completion.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task A_streamed_completion_sends_role_content_finish_reason_usage_and_done()
    {
        await using var server = await RunningServer.StartAsync();
        string whole = (await server.PostChatJsonAsync(Hello)).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

        using HttpResponseMessage response = await server.PostChatAsync("""{"messages":[{"role":"user","content":"Hi"}],"stream":true}""");
        List<string> events = await RunningServer.ReadEventsAsync(response);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("[DONE]", events[^1]);
        List<JsonElement> chunks = [.. events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement)];
        Assert.All(chunks, c =>
        {
            Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString());
            Assert.Equal(FakeChatClient.ResponseId, c.GetProperty("id").GetString());
            Assert.Equal(FakeChatClient.Model, c.GetProperty("model").GetString());
            Assert.Equal(FakeChatClient.Created.ToUnixTimeSeconds(), c.GetProperty("created").GetInt64());
        });

        // The first chunk names the role; then content; then one chunk with the finish reason; last the usage alone.
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        JsonElement usageChunk = chunks[^1];
        Assert.Empty(usageChunk.GetProperty("choices").EnumerateArray());
        Assert.Equal(FakeChatClient.InputTokens, usageChunk.GetProperty("usage").GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(FakeChatClient.Pieces.Length, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt64());
        Assert.Equal(FakeChatClient.InputTokens + FakeChatClient.Pieces.Length, usageChunk.GetProperty("usage").GetProperty("total_tokens").GetInt64());

        JsonElement finish = chunks[^2].GetProperty("choices")[0];
        Assert.Equal("stop", finish.GetProperty("finish_reason").GetString());
        Assert.False(finish.GetProperty("delta").TryGetProperty("content", out _));

        List<JsonElement> middle = chunks[1..^2];
        Assert.All(middle, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        string streamed = string.Concat(middle.Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal(FakeChatClient.Pieces.Length, middle.Count);
        Assert.Equal(whole, streamed);

        // Text goes out as raw UTF-8, not as \u escapes.
        Assert.Contains(events, e => e.Contains("\"content\":\"wörld\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_option_lands_in_ChatOptions()
    {
        await using var server = await RunningServer.StartAsync();

        await server.PostChatJsonAsync("""
            {
              "model": "fake-model",
              "messages": [{"role": "user", "content": "Hi"}],
              "stream_options": {"include_usage": true},
              "max_tokens": 99,
              "max_completion_tokens": 42,
              "temperature": 0.7,
              "top_p": 0.9,
              "seed": 1234567890123,
              "stop": ["\n\n", "END"],
              "frequency_penalty": 0.25,
              "presence_penalty": -0.5,
              "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "description": "The answer.", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}
              },
              "top_k": 40,
              "min_p": 0.05,
              "repeat_penalty": 1.1
            }
            """);

        ChatOptions options = server.Client.ReceivedOptions!;
        Assert.Equal("fake-model", options.ModelId);
        Assert.Equal(42, options.MaxOutputTokens);
        Assert.Equal(0.7f, options.Temperature);
        Assert.Equal(0.9f, options.TopP);
        Assert.Equal(1234567890123L, options.Seed);
        Assert.Equal(["\n\n", "END"], options.StopSequences!);
        Assert.Equal(0.25f, options.FrequencyPenalty);
        Assert.Equal(-0.5f, options.PresencePenalty);
        Assert.Equal(40, options.TopK);
        Assert.Equal(0.05f, options.AdditionalProperties!["min_p"]);
        Assert.Equal(1.1f, options.AdditionalProperties["repeat_penalty"]);
        var format = Assert.IsType<ChatResponseFormatJson>(options.ResponseFormat);
        Assert.Equal("answer", format.SchemaName);
        Assert.Equal("The answer.", format.SchemaDescription);
        Assert.Equal("integer", format.Schema!.Value.GetProperty("properties").GetProperty("a").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Max_tokens_a_single_stop_string_and_json_object_are_mapped_too()
    {
        await using var server = await RunningServer.StartAsync();

        await server.PostChatJsonAsync("""
            {"messages":[{"role":"user","content":"Hi"}],"max_tokens":17,"stop":"###","response_format":{"type":"json_object"}}
            """);

        ChatOptions options = server.Client.ReceivedOptions!;
        Assert.Equal(17, options.MaxOutputTokens);
        Assert.Equal(["###"], options.StopSequences!);
        var format = Assert.IsType<ChatResponseFormatJson>(options.ResponseFormat);
        Assert.Null(format.Schema);
    }

    [Fact]
    public async Task A_request_without_options_leaves_ChatOptions_empty()
    {
        await using var server = await RunningServer.StartAsync();

        await server.PostChatJsonAsync("""{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"text"}}""");

        ChatOptions options = server.Client.ReceivedOptions!;
        Assert.Null(options.ModelId);
        Assert.Null(options.MaxOutputTokens);
        Assert.Null(options.Temperature);
        Assert.Null(options.TopK);
        Assert.Null(options.StopSequences);
        Assert.Null(options.AdditionalProperties);
        Assert.IsType<ChatResponseFormatText>(options.ResponseFormat);
    }

    [Fact]
    public async Task Roles_map_to_ChatRoles_and_developer_becomes_system()
    {
        await using var server = await RunningServer.StartAsync();

        await server.PostChatJsonAsync("""
            {"messages":[
              {"role":"developer","content":"d"},
              {"role":"system","content":"s"},
              {"role":"user","content":"u","name":"ann"},
              {"role":"assistant","content":"a"},
              {"role":"tool","content":"t","tool_call_id":"c1"}
            ]}
            """);

        IReadOnlyList<ChatMessage> messages = server.Client.ReceivedMessages!;
        Assert.Equal([ChatRole.System, ChatRole.System, ChatRole.User, ChatRole.Assistant, ChatRole.Tool], messages.Select(m => m.Role));
        Assert.Equal(["d", "s", "u", "a"], messages.Take(4).Select(m => m.Text));
        Assert.Equal("ann", messages[2].AuthorName);
        Assert.Equal("t", Assert.IsType<FunctionResultContent>(Assert.Single(messages[4].Contents)).Result);
    }

    [Fact]
    public async Task Content_as_an_array_of_text_parts_becomes_text_contents()
    {
        await using var server = await RunningServer.StartAsync();

        await server.PostChatJsonAsync("""
            {"messages":[{"role":"user","content":[{"type":"text","text":"Hello, "},{"type":"text","text":"there"}]}]}
            """);

        ChatMessage message = Assert.Single(server.Client.ReceivedMessages!);
        Assert.Equal(["Hello, ", "there"], message.Contents.Select(c => Assert.IsType<TextContent>(c).Text));
    }
}
