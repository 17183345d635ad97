using LlmPq.Scheduling;

namespace LlmPq.Tests.Scheduling;

/// <summary>The scheduler's invariants, checked over randomized workloads simulated without a model.</summary>
public sealed class StallFreeSchedulerTests
{
    [Theory]
    [InlineData(1, 64, 1024, 4)]
    [InlineData(2, 32, 256, 8)]     // KV pressure: preemptions happen
    [InlineData(3, 16, 200, 3)]
    [InlineData(4, 128, 4096, 16)]
    [InlineData(5, 8, 96, 6)]       // decodes can fill the whole budget
    public void Randomized_workloads_keep_every_invariant(int seed, int budget, int kvCapacity, int slots)
    {
        var random = new Random(seed);
        var scheduler = new StallFreeScheduler(budget, kvCapacity, slots);
        var targets = new Dictionary<SequenceState, int>();
        var finished = new List<SequenceState>();
        long nextId = 0;
        int preemptions = 0;
        long lastFreshAdmission = 0;

        for (int iteration = 0; iteration < 20_000 && (nextId < 60 || targets.Count > 0); iteration++)
        {
            if (nextId < 60 && random.NextDouble() < 0.3)
            {
                int promptLength = random.Next(1, Math.Min(80, kvCapacity / 2));
                var s = new SequenceState(++nextId, [.. Enumerable.Range(0, promptLength)]);
                targets[s] = random.Next(1, 40);
                scheduler.Enqueue(s);
            }

            var decodingBefore = scheduler.Running.Where(s => s.IsDecoding).ToHashSet();
            BatchPlan? plan = scheduler.Plan();
            if (plan is null)
            {
                Assert.Empty(scheduler.Running);
                Assert.Empty(scheduler.Waiting);
                continue;
            }

            preemptions += plan.Preempted.Count;
            var evicted = plan.Preempted.Select(e => e.Sequence).ToHashSet();

            // Stall-free: every decode that was running and not evicted gets its token this iteration.
            foreach (SequenceState d in decodingBefore.Where(d => !evicted.Contains(d)))
            {
                Assert.Contains(plan.Entries, e => e.Sequence == d && e.Count == 1);
            }

            // The budget holds (decodes alone may use all of it, never more than one token each).
            Assert.True(plan.TokenCount <= Math.Max(budget, plan.DecodeTokens), $"{plan.TokenCount} tokens over a budget of {budget}");
            Assert.True(plan.PrefillTokens == 0 || plan.TokenCount <= budget);
            Assert.Equal(plan.Entries.Count, plan.Entries.Select(e => e.Sequence).Distinct().Count());

            // KV: what resident sequences hold or reserved, plus this iteration's growth, fits the cache.
            Assert.True(scheduler.Running.Count <= slots);
            Assert.True(scheduler.KvTokensReserved + plan.Entries.Count(e => e.IsDecode) <= kvCapacity || scheduler.Running.Count == 1);
            Assert.Equal(scheduler.Running.Count, scheduler.Running.Select(s => s.Slot).Distinct().Count());

            // First come, first served: a fresh admission is always the oldest request not yet admitted.
            foreach (SequenceState a in plan.Admitted.Where(a => a.Preemptions == 0))
            {
                Assert.True(a.Id > lastFreshAdmission, $"request {a.Id} admitted after {lastFreshAdmission}");
                lastFreshAdmission = a.Id;
                Assert.DoesNotContain(scheduler.Waiting, w => w.Id < a.Id && w.Preemptions == 0);
            }

            // Execute the plan as the engine would.
            foreach (BatchEntry entry in plan.Entries)
            {
                bool samples = entry.Samples;
                entry.Sequence.MarkCached(entry.Count);
                if (!samples)
                {
                    continue;
                }

                SequenceState s = entry.Sequence;
                if (s.Generated + 1 >= targets[s] || s.Tokens.Count + 1 >= kvCapacity)
                {
                    scheduler.Remove(s);
                    targets.Remove(s);
                    finished.Add(s);
                }
                else
                {
                    s.Append(7);
                }
            }
        }

        Assert.Equal(60, finished.Count); // none lost, preempted ones included
        Assert.Empty(scheduler.Running);
        Assert.Empty(scheduler.Waiting);
        if (kvCapacity <= 256)
        {
            Assert.True(preemptions > 0, "the workload was meant to put the KV cache under pressure");
        }
    }

    [Fact]
    public void Decodes_go_first_then_running_prefills_then_new_prompts()
    {
        var scheduler = new StallFreeScheduler(tokenBudget: 10, kvCapacity: 1000, slots: 4);
        var a = new SequenceState(1, [1, 2, 3]);
        scheduler.Enqueue(a);
        BatchPlan first = scheduler.Plan()!;
        Assert.Equal([new BatchEntry(a, 3)], first.Entries);
        a.MarkCached(3);
        a.Append(9); // a sampled its first token: it decodes from now on

        var b = new SequenceState(2, [.. Enumerable.Range(0, 20)]);
        var c = new SequenceState(3, [1, 2]);
        scheduler.Enqueue(b);
        scheduler.Enqueue(c);
        BatchPlan second = scheduler.Plan()!;
        Assert.Equal(a, second.Entries[0].Sequence);
        Assert.True(second.Entries[0].IsDecode);
        Assert.Equal(new BatchEntry(b, 9), second.Entries[1]); // b takes the rest of the budget as a chunk
        Assert.Equal(2, second.Entries.Count);               // c waits: the budget is spent
        b.MarkCached(9);
        a.MarkCached(1);
        a.Append(9);

        BatchPlan third = scheduler.Plan()!;
        Assert.Equal([a, b], third.Entries.Select(e => e.Sequence));
        Assert.Equal([1, 9], third.Entries.Select(e => e.Count));
        Assert.False(third.Entries[1].Samples); // b still has 2 prompt tokens after this chunk
        b.MarkCached(9);
        a.MarkCached(1);
        a.Append(9);

        BatchPlan fourth = scheduler.Plan()!;
        Assert.Equal([a, b, c], fourth.Entries.Select(e => e.Sequence));
        Assert.Equal([1, 2, 2], fourth.Entries.Select(e => e.Count));
        Assert.True(fourth.Entries[1].Samples);
        Assert.Equal([c], fourth.Admitted);
    }

    [Fact]
    public void A_request_waits_for_kv_room_and_nobody_overtakes_it()
    {
        var scheduler = new StallFreeScheduler(tokenBudget: 100, kvCapacity: 50, slots: 4);
        var big = new SequenceState(1, [.. Enumerable.Range(0, 30)]);
        scheduler.Enqueue(big);
        scheduler.Plan();
        big.MarkCached(30);
        big.Append(1);

        var tooBig = new SequenceState(2, [.. Enumerable.Range(0, 30)]);
        var small = new SequenceState(3, [1]);
        scheduler.Enqueue(tooBig);
        scheduler.Enqueue(small);
        BatchPlan plan = scheduler.Plan()!;
        Assert.Equal([big], plan.Entries.Select(e => e.Sequence));
        Assert.Equal([tooBig, small], scheduler.Waiting);

        scheduler.Remove(big);
        plan = scheduler.Plan()!;
        Assert.Equal([tooBig, small], plan.Admitted);
    }

    [Fact]
    public void Under_pressure_the_youngest_is_evicted_and_requeued_by_arrival()
    {
        var scheduler = new StallFreeScheduler(tokenBudget: 100, kvCapacity: 24, slots: 4);
        var old = new SequenceState(1, [.. Enumerable.Range(0, 10)]);
        var young = new SequenceState(2, [.. Enumerable.Range(0, 10)]);
        var waiting = new SequenceState(3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        scheduler.Enqueue(old);
        scheduler.Enqueue(young);
        scheduler.Plan();
        foreach (SequenceState s in new[] { old, young })
        {
            s.MarkCached(10);
            s.Append(1);
            s.Append(2); // pretend two tokens were sampled and one fed: 12 tokens each, both decoding
            s.MarkCached(1);
        }

        scheduler.Enqueue(waiting);
        BatchPlan plan = scheduler.Plan()!;
        Eviction eviction = Assert.Single(plan.Preempted);
        Assert.Equal(young, eviction.Sequence);
        Assert.Equal(-1, young.Slot);
        Assert.Equal(0, young.Cached);
        Assert.Equal([young, waiting], scheduler.Waiting);
        Assert.Equal([old], plan.Entries.Select(e => e.Sequence));
    }
}
