using System.Text.Json;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Host.Serving;
using LlmPq.Tests.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Chat;

/// <summary>An answer sent back in a later turn is prompted as the tokens that produced it (<see cref="AnswerTokens"/>).</summary>
[Collection(NativeTests.Name)]
public sealed class AnswerTokensTests
{
    // A question whose greedy answer (on the test model) is valid UTF-8, in tokens that are not the tokenizer's own split.
    private const string System = "You are a lighthouse keeper who answers briefly.";
    private const string Question = "Say something nice.";

    private static readonly ChatOptions s_greedy = new() { Temperature = 0, MaxOutputTokens = 24 };

    [Theory]
    [InlineData(System, Question, false)]
    [InlineData(null, "What do you see tonight?", true)] // the answer's first token is a byte that is no character
    public async Task The_second_turn_starts_with_the_first_turns_prompt_and_answer_tokens_and_reuses_their_cells(string? system, string question, bool loneByte)
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        var client = new LlmPqChatClient(engine, ChatClientTests.Options());
        (Turn first, List<ChatMessage> chat) = await FirstTurnAsync(client, system, question);
        Assert.Equal(loneByte, first.Response.Text.Contains('\uFFFD', StringComparison.Ordinal));
        int[] expected = [.. first.Request.Prompt, .. first.Finished.Output];

        EngineRequest second = client.GetService<EngineChatClient>()!.CreateRequest(chat, s_greedy);
        ChatResponse answer = await client.GetResponseAsync(chat, s_greedy);

        Assert.Equal(expected, second.Prompt.Take(expected.Length));

        // The sampled tokens are not the tokenizer's own split of their text: the prompt tokenized as text would differ.
        Assert.NotEqual(expected, Tokenize(engine, chat).Take(expected.Length));

        // The cells hold the prompt and every answer token fed back: all but a last token sampled at the output limit.
        int cells = expected.Length - (first.Finished.Reason == FinishReason.Length ? 1 : 0);
        Assert.Equal(cells, answer.Usage!.CachedInputTokenCount);
    }

    [Fact]
    public async Task The_second_turn_answers_the_same_greedy_without_the_cache()
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        var client = new LlmPqChatClient(engine, ChatClientTests.Options());
        (_, List<ChatMessage> chat) = await FirstTurnAsync(client);

        ChatResponse reused = await client.GetResponseAsync(chat, s_greedy);
        ChatResponse computed = await client.GetResponseAsync(chat, new ChatOptions { Temperature = 0, MaxOutputTokens = 24, AdditionalProperties = new() { ["cache_prompt"] = false } });

        Assert.True(reused.Usage!.CachedInputTokenCount > 0);
        Assert.Equal(0, computed.Usage!.CachedInputTokenCount ?? 0);
        Assert.Equal(reused.Usage.InputTokenCount, computed.Usage.InputTokenCount);
        Assert.NotEmpty(reused.Text);
        Assert.Equal(reused.Text, computed.Text);
    }

    [Fact]
    public async Task An_edited_answer_is_tokenized_as_text_and_reuses_less()
    {
        await using LlmPqEngine engine = await ChatClientTests.StartAsync();
        var client = new LlmPqChatClient(engine, ChatClientTests.Options());
        (Turn first, List<ChatMessage> chat) = await FirstTurnAsync(client);
        chat[^2] = new ChatMessage(ChatRole.Assistant, first.Response.Text + " Indeed.");

        EngineRequest edited = client.GetService<EngineChatClient>()!.CreateRequest(chat, s_greedy);
        ChatResponse answer = await client.GetResponseAsync(chat, s_greedy);

        int cells = first.Request.Prompt.Count + first.Finished.Output.Count - (first.Finished.Reason == FinishReason.Length ? 1 : 0);
        Assert.Equal(Tokenize(engine, chat), edited.Prompt);
        Assert.InRange(answer.Usage!.CachedInputTokenCount!.Value, 1, cells - 1);
        Assert.NotEmpty(answer.Text);
    }

    [Fact]
    public async Task Over_http_the_second_turn_reports_the_first_answer_as_cached()
    {
        await using WebApplication app = await EngineServerTests.StartAsync(new OpenAIServerOptions { Port = 0 });
        using var http = new HttpClient { BaseAddress = OpenAIServer.GetListenUri(app), Timeout = TimeSpan.FromSeconds(60) };
        var chat = new List<object> { new { role = "system", content = System }, new { role = "user", content = Question } };

        using JsonDocument first = await AskAsync(http, chat);
        JsonElement choice = first.RootElement.GetProperty("choices")[0];
        string answer = choice.GetProperty("message").GetProperty("content").GetString()!;
        JsonElement usage = first.RootElement.GetProperty("usage");
        chat.Add(new { role = "assistant", content = answer });
        chat.Add(new { role = "user", content = "And what do you hear?" });
        using JsonDocument second = await AskAsync(http, chat);

        // The first turn's prompt and answer are in the cells, less a last token sampled at the output limit.
        int cells = usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32()
            - (choice.GetProperty("finish_reason").GetString() == "length" ? 1 : 0);
        Assert.NotEmpty(answer);
        Assert.Equal(cells, second.RootElement.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
    }

    [Fact]
    public void The_memory_forgets_the_least_recently_used_answers_beyond_its_count()
    {
        var answers = new AnswerTokens(maxAnswers: 2, maxTokens: 100);
        answers.Add("a", [1]);
        answers.Add("b", [2]);
        Assert.True(answers.TryGet("a", out _));
        answers.Add("c", [3]);

        Assert.Equal(2, answers.Count);
        Assert.False(answers.TryGet("b", out _));
        Assert.True(answers.TryGet("a", out int[] a));
        Assert.Equal([1], a);
        Assert.True(answers.TryGet("c", out _));
    }

    [Fact]
    public void The_memory_holds_at_most_its_token_count_and_no_answer_longer()
    {
        var answers = new AnswerTokens(maxAnswers: 100, maxTokens: 5);
        answers.Add("a", [1, 2, 3]);
        answers.Add("b", [4, 5, 6]);
        answers.Add("too long", [1, 2, 3, 4, 5, 6]);
        answers.Add("b", [7, 8]);

        Assert.False(answers.TryGet("a", out _));
        Assert.False(answers.TryGet("too long", out _));
        Assert.True(answers.TryGet("b", out int[] b));
        Assert.Equal([7, 8], b);
        Assert.Equal(1, answers.Count);
        Assert.Equal(2, answers.TokenCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => new AnswerTokens(maxAnswers: 0, maxTokens: 5));
    }

    /// <summary>Answers a first turn and returns the chat of the second: the first turn, its answer and a new message.</summary>
    private static async Task<(Turn First, List<ChatMessage> Chat)> FirstTurnAsync(LlmPqChatClient client, string? system = System, string question = Question)
    {
        List<ChatMessage> chat = [new(ChatRole.User, question)];
        if (system is not null)
        {
            chat.Insert(0, new ChatMessage(ChatRole.System, system));
        }

        EngineRequest request = client.GetService<EngineChatClient>()!.CreateRequest(chat, s_greedy);
        var updates = new List<ChatResponseUpdate>();
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(chat, s_greedy))
        {
            updates.Add(update);
        }

        var first = new Turn(request, updates.ToChatResponse(), Assert.IsType<EngineEvent.Finished>(updates[^1].RawRepresentation));
        Assert.NotEmpty(first.Response.Text);
        chat.Add(new ChatMessage(ChatRole.Assistant, first.Response.Text));
        chat.Add(new ChatMessage(ChatRole.User, "And what do you hear?"));
        return (first, chat);
    }

    /// <summary>Gets the tokens of a chat's prompt rendered and tokenized as text.</summary>
    private static int[] Tokenize(LlmPqEngine engine, List<ChatMessage> chat) =>
        engine.Model.Tokenize(engine.Templates.Apply(ChatTemplateMapper.ToRequest(chat, s_greedy)).Prompt, addSpecial: true, parseSpecial: true);

    private static async Task<JsonDocument> AskAsync(HttpClient http, List<object> chat)
    {
        using HttpResponseMessage response = await EngineServerTests.PostAsync(http, JsonSerializer.Serialize(new { messages = chat, max_tokens = 24, temperature = 0 }));
        Assert.Equal(200, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    private sealed record Turn(EngineRequest Request, ChatResponse Response, EngineEvent.Finished Finished);
}
