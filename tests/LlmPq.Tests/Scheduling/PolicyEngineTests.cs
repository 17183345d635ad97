using System.Diagnostics.Metrics;
using LlmPq.Engine;
using LlmPq.Scheduling;
using LlmPq.Tests.Chat;
using Microsoft.Extensions.AI;

namespace LlmPq.Tests.Scheduling;

/// <summary>Every scheduling policy on a real engine over a generated model.</summary>
[Collection(NativeTests.Name)]
public sealed class PolicyEngineTests
{
    [Fact]
    public async Task Every_policy_completes_concurrent_requests_with_the_greedy_output_of_a_lone_run()
    {
        // Six requests on four sequences (two queue), one prompt longer than the budget of 64, so every policy chunks,
        // admits late and (request-level) holds requests back. Per-sequence KV cells make greedy output batch-invariant.
        string[] prompts =
        [
            .. Enumerable.Range(0, 5).Select(i => $"Request {i}: name the color {i * 7 % 13}."),
            "Summarize: " + string.Join(' ', Enumerable.Repeat("the long river runs", 20)),
        ];
        var greedy = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };

        var alone = new List<ChatResponse>();
        await using (LlmPqEngine engine = await ChatClientTests.StartAsync())
        {
            var client = new LlmPqChatClient(engine, ChatClientTests.Options());
            Assert.True(engine.Model.Tokenize(prompts[^1], addSpecial: true, parseSpecial: false).Length > 64, "the long prompt must exceed the budget");
            foreach (string p in prompts)
            {
                alone.Add(await client.GetResponseAsync(p, greedy));
            }
        }

        Assert.All(alone, r => Assert.NotEmpty(r.Text));
        foreach (SchedulingPolicy policy in Enum.GetValues<SchedulingPolicy>())
        {
            await using LlmPqEngine engine = await ChatClientTests.StartAsync(o => o.SchedulingPolicy = policy);
            var client = new LlmPqChatClient(engine, ChatClientTests.Options());
            ChatResponse[] together = await Task.WhenAll(prompts.Select(p => client.GetResponseAsync(p, greedy)));
            for (int i = 0; i < prompts.Length; i++)
            {
                Assert.True(alone[i].Text == together[i].Text, $"{policy}, request {i}: '{together[i].Text}' instead of '{alone[i].Text}'");
                Assert.Equal(alone[i].Usage!.OutputTokenCount, together[i].Usage!.OutputTokenCount);
                Assert.Equal(alone[i].FinishReason, together[i].FinishReason);
            }
        }
    }

    [Fact]
    public async Task A_tbt_target_tunes_the_budget_and_the_iterations_are_measured()
    {
        var budgets = new List<int>();
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
        listener.SetMeasurementEventCallback<int>((i, value, _, _) =>
        {
            if (i.Name == "llmpq.engine.token_budget")
            {
                lock (budgets)
                {
                    budgets.Add(value);
                }
            }
        });
        listener.SetMeasurementEventCallback<double>((i, _, _, _) => { lock (seen) { seen.Add(i.Name); } });
        listener.Start();

        // No iteration takes under 100 ns: once the fit is trusted the budget drops from 64 to the smallest, 32.
        await using LlmPqEngine engine = await ChatClientTests.StartAsync(o => o.TbtTarget = TimeSpan.FromTicks(1));
        var client = new LlmPqChatClient(engine, ChatClientTests.Options());
        string prompt = "Summarize: " + string.Join(' ', Enumerable.Repeat("the long river runs", 20));
        listener.RecordObservableInstruments();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(i => client.GetResponseAsync($"{i} {prompt}", new ChatOptions { Temperature = 0, MaxOutputTokens = 16 })));
        listener.RecordObservableInstruments();

        Assert.Equal([64, 32], budgets);
        Assert.Contains("llmpq.engine.iteration.duration", seen);
        Assert.Contains("llmpq.engine.iteration.spread", seen);
        Assert.Contains("llmpq.engine.iteration.imbalance", seen);
    }
}
