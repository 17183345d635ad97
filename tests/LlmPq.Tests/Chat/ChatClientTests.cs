using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Grammar;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Chat;

/// <summary>LlmPqChatClient over a real engine on a generated model.</summary>
[Collection(NativeTests.Name)]
public sealed class ChatClientTests
{
    private static readonly ChatOptions s_greedy = new() { Temperature = 0, MaxOutputTokens = 24 };

    [Fact]
    public async Task Streamed_and_aggregated_answers_are_equal_and_fully_described()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());

        var updates = new List<ChatResponseUpdate>();
        await foreach (ChatResponseUpdate u in client.GetStreamingResponseAsync("Tell me a story.", s_greedy))
        {
            updates.Add(u);
        }

        ChatResponse response = await client.GetResponseAsync("Tell me a story.", s_greedy);

        Assert.Equal(string.Concat(updates.Select(u => u.Text)), response.Text);
        Assert.NotEmpty(response.Text);
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());
        Assert.Single(updates.Select(u => u.MessageId).Distinct());
        Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>());
        Assert.NotNull(updates[^1].FinishReason);

        ChatMessage message = Assert.Single(response.Messages);
        Assert.Equal(ChatRole.Assistant, message.Role);
        Assert.False(string.IsNullOrEmpty(message.MessageId));
        Assert.False(string.IsNullOrEmpty(response.ResponseId));
        Assert.Equal(engine.ModelId, response.ModelId);
        Assert.NotNull(response.CreatedAt);
        Assert.NotNull(response.FinishReason);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage.InputTokenCount > 5);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task Max_output_tokens_ends_with_length_and_counts_exactly()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        ChatResponse response = await client.GetResponseAsync("Count with me.", new ChatOptions { Temperature = 0, MaxOutputTokens = 5 });
        if (response.FinishReason == ChatFinishReason.Length)
        {
            Assert.Equal(5, response.Usage!.OutputTokenCount);
        }
        else
        {
            Assert.True(response.Usage!.OutputTokenCount < 5, "a generation that stopped early must be shorter than the limit");
        }
    }

    [Fact]
    public async Task A_stop_sequence_ends_the_answer_and_is_not_emitted()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        var free = new ChatOptions { Temperature = 0, MaxOutputTokens = 40 };
        string full = (await client.GetResponseAsync("Say something long.", free)).Text;
        Assert.True(full.Length >= 20, $"the reference answer is too short to cut: '{full}'");

        string stop = full.Substring(12, 4);
        int expectedEnd = full.IndexOf(stop, StringComparison.Ordinal);
        var withStop = new ChatOptions { Temperature = 0, MaxOutputTokens = 40, StopSequences = [stop] };
        ChatResponse cut = await client.GetResponseAsync("Say something long.", withStop);

        Assert.Equal(full[..expectedEnd], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
    }

    [Fact]
    public async Task Cancelling_mid_stream_frees_the_sequence_and_its_kv_cells()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        int before = engine.KvTokensInUse;
        using var cts = new CancellationTokenSource();
        int received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (ChatResponseUpdate u in client.GetStreamingResponseAsync("Go on forever.", new ChatOptions { Temperature = 0, MaxOutputTokens = 400 }, cts.Token))
            {
                if (++received == 3)
                {
                    await cts.CancelAsync();
                }
            }
        });

        await WaitUntil(() => engine.RunningSequences == 0 && engine.KvTokensInUse == before);
        Assert.Equal(before, engine.KvTokensInUse);

        // The engine keeps serving.
        Assert.NotNull((await client.GetResponseAsync("Still there?", s_greedy)).FinishReason);
    }

    [Fact]
    public async Task Concurrent_requests_all_finish_with_the_text_and_usage_they_get_alone()
    {
        await using var engine = await StartAsync(o => o.MaxSequences = 8);
        var client = new LlmPqChatClient(engine, Options());
        string[] prompts = [.. Enumerable.Range(0, 32).Select(i => $"Request number {i}: describe the color {i * 7 % 13}.")];

        var alone = new List<ChatResponse>();
        foreach (string p in prompts)
        {
            alone.Add(await client.GetResponseAsync(p, s_greedy));
        }

        ChatResponse[] together = await Task.WhenAll(prompts.Select(p => client.GetResponseAsync(p, s_greedy)));

        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(alone[i].Text, together[i].Text);
            Assert.Equal(alone[i].Usage!.InputTokenCount, together[i].Usage!.InputTokenCount);
            Assert.Equal(alone[i].Usage!.OutputTokenCount, together[i].Usage!.OutputTokenCount);
            Assert.Equal(alone[i].FinishReason, together[i].FinishReason);
        }
    }

    [Fact]
    public async Task A_prompt_over_the_context_fails_alone_while_others_finish()
    {
        await using var engine = await StartAsync(o => o.ContextLength = 256);
        Assert.Equal(256, engine.ContextLength);
        var client = new LlmPqChatClient(engine, Options());
        string huge = string.Join(' ', Enumerable.Repeat("word", 400));

        Task<ChatResponse>[] others = [.. Enumerable.Range(0, 4).Select(i => client.GetResponseAsync($"Short {i}", s_greedy))];
        LlmPqRequestException ex = await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync(huge, s_greedy));
        Assert.Equal("context_length_exceeded", ex.Code);
        Assert.Contains("256", ex.Message, StringComparison.Ordinal);
        foreach (ChatResponse r in await Task.WhenAll(others))
        {
            Assert.NotNull(r.FinishReason);
        }
    }

    [Fact]
    public async Task Kv_pressure_preempts_and_every_request_still_completes()
    {
        // A shared cache of 256 cells: 6 sequences of ~45 prompt tokens growing by 40 cannot all fit at once.
        await using var engine = await StartAsync(o =>
        {
            o.ContextLength = 256;
            o.KvCacheTokens = 256;
            o.MaxSequences = 6;
        });
        var client = new LlmPqChatClient(engine, Options());
        string[] prompts = [.. Enumerable.Range(0, 6).Select(i => $"Prompt {i}: " + string.Join(' ', Enumerable.Repeat("tea", 20)))];
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 40, AdditionalProperties = new() { ["min_p"] = 0.0 } };

        var alone = new List<ChatResponse>();
        foreach (string p in prompts)
        {
            alone.Add(await client.GetResponseAsync(p, options));
        }

        ChatResponse[] together = await Task.WhenAll(prompts.Select(p => client.GetResponseAsync(p, options)));
        Assert.True(engine.Preemptions > 0, "the workload was meant to overflow the KV cache");
        Assert.Equal(engine.Preemptions, together.Sum(r => r.Usage!.AdditionalCounts?.GetValueOrDefault(EngineChatClient.PreemptionsCount) ?? 0));
        for (int i = 0; i < prompts.Length; i++)
        {
            // Shared attention is not batch-invariant, so the text may differ; nothing is lost and usage is exact.
            Assert.NotNull(together[i].FinishReason);
            Assert.Equal(alone[i].Usage!.InputTokenCount, together[i].Usage!.InputTokenCount);
            Assert.InRange(together[i].Usage!.OutputTokenCount!.Value, 1, 40);
        }
    }

    [Fact]
    public async Task A_model_id_that_is_not_served_is_rejected()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        LlmPqRequestException ex = await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync("Hi", new ChatOptions { ModelId = "gpt-4o" }));
        Assert.Equal("model_not_found", ex.Code);
        Assert.NotNull((await client.GetResponseAsync("Hi", new ChatOptions { ModelId = engine.ModelId, MaxOutputTokens = 2 })).FinishReason);
    }

    [Fact]
    public async Task Options_map_to_llama_cpp_sampling()
    {
        await using var engine = await StartAsync();
        EngineChatClient client = new LlmPqChatClient(engine, Options()).GetService<EngineChatClient>()!;
        var options = new ChatOptions
        {
            Temperature = 0.5f,
            TopP = 0.9f,
            TopK = 12,
            Seed = 1234,
            FrequencyPenalty = 0.25f,
            PresencePenalty = 0.5f,
            MaxOutputTokens = 7,
            StopSequences = ["END"],
            Instructions = "You are terse.",
            AdditionalProperties = new() { ["min_p"] = 0.1, ["repeat_penalty"] = JsonDocument.Parse("1.3").RootElement, ["repeat_last_n"] = "32" },
        };

        EngineRequest request = client.CreateRequest([new ChatMessage(ChatRole.User, "Hello")], options);

        Assert.Equal(0.5f, request.Sampling.Temperature);
        Assert.Equal(0.9f, request.Sampling.TopP);
        Assert.Equal(12, request.Sampling.TopK);
        Assert.Equal(1234u, request.Sampling.Seed);
        Assert.Equal(0.25f, request.Sampling.FrequencyPenalty);
        Assert.Equal(0.5f, request.Sampling.PresencePenalty);
        Assert.Equal(0.1f, request.Sampling.MinP, 5);
        Assert.Equal(1.3f, request.Sampling.RepeatPenalty, 5);
        Assert.Equal(32, request.Sampling.PenaltyLastN);
        Assert.Equal(7, request.MaxOutputTokens);
        Assert.Equal(["END"], request.StopSequences);
        Assert.Null(request.Sampling.Grammar);
        string prompt = engine.Model.Detokenize([.. request.Prompt], unparseSpecial: true);
        Assert.True(prompt.IndexOf("You are terse.", StringComparison.Ordinal) < prompt.IndexOf("Hello", StringComparison.Ordinal));

        EngineRequest json = client.CreateRequest([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { ResponseFormat = ChatResponseFormat.Json });
        Assert.Equal(JsonGrammar.AnyJson, json.Sampling.Grammar);
        EngineRequest greedy = client.CreateRequest([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { Temperature = 0 });
        Assert.Equal(0f, greedy.Sampling.Temperature);

        Assert.Throws<LlmPqRequestException>(() => client.CreateRequest([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { MaxOutputTokens = 0 }));
        Assert.Throws<LlmPqRequestException>(() => client.CreateRequest([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { AdditionalProperties = new() { ["min_p"] = "lots" } }));
    }

    [Fact]
    public async Task Get_service_returns_metadata_the_client_and_the_engine()
    {
        await using var engine = await StartAsync();
        IChatClient client = new LlmPqChatClient(engine, Options());
        ChatClientMetadata metadata = client.GetRequiredService<ChatClientMetadata>();
        Assert.Equal("llmpq", metadata.ProviderName);
        Assert.Equal(engine.ModelId, metadata.DefaultModelId);
        Assert.Null(metadata.ProviderUri); // OpenTelemetry would read a server address from it
        Assert.Same(client, client.GetService<LlmPqChatClient>());
        Assert.Same(engine, client.GetService<LlmPqEngine>());
        Assert.Null(client.GetService<ChatClientMetadata>("some key"));
    }

    [Fact]
    public async Task The_engine_reports_genai_and_batch_metrics()
    {
        var seen = new HashSet<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == EngineMetrics.MeterName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((i, _, _, _) => { lock (seen) { seen.Add(i.Name); } });
        listener.SetMeasurementEventCallback<long>((i, _, _, _) => { lock (seen) { seen.Add(i.Name); } });
        listener.SetMeasurementEventCallback<int>((i, _, _, _) => { lock (seen) { seen.Add(i.Name); } });
        listener.Start();

        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        await client.GetResponseAsync("Measure me.", new ChatOptions { Temperature = 0, MaxOutputTokens = 6 });
        listener.RecordObservableInstruments();

        Assert.Contains("gen_ai.server.time_to_first_token", seen);
        Assert.Contains("gen_ai.server.request.duration", seen);
        Assert.Contains("gen_ai.client.token.usage", seen);
        Assert.Contains("llmpq.engine.batch.tokens", seen);
        Assert.Contains("llmpq.engine.queue.length", seen);
        Assert.Contains("llmpq.engine.kv.tokens", seen);
    }

    [Fact]
    public async Task Request_metrics_carry_the_provider_and_model_a_request_that_ends_early_its_error_type_and_gauges_the_model()
    {
        var seen = new List<(string Name, Dictionary<string, object?> Tags)>();
        void Record(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var copy = new Dictionary<string, object?>();
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                copy[tag.Key] = tag.Value;
            }

            lock (seen)
            {
                seen.Add((instrument.Name, copy));
            }
        }

        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == EngineMetrics.MeterName && instrument.Name is "gen_ai.server.request.duration" or "llmpq.engine.queue.length")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((i, _, tags, _) => Record(i, tags));
        listener.SetMeasurementEventCallback<int>((i, _, tags, _) => Record(i, tags));
        listener.Start();

        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        await client.GetResponseAsync("Measure me.", new ChatOptions { Temperature = 0, MaxOutputTokens = 4 });
        using var cancel = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Stop me.", new ChatOptions { Temperature = 0, MaxOutputTokens = 200 }, cancel.Token))
            {
                await cancel.CancelAsync();
            }
        });
        await WaitUntil(() => { lock (seen) { return seen.Any(m => m.Tags.ContainsKey("error.type")); } });
        listener.RecordObservableInstruments();

        lock (seen)
        {
            var ours = seen.Where(m => Equals(m.Tags.GetValueOrDefault("gen_ai.request.model"), engine.ModelId)).ToList();
            Assert.Contains(ours, m => m.Name == "gen_ai.server.request.duration" && Equals(m.Tags.GetValueOrDefault("gen_ai.provider.name"), "llmpq") && !m.Tags.ContainsKey("error.type"));
            Assert.Contains(ours, m => m.Name == "gen_ai.server.request.duration" && Equals(m.Tags.GetValueOrDefault("error.type"), typeof(OperationCanceledException).FullName));
            Assert.Contains(ours, m => m.Name == "llmpq.engine.queue.length");
        }
    }

    [Fact]
    public async Task Scheduling_delay_is_recorded_once_per_request_and_never_after_its_first_token()
    {
        var delays = new List<double>();
        var ttfts = new List<double>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == EngineMetrics.MeterName && instrument.Name is "llmpq.engine.scheduling_delay" or "gen_ai.server.time_to_first_token")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((i, value, _, _) =>
        {
            lock (delays)
            {
                (i.Name == "llmpq.engine.scheduling_delay" ? delays : ttfts).Add(value);
            }
        });
        listener.Start();

        // Two slots for five requests: three wait in the queue before their first iteration.
        await using var engine = await StartAsync(o => o.MaxSequences = 2);
        var client = new LlmPqChatClient(engine, Options());
        await Task.WhenAll(Enumerable.Range(0, 5).Select(i => client.GetResponseAsync($"Queue me {i}.", new ChatOptions { Temperature = 0, MaxOutputTokens = 8 })));

        Assert.Equal(5, delays.Count);
        Assert.Equal(5, ttfts.Count);
        Assert.True(delays.Order().Zip(ttfts.Order()).All(p => p.First <= p.Second), "a request is scheduled before its first token");
    }

    internal static LlmPqOptions Options(Action<LlmPqOptions>? configure = null)
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 1024, MaxSequences = 4, TokenBudget = 64, Threads = 2 };
        configure?.Invoke(options);
        return options;
    }

    internal static async Task<LlmPqEngine> StartAsync(Action<LlmPqOptions>? configure = null)
    {
        var engine = new LlmPqEngine(Options(configure));
        await engine.StartAsync();
        return engine;
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition() && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_repeated_conversation_reports_cached_input_tokens_unless_cache_prompt_is_false()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        ChatMessage[] chat = [new(ChatRole.System, "You are a lighthouse keeper who answers briefly."), new(ChatRole.User, "What do you see tonight?")];

        ChatResponse first = await client.GetResponseAsync(chat, new ChatOptions { Temperature = 0, MaxOutputTokens = 4 });
        ChatResponse again = await client.GetResponseAsync(chat, new ChatOptions { Temperature = 0, MaxOutputTokens = 4 });
        ChatResponse optedOut = await client.GetResponseAsync(chat, new ChatOptions { Temperature = 0, MaxOutputTokens = 4, AdditionalProperties = new() { ["cache_prompt"] = false } });

        Assert.Equal(0, first.Usage!.CachedInputTokenCount ?? 0);
        Assert.InRange(again.Usage!.CachedInputTokenCount!.Value, 1, again.Usage.InputTokenCount!.Value - 1);
        Assert.Equal(first.Text, again.Text);
        Assert.Equal(0, optedOut.Usage!.CachedInputTokenCount ?? 0);
        await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync(chat, new ChatOptions { AdditionalProperties = new() { ["cache_prompt"] = "sometimes" } }));
    }

    [Fact]
    public async Task Logprobs_come_per_token_and_greedy_picks_the_most_likely()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());

        var logprobs = new List<TokenLogprob>();
        ChatResponseUpdate? last = null;
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync("Hello", new ChatOptions { Temperature = 0, MaxOutputTokens = 6, AdditionalProperties = new() { ["logprobs"] = true, ["top_logprobs"] = 3 } }))
        {
            logprobs.AddRange(update.AdditionalProperties?.GetValueOrDefault(TokenLogprob.PropertyName) as IEnumerable<TokenLogprob> ?? []);
            last = update;
        }

        Assert.Equal(last!.Contents.OfType<UsageContent>().Single().Details.OutputTokenCount, logprobs.Count);
        Assert.All(logprobs, t =>
        {
            Assert.InRange(t.Logprob, float.MinValue, 0);
            Assert.Equal(3, t.Top.Count);
            Assert.True(t.Top[0].Logprob >= t.Top[1].Logprob && t.Top[1].Logprob >= t.Top[2].Logprob);
            Assert.Equal(t.Top[0].Logprob, t.Logprob, 4);
        });
        await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync("Hi", new ChatOptions { AdditionalProperties = new() { ["logprobs"] = true, ["top_logprobs"] = 21 } }));
    }

    [Fact]
    public async Task A_schema_whose_grammar_is_too_large_is_refused_before_it_reaches_the_engine()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        string values = string.Join(',', Enumerable.Range(0, 100_000).Select(i => $"\"value-{i}\""));
        using JsonDocument schema = JsonDocument.Parse("""{"type":"object","properties":{"v":{"enum":[""" + values + """]}},"required":["v"]}""");

        LlmPqRequestException ex = await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync(
            "Pick one.", new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement), MaxOutputTokens = 4 }));

        Assert.Contains("KiB", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, engine.QueueLength + engine.RunningSequences);
        ChatResponse next = await client.GetResponseAsync("Hello", new ChatOptions { Temperature = 0, MaxOutputTokens = 2 });
        Assert.Equal(2, next.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task A_schema_pattern_is_enforced_by_llama_cpp_and_one_it_cannot_convert_is_refused_with_its_reason()
    {
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());
        using JsonDocument schema = JsonDocument.Parse("""{"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"}},"required":["code"]}""");

        ChatResponse response = await client.GetResponseAsync("Give a code.", new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement), MaxOutputTokens = 64, Temperature = 0 });

        using JsonDocument answer = JsonDocument.Parse(response.Text);
        Assert.Matches("^[A-Z]{2}-[0-9]{3}$", answer.RootElement.GetProperty("code").GetString()!);

        // An unanchored pattern would let any string through llama.cpp's converter (a warning on stderr alone), and an
        // invalid one fails it: both are refused, saying where and why.
        foreach ((string pattern, string reason) in new[] { ("[A-Z]+", "must start with '^'"), ("^([A-Z]+$", "unbalanced parentheses") })
        {
            using JsonDocument bad = JsonDocument.Parse("""{"type":"object","properties":{"code":{"type":"string","pattern":""" + JsonSerializer.Serialize(pattern) + "}}}");
            LlmPqRequestException ex = await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync(
                "Give a code.", new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(bad.RootElement), MaxOutputTokens = 4 }));
            Assert.Contains("#/properties/code/pattern", ex.Message, StringComparison.Ordinal);
            Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Each_request_is_a_genai_span_with_its_usage_and_a_refused_one_is_an_error()
    {
        using var spans = new ChatSpans(nameof(ChatClientTests));
        await using var engine = await StartAsync();
        var client = new LlmPqChatClient(engine, Options());

        ActivityTraceId trace;
        ChatResponse response;
        using (Activity test = spans.StartTrace())
        {
            trace = test.TraceId;
            response = await client.GetResponseAsync("Hello", new ChatOptions { Temperature = 0, MaxOutputTokens = 3 });
            await Assert.ThrowsAsync<LlmPqRequestException>(() => client.GetResponseAsync("Hi", new ChatOptions { MaxOutputTokens = -1 }));
        }

        List<Activity> mine = spans.Of(trace);
        Activity ok = Assert.Single(mine, s => s.Status != ActivityStatusCode.Error);
        Activity refused = Assert.Single(mine, s => s.Status == ActivityStatusCode.Error);

        Assert.Equal($"chat {engine.ModelId}", ok.DisplayName);
        Assert.Equal("chat", ok.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("llmpq", ok.GetTagItem("gen_ai.provider.name"));
        Assert.Equal((int)response.Usage!.OutputTokenCount!.Value, ok.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal((int)response.Usage.InputTokenCount!.Value, ok.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal([response.FinishReason!.Value.Value], (string[])ok.GetTagItem("gen_ai.response.finish_reasons")!);
        Assert.Contains(ok.Events, e => e.Name == "gen_ai.first_token");
        Assert.Null(refused.GetTagItem("gen_ai.usage.output_tokens"));
    }
}
