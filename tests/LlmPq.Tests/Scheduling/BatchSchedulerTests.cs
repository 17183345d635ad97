using LlmPq.Scheduling;

namespace LlmPq.Tests.Scheduling;

/// <summary>The scheduler's invariants under every policy, checked over randomized workloads simulated without a model.</summary>
public sealed class BatchSchedulerTests
{
    private static readonly (int Seed, int Budget, int KvCapacity, int Slots)[] s_workloads =
    [
        (1, 64, 1024, 4),
        (2, 32, 256, 8),    // KV pressure: preemptions happen
        (3, 16, 200, 3),
        (4, 128, 4096, 16),
        (5, 8, 96, 6),      // decodes can fill the whole budget
    ];

    public static TheoryData<SchedulingPolicy, int, int, int, int, bool> Workloads()
    {
        var data = new TheoryData<SchedulingPolicy, int, int, int, int, bool>();
        foreach (SchedulingPolicy policy in Enum.GetValues<SchedulingPolicy>())
        {
            foreach ((int seed, int budget, int kvCapacity, int slots) in s_workloads)
            {
                data.Add(policy, seed, budget, kvCapacity, slots, false);
                data.Add(policy, seed, budget, kvCapacity, slots, true);
            }
        }

        return data;
    }

    public static TheoryData<SchedulingPolicy> Policies() => [.. Enum.GetValues<SchedulingPolicy>()];

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Randomized_workloads_keep_every_invariant(SchedulingPolicy policy, int seed, int budget, int kvCapacity, int slots, bool prefixReuse)
    {
        var random = new Random(seed);
        int batchLimit = 3 * budget / 2;
        var scheduler = new BatchScheduler(policy, budget, kvCapacity, slots, batchLimit, prefixReuse) { PrefixCopy = prefixReuse, HoldMinimum = 8 };

        // The cells of each slot as llama.cpp would hold them after the plans' trims, evictions and batches.
        List<int>[] cells = [.. Enumerable.Range(0, slots).Select(_ => new List<int>())];
        var targets = new Dictionary<SequenceState, int>();
        var finished = new List<SequenceState>();
        long nextId = 0;
        int preemptions = 0;
        int reused = 0;
        long lastFreshAdmission = 0;
        IterationKind? previous = null;

        for (int iteration = 0; iteration < 20_000 && (nextId < 60 || targets.Count > 0); iteration++)
        {
            if (nextId < 60 && random.NextDouble() < 0.3)
            {
                // Prompts share a prefix of random length with each other, as conversations share a system prompt.
                int promptLength = random.Next(1, Math.Min(80, kvCapacity / 2));
                int shared = random.Next(0, promptLength + 1);
                var s = new SequenceState(++nextId, [.. Enumerable.Range(0, promptLength).Select(t => t < shared ? t : t + (1000 * (int)nextId))]);
                targets[s] = random.Next(1, 40);
                scheduler.Enqueue(s);
            }

            if (random.NextDouble() < 0.05)
            {
                scheduler.TokenBudget = random.Next(1, 2 * budget); // the engine retunes it between iterations
            }

            int tokenBudget = scheduler.TokenBudget;
            var decodingBefore = scheduler.Running.Where(s => s.IsDecoding).ToHashSet();
            var prefillingBefore = scheduler.Running.Where(s => !s.IsDecoding && s.Pending > 0).ToHashSet();
            BatchPlan? plan = scheduler.Plan();
            if (plan is null)
            {
                Assert.Empty(scheduler.Running);
                Assert.Empty(scheduler.Waiting);
                continue;
            }

            preemptions += plan.Preempted.Count;
            var evicted = plan.Preempted.Select(e => e.Sequence).ToHashSet();
            decodingBefore.ExceptWith(evicted);
            prefillingBefore.ExceptWith(evicted);

            // The budget holds (decodes alone may use all of it, never more than one token each); with no decode to
            // protect, the batch limit does.
            int limit = decodingBefore.Count == 0 ? Math.Max(tokenBudget, batchLimit) : tokenBudget;
            Assert.True(plan.TokenCount <= Math.Max(limit, plan.DecodeTokens), $"{plan.TokenCount} tokens over a limit of {limit}");
            Assert.True(plan.PrefillTokens == 0 || plan.TokenCount <= limit);
            if (decodingBefore.Count == 0 && policy != SchedulingPolicy.RequestLevel)
            {
                // Without a decode, only the first prompt may go past the budget.
                Assert.True(plan.Entries.Count == 0 || plan.TokenCount <= Math.Max(tokenBudget, plan.Entries[0].Count), $"{plan.TokenCount} tokens with no decode");
            }

            Assert.Equal(plan.Entries.Count, plan.Entries.Select(e => e.Sequence).Distinct().Count());
            int[] batchSlots = [.. plan.BatchOrder.Select(e => e.Sequence.Slot)];
            Assert.True(batchSlots.Zip(batchSlots.Skip(1)).All(p => p.First < p.Second), $"batch slots {string.Join(",", batchSlots)} do not ascend");
            Assert.All(plan.Entries, e => Assert.True(e.Count > 0 && e.Count <= e.Sequence.Pending));

            switch (plan.Entries.Count > 0 ? policy : default(SchedulingPolicy?))
            {
                case SchedulingPolicy.Sarathi:
                    // Stall-free: every decode that was running and not evicted gets its token this iteration.
                    foreach (SequenceState d in decodingBefore)
                    {
                        Assert.Contains(plan.Entries, e => e.Sequence == d && e.Count == 1);
                    }

                    break;

                case SchedulingPolicy.PrefillFirst:
                    Assert.NotEqual(IterationKind.Hybrid, plan.Kind);
                    if (plan.Kind == IterationKind.Decode)
                    {
                        // Decodes run only when no prompt could: none half done, and the queue's head cannot be admitted.
                        Assert.Empty(prefillingBefore);
                        Assert.True(
                            scheduler.Waiting.Count == 0 || scheduler.Running.Count == slots || scheduler.KvTokensReserved + scheduler.Decodes + scheduler.Waiting[0].Tokens.Count + 1 > kvCapacity,
                            "a decode iteration ran while a prompt could have been admitted");
                        Assert.Equal(decodingBefore.Count, plan.Entries.Count);
                    }

                    break;

                case SchedulingPolicy.RequestLevel:
                    Assert.NotEqual(IterationKind.Hybrid, plan.Kind);
                    Assert.True(plan.Admitted.Count == 0 || decodingBefore.Count == 0, "a prompt was admitted while decodes ran");
                    break;

                case SchedulingPolicy.ChunkedOnly:
                    // Prompt-chunk and decode iterations alternate whenever both have work.
                    Assert.NotEqual(IterationKind.Hybrid, plan.Kind);
                    if (previous == IterationKind.Decode && prefillingBefore.Count > 0)
                    {
                        Assert.Equal(IterationKind.Prefill, plan.Kind);
                    }
                    else if (previous == IterationKind.Prefill && decodingBefore.Count > 0)
                    {
                        Assert.Equal(IterationKind.Decode, plan.Kind);
                    }

                    break;
            }

            if (plan.Entries.Count > 0)
            {
                previous = plan.Kind;
            }

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

            // Execute the plan as the engine would: reused cells must be exactly the sequence's leading tokens.
            foreach (Eviction eviction in plan.Preempted)
            {
                cells[eviction.Slot].Clear();
            }

            foreach (SlotTrim trim in plan.Trims)
            {
                Assert.True(prefixReuse);
                Assert.InRange(trim.From, 0, cells[trim.Slot].Count - 1);
                cells[trim.Slot].RemoveRange(trim.From, cells[trim.Slot].Count - trim.From);
            }

            foreach (SlotCopy copy in plan.Copies)
            {
                Assert.Empty(cells[copy.Slot]);
                Assert.InRange(copy.Count, 1, cells[copy.Source].Count);
                cells[copy.Slot].AddRange(cells[copy.Source].Take(copy.Count));
            }

            Assert.All(plan.Admitted, a => Assert.True(a.Reused < a.Tokens.Count && (prefixReuse || a.Reused == 0)));
            reused += plan.Admitted.Sum(a => a.Reused);
            foreach (BatchEntry entry in plan.Entries)
            {
                SequenceState s = entry.Sequence;
                Assert.Equal(s.Tokens.Take(s.Cached), cells[s.Slot]);
                cells[s.Slot].AddRange(s.Tokens.Skip(s.Cached).Take(entry.Count));
            }

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
                    int slot = s.Slot;
                    if (!scheduler.Remove(s, keepCells: true))
                    {
                        cells[slot].Clear();
                    }

                    targets.Remove(s);
                    finished.Add(s);
                }
                else
                {
                    s.Append(7);
                }
            }

            Assert.Equal(scheduler.KvTokensCached, cells.Sum(c => c.Count));
        }

        Assert.Equal(60, finished.Count); // none lost, preempted ones included
        Assert.Equal(prefixReuse, reused > 0);
        Assert.Empty(scheduler.Running);
        Assert.Empty(scheduler.Waiting);
        if (kvCapacity <= 256)
        {
            Assert.True(preemptions > 0, "the workload was meant to put the KV cache under pressure");
        }
    }

    [Fact]
    public void Sarathi_puts_decodes_first_then_running_prefills_then_new_prompts()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 10, kvCapacity: 1000, slots: 4);
        var a = new SequenceState(1, [1, 2, 3]);
        scheduler.Enqueue(a);
        BatchPlan first = scheduler.Plan()!;
        Assert.Equal([new BatchEntry(a, 3)], first.Entries);
        Run(first);

        var b = new SequenceState(2, [.. Enumerable.Range(0, 20)]);
        var c = new SequenceState(3, [1, 2]);
        scheduler.Enqueue(b);
        scheduler.Enqueue(c);
        BatchPlan second = scheduler.Plan()!;
        Assert.Equal(a, second.Entries[0].Sequence);
        Assert.True(second.Entries[0].IsDecode);
        Assert.Equal(new BatchEntry(b, 9), second.Entries[1]); // b takes the rest of the budget as a chunk
        Assert.Equal(2, second.Entries.Count);               // c waits: the budget is spent
        Assert.Equal(IterationKind.Hybrid, second.Kind);
        Run(second);

        BatchPlan third = scheduler.Plan()!;
        Assert.Equal([a, b], third.Entries.Select(e => e.Sequence));
        Assert.Equal([1, 9], third.Entries.Select(e => e.Count));
        Assert.False(third.Entries[1].Samples); // b still has 2 prompt tokens after this chunk
        Run(third);

        BatchPlan fourth = scheduler.Plan()!;
        Assert.Equal([a, b, c], fourth.Entries.Select(e => e.Sequence));
        Assert.Equal([1, 2, 2], fourth.Entries.Select(e => e.Count));
        Assert.True(fourth.Entries[1].Samples);
        Assert.Equal([c], fourth.Admitted);
    }

    [Fact]
    public void Prefill_first_runs_a_prompt_over_the_budget_in_prompt_only_chunks_before_any_decode()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.PrefillFirst, tokenBudget: 10, kvCapacity: 1000, slots: 4);
        var a = new SequenceState(1, [1, 2, 3]);
        scheduler.Enqueue(a);
        Run(scheduler.Plan()!);

        var b = new SequenceState(2, [.. Enumerable.Range(0, 25)]);
        var c = new SequenceState(3, [1, 2, 3, 4, 5, 6, 7, 8]);
        scheduler.Enqueue(b);
        scheduler.Enqueue(c);
        var iterations = new List<string>();
        while (!c.IsDecoding)
        {
            BatchPlan plan = scheduler.Plan()!;
            Assert.Equal(IterationKind.Prefill, plan.Kind);
            iterations.Add(string.Join(' ', plan.Entries.Select(e => $"{e.Sequence.Id}:{e.Count}")));
            Run(plan);
        }

        // b (25 tokens) takes three budget-sized iterations; c (8) does not fit whole behind b's last 5 and gets its
        // own. Meanwhile a's decode waits: its sampled token is not fed yet.
        Assert.Equal(["2:10", "2:10", "2:5", "3:8"], iterations);
        Assert.Equal(1, a.Pending);
        Assert.Equal(3, a.Cached);

        BatchPlan decodes = scheduler.Plan()!;
        Assert.Equal(IterationKind.Decode, decodes.Kind);
        Assert.Equal([a, b, c], decodes.Entries.Select(e => e.Sequence));
    }

    [Fact]
    public void Request_level_admits_a_whole_batch_and_no_more_until_it_is_done()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.RequestLevel, tokenBudget: 4, kvCapacity: 1000, slots: 4);
        var a = new SequenceState(1, [1, 2, 3]);
        var b = new SequenceState(2, [1, 2]);
        scheduler.Enqueue(a);
        scheduler.Enqueue(b);
        BatchPlan first = scheduler.Plan()!;
        Assert.Equal([a, b], first.Admitted); // both join the batch although only one token of b fits the budget
        Assert.Equal([new BatchEntry(a, 3), new BatchEntry(b, 1)], first.Entries);
        Run(first);

        var late = new SequenceState(3, [1]);
        scheduler.Enqueue(late);
        BatchPlan second = scheduler.Plan()!;
        Assert.Empty(second.Admitted);
        Assert.Equal([new BatchEntry(b, 1)], second.Entries); // the batch's prefill ends before it decodes
        Run(second);

        BatchPlan third = scheduler.Plan()!;
        Assert.Empty(third.Admitted);
        Assert.Equal([a, b], third.Entries.Select(e => e.Sequence));
        Run(third);

        scheduler.Remove(a); // one finishes; the other still decodes, so the queue still waits
        BatchPlan fourth = scheduler.Plan()!;
        Assert.Empty(fourth.Admitted);
        Assert.Equal([b], fourth.Entries.Select(e => e.Sequence));
        Run(fourth);

        scheduler.Remove(b);
        Assert.Equal([late], scheduler.Plan()!.Admitted);
    }

    [Fact]
    public void Chunked_only_alternates_prompt_chunks_and_decodes()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.ChunkedOnly, tokenBudget: 4, kvCapacity: 1000, slots: 4);
        var a = new SequenceState(1, [1, 2]);
        scheduler.Enqueue(a);
        Run(scheduler.Plan()!);
        var b = new SequenceState(2, [.. Enumerable.Range(0, 10)]);
        scheduler.Enqueue(b);

        var kinds = new List<IterationKind>();
        for (int i = 0; i < 6; i++)
        {
            BatchPlan plan = scheduler.Plan()!;
            kinds.Add(plan.Kind);
            Assert.All(plan.Entries, e => Assert.True(e.Count <= 4));
            Run(plan);
        }

        // b's 10 tokens take three chunks of the budget, with one of a's decodes after each.
        Assert.Equal([IterationKind.Decode, IterationKind.Prefill, IterationKind.Decode, IterationKind.Prefill, IterationKind.Decode, IterationKind.Prefill], kinds);
        Assert.True(b.IsDecoding);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void A_request_waits_for_kv_room_and_nobody_overtakes_it(SchedulingPolicy policy)
    {
        var scheduler = new BatchScheduler(policy, tokenBudget: 100, kvCapacity: 50, slots: 4);
        var big = new SequenceState(1, [.. Enumerable.Range(0, 30)]);
        scheduler.Enqueue(big);
        Run(scheduler.Plan()!);

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

    [Theory]
    [MemberData(nameof(Policies))]
    public void Under_pressure_the_youngest_is_evicted_and_requeued_by_arrival(SchedulingPolicy policy)
    {
        var scheduler = new BatchScheduler(policy, tokenBudget: 100, kvCapacity: 24, slots: 4);
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

    [Theory]
    [MemberData(nameof(Policies))]
    public void With_no_decode_running_a_prompt_is_prefilled_whole_up_to_the_batch_limit(SchedulingPolicy policy)
    {
        var scheduler = new BatchScheduler(policy, tokenBudget: 10, kvCapacity: 1000, slots: 4, batchLimit: 32);
        var a = new SequenceState(1, [.. Enumerable.Range(0, 25)]);
        scheduler.Enqueue(a);

        // One iteration, where the budget of 10 would have taken three.
        BatchPlan first = scheduler.Plan()!;
        Assert.Equal([new BatchEntry(a, 25)], first.Entries);
        Run(first);

        var b = new SequenceState(2, [.. Enumerable.Range(0, 50)]);
        scheduler.Remove(a);
        scheduler.Enqueue(b);
        Assert.Equal([new BatchEntry(b, 32)], scheduler.Plan()!.Entries);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void With_no_decode_running_the_first_prompt_goes_whole_and_the_others_share_the_budget_unless_the_batch_is_filled(bool fill)
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 10, kvCapacity: 1000, slots: 4, batchLimit: 32) { FillBatchWhenIdle = fill };
        int[] lengths = [6, 8, 8];
        SequenceState[] burst = [.. lengths.Select((n, i) => new SequenceState(i + 1, [.. Enumerable.Range(0, n)]))];
        foreach (SequenceState s in burst)
        {
            scheduler.Enqueue(s);
        }

        // One device: the second prompt's first chunk fills the budget, so the first samples after 10 tokens, not 22.
        BatchPlan plan = scheduler.Plan()!;
        Assert.Equal(fill ? [6, 8, 8] : [6, 4], plan.Entries.Select(e => e.Count));

        var scheduler2 = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 10, kvCapacity: 1000, slots: 4, batchLimit: 32) { FillBatchWhenIdle = fill };
        var longFirst = new SequenceState(10, [.. Enumerable.Range(0, 25)]);
        scheduler2.Enqueue(longFirst);
        scheduler2.Enqueue(new SequenceState(11, [1, 2, 3]));
        Assert.Equal(fill ? [25, 3] : [25], scheduler2.Plan()!.Entries.Select(e => e.Count));
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void With_a_decode_running_the_budget_holds(SchedulingPolicy policy)
    {
        var scheduler = new BatchScheduler(policy, tokenBudget: 10, kvCapacity: 1000, slots: 4, batchLimit: 32);
        var a = new SequenceState(1, [1, 2, 3]);
        scheduler.Enqueue(a);
        Run(scheduler.Plan()!);
        scheduler.Enqueue(new SequenceState(2, [.. Enumerable.Range(0, 25)]));

        for (int i = 0; i < 4; i++)
        {
            Assert.True(a.IsDecoding);
            BatchPlan plan = scheduler.Plan()!;
            Assert.True(plan.TokenCount <= 10, $"{policy}: {plan.TokenCount} tokens while a decode runs");
            Run(plan);
        }
    }

    [Fact]
    public void A_new_request_reuses_the_longest_cached_prefix_among_the_idle_slots_and_computes_the_rest()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 4, prefixReuse: true);
        int[] system = [.. Enumerable.Range(100, 8)];
        int[] slots = FinishTogether(scheduler, 1, [.. system, 1, 2, 3], [.. system, 1, 2, 3, 4, 5, 6], [7, 7, 7]);
        Assert.Equal(12 + 15 + 4, scheduler.IdleTokens); // each prompt and its first sampled token, fed back

        // A follow-up of the second conversation whose fifth message token changed: the rest is recomputed.
        var next = new SequenceState(4, [.. system, 1, 2, 3, 4, 99, 6, 8]);
        scheduler.Enqueue(next);
        BatchPlan plan = scheduler.Plan()!;

        Assert.Equal([next], plan.Admitted);
        Assert.Equal(slots[1], next.Slot);
        Assert.Equal(12, next.Reused);
        Assert.Equal([new BatchEntry(next, 3)], plan.Entries);
        Assert.Equal(new SlotTrim(slots[1], 12, next), Assert.Single(plan.Trims));
        Assert.Equal(12 + 4, scheduler.IdleTokens);
    }

    [Fact]
    public void The_same_prompt_again_reuses_all_but_its_last_token()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 2, prefixReuse: true);
        int[] prompt = [.. Enumerable.Range(0, 20)];
        Finish(scheduler, 1, prompt);

        var again = new SequenceState(2, prompt);
        scheduler.Enqueue(again);
        BatchPlan plan = scheduler.Plan()!;

        Assert.Equal(19, again.Reused);
        Assert.Equal([new BatchEntry(again, 1)], plan.Entries);
        Assert.True(plan.Entries[0].Samples);
    }

    [Fact]
    public void A_request_that_opts_out_or_a_scheduler_without_reuse_computes_every_token()
    {
        int[] prompt = [.. Enumerable.Range(0, 20)];
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 2, prefixReuse: true);
        Finish(scheduler, 1, prompt);
        var optedOut = new SequenceState(2, prompt) { ReusesPrefix = false };
        scheduler.Enqueue(optedOut);
        Assert.Equal([new BatchEntry(optedOut, 20)], scheduler.Plan()!.Entries);

        var off = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 2);
        var first = new SequenceState(1, prompt);
        off.Enqueue(first);
        Run(off.Plan()!);
        Assert.False(off.Remove(first, keepCells: true));
        Assert.Equal(0, off.IdleTokens);
        var second = new SequenceState(2, prompt);
        off.Enqueue(second);
        BatchPlan plan = off.Plan()!;
        Assert.Empty(plan.Trims);
        Assert.Equal([new BatchEntry(second, 20)], plan.Entries);
    }

    [Fact]
    public void A_request_sharing_only_a_few_tokens_takes_an_empty_slot_and_the_cache_stays()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 2, prefixReuse: true);
        int cached = Finish(scheduler, 1, [.. Enumerable.Range(0, 20)]);

        // One shared token (a BOS) of twenty is under a tenth of the prompt.
        var other = new SequenceState(2, [0, .. Enumerable.Range(100, 19)]);
        scheduler.Enqueue(other);
        BatchPlan plan = scheduler.Plan()!;

        Assert.NotEqual(cached, other.Slot);
        Assert.Empty(plan.Trims);
        Assert.Equal(0, other.Reused);
        Assert.Equal(21, scheduler.IdleTokens);
    }

    [Fact]
    public void With_shared_cells_a_new_request_shares_the_prefix_a_running_sequence_holds()
    {
        int[] system = [.. Enumerable.Range(100, 16)];
        foreach (bool copy in new[] { true, false })
        {
            var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 3, prefixReuse: true) { PrefixCopy = copy };
            var running = new SequenceState(1, [.. system, 1, 2]);
            scheduler.Enqueue(running);
            Run(scheduler.Plan()!);

            var next = new SequenceState(2, [.. system, 3, 4]);
            scheduler.Enqueue(next);
            BatchPlan plan = scheduler.Plan()!;

            Assert.Equal(copy ? [new SlotCopy(running.Slot, next.Slot, 16)] : [], plan.Copies);
            Assert.Equal(copy ? 16 : 0, next.Reused);
            Assert.Contains(new BatchEntry(next, copy ? 2 : 18), plan.Entries);
            Assert.Empty(plan.Trims);
        }
    }

    [Fact]
    public void A_request_waits_while_a_running_sequence_prefills_the_prefix_it_shares_then_copies_it()
    {
        const int Shared = 80;
        var other = new SequenceState(3, [.. Enumerable.Range(500, 20)]);
        (BatchScheduler scheduler, SequenceState leader, SequenceState follower) = SharedPrefix(Shared, tokenBudget: 64, slots: 4, copy: true, other);

        // The follower waits, and the queue with it, while the leader's chunks reach the end of the shared prefix
        // (also in the second iteration, which has room for it and could copy 64 of the 80 tokens already).
        do
        {
            Run(scheduler.Plan()!);
            Assert.Equal([leader], scheduler.Running);
        }
        while (leader.Cached < Shared);

        BatchPlan plan = scheduler.Plan()!;
        Assert.Equal([follower, other], plan.Admitted);
        Assert.Equal(new SlotCopy(leader.Slot, follower.Slot, Shared), Assert.Single(plan.Copies));
        Assert.Equal(Shared, follower.Reused);
        Assert.Contains(new BatchEntry(follower, 2), plan.Entries);
    }

    [Fact]
    public void A_waiting_request_computes_the_prefix_itself_when_the_sequence_prefilling_it_leaves()
    {
        (BatchScheduler scheduler, SequenceState leader, SequenceState follower) = SharedPrefix(80, tokenBudget: 16, slots: 2, copy: true);
        Run(scheduler.Plan()!);
        Assert.Equal([follower], scheduler.Waiting);

        // Cancelled or failed: its cells are removed, so the follower no longer waits for them.
        Assert.False(scheduler.Remove(leader));

        BatchPlan plan = scheduler.Plan()!;
        Assert.Contains(follower, plan.Admitted);
        Assert.Equal(0, follower.Reused);
        Assert.Empty(plan.Copies);
    }

    [Fact]
    public void A_request_cancelled_while_it_waits_for_a_prefix_lets_the_queue_behind_it_go()
    {
        var other = new SequenceState(3, [.. Enumerable.Range(500, 20)]);
        (BatchScheduler scheduler, SequenceState leader, SequenceState follower) = SharedPrefix(80, tokenBudget: 50, slots: 4, copy: true, other);
        Run(scheduler.Plan()!);
        Assert.Equal([follower, other], scheduler.Waiting); // the leader has 50 of the 80 shared tokens

        Assert.False(scheduler.Remove(follower));
        BatchPlan plan = scheduler.Plan()!;

        Assert.Equal([other], plan.Admitted);
        Assert.Equal([leader, other], scheduler.Running);
        Assert.False(follower.IsResident);
    }

    [Theory]
    [InlineData(false, 80)]
    [InlineData(true, 40)]
    public void Nobody_waits_for_a_prefix_without_copies_or_for_one_too_short(bool copy, int shared)
    {
        (BatchScheduler scheduler, SequenceState leader, SequenceState follower) = SharedPrefix(shared, tokenBudget: 100, slots: 4, copy);

        // Both start in the same iteration, each computing the prefix.
        Assert.Equal([leader, follower], scheduler.Plan()!.Admitted);
    }

    /// <summary>A leader and a follower whose prompts share their first <paramref name="shared"/> tokens, queued in that order before <paramref name="behind"/>.</summary>
    private static (BatchScheduler Scheduler, SequenceState Leader, SequenceState Follower) SharedPrefix(int shared, int tokenBudget, int slots, bool copy, params SequenceState[] behind)
    {
        int[] system = [.. Enumerable.Range(100, shared)];
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget, kvCapacity: 1000, slots, prefixReuse: true) { PrefixCopy = copy };
        var leader = new SequenceState(1, [.. system, 1, 2]);
        var follower = new SequenceState(2, [.. system, 3, 4]);
        foreach (SequenceState sequence in (SequenceState[])[leader, follower, .. behind])
        {
            scheduler.Enqueue(sequence);
        }

        return (scheduler, leader, follower);
    }

    [Fact]
    public void Idle_caches_make_room_least_recently_used_first()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 30, slots: 4, prefixReuse: true);
        int older = Finish(scheduler, 1, [.. Enumerable.Range(0, 9)]);
        int newer = Finish(scheduler, 2, [.. Enumerable.Range(50, 9)]);
        Assert.Equal(20, scheduler.IdleTokens);

        // 15 new tokens do not fit beside both caches (20 + 15 + 1 > 30): the older cache goes, the newer stays.
        var big = new SequenceState(3, [.. Enumerable.Range(200, 15)]);
        scheduler.Enqueue(big);
        BatchPlan plan = scheduler.Plan()!;

        Assert.Equal([big], plan.Admitted);
        Assert.Equal(new SlotTrim(older, 0, null), Assert.Single(plan.Trims));
        Assert.Equal(10, scheduler.IdleTokens);
        Run(plan);

        // The newer cache still serves its prefix.
        var follow = new SequenceState(4, [.. Enumerable.Range(50, 9), 1]);
        scheduler.Enqueue(follow);
        Run(scheduler.Plan()!);
        Assert.Equal(newer, follow.Slot);
        Assert.Equal(9, follow.Reused);
    }

    [Fact]
    public void Without_an_empty_slot_a_request_takes_the_least_recently_used_cache()
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots: 2, prefixReuse: true);
        Finish(scheduler, 1, [1, 2, 3]);
        Finish(scheduler, 2, [4, 5, 6]);
        int third = Finish(scheduler, 3, [7, 8, 9]); // takes the older slot: the first cache is gone
        Assert.Equal(8, scheduler.IdleTokens);

        var unrelated = new SequenceState(4, [10, 11]);
        scheduler.Enqueue(unrelated);
        BatchPlan plan = scheduler.Plan()!;

        // The second conversation's cache is now the least recently used; the third's stays.
        Assert.Equal(new SlotTrim(unrelated.Slot, 0, unrelated), Assert.Single(plan.Trims));
        Assert.Equal(4, scheduler.IdleTokens);
        Assert.NotEqual(third, unrelated.Slot);
    }

    [Fact]
    public void The_batch_takes_the_plan_in_slot_order_whatever_the_admission_order()
    {
        (BatchScheduler scheduler, SequenceState[] first) = ThreeRunning(slots: 3);
        Assert.Equal([0, 1, 2], first.Select(s => s.Slot));
        SequenceState late = AfterLeaving(scheduler, first[0]);

        // Admission order puts the late request last; the batch puts it first, in the slot it took.
        BatchPlan plan = scheduler.Plan()!;
        Assert.Equal(IterationKind.Decode, plan.Kind);
        Assert.Equal([first[1], first[2], late], plan.Entries.Select(e => e.Sequence));
        Assert.Equal([late, first[1], first[2]], plan.BatchOrder.Select(e => e.Sequence));
        Assert.Equal([0, 1, 2], plan.BatchOrder.Select(e => e.Sequence.Slot));
    }

    [Fact]
    public void A_request_with_nothing_to_reuse_takes_the_free_slot_that_closes_a_gap_between_running_ones()
    {
        (BatchScheduler scheduler, SequenceState[] running) = ThreeRunning(slots: 4);

        // Slot 3 has waited longest, but slot 1 sits between two running slots: the decodes stay one run, 0 to 2.
        Assert.Equal(1, AfterLeaving(scheduler, running[1]).Slot);
    }

    /// <summary>Three short requests admitted and prefilled together, in slots 0 to 2 of <paramref name="slots"/>.</summary>
    private static (BatchScheduler Scheduler, SequenceState[] Running) ThreeRunning(int slots)
    {
        var scheduler = new BatchScheduler(SchedulingPolicy.Sarathi, tokenBudget: 100, kvCapacity: 1000, slots);
        SequenceState[] running = [.. Enumerable.Range(1, 3).Select(i => new SequenceState(i, [i, i + 10]))];
        foreach (SequenceState s in running)
        {
            scheduler.Enqueue(s);
        }

        Run(scheduler.Plan()!);
        return (scheduler, running);
    }

    /// <summary>Ends <paramref name="leaving"/> without keeping its cells, then admits and prefills a new request; returns it.</summary>
    private static SequenceState AfterLeaving(BatchScheduler scheduler, SequenceState leaving)
    {
        scheduler.Remove(leaving, keepCells: false);
        var next = new SequenceState(4, [4, 14]);
        scheduler.Enqueue(next);
        Run(scheduler.Plan()!);
        return next;
    }

    /// <summary>Runs a request alone to its first sampled token and one decode, then finishes it leaving its cells; returns its slot.</summary>
    private static int Finish(BatchScheduler scheduler, long id, int[] prompt) => FinishTogether(scheduler, id, prompt)[0];

    /// <summary>Runs requests together (each in its own slot) as <see cref="Finish"/> does; returns their slots.</summary>
    private static int[] FinishTogether(BatchScheduler scheduler, long firstId, params int[][] prompts)
    {
        SequenceState[] sequences = [.. prompts.Select((p, i) => new SequenceState(firstId + i, p))];
        foreach (SequenceState s in sequences)
        {
            scheduler.Enqueue(s);
        }

        Run(scheduler.Plan()!);
        Run(scheduler.Plan()!);
        int[] slots = [.. sequences.Select(s => s.Slot)];
        Assert.All(sequences, s => Assert.True(scheduler.Remove(s, keepCells: true)));
        return slots;
    }

    /// <summary>Executes a plan as the engine would, every sampling sequence drawing token 9.</summary>
    private static void Run(BatchPlan plan)
    {
        foreach (BatchEntry entry in plan.Entries)
        {
            bool samples = entry.Samples;
            entry.Sequence.MarkCached(entry.Count);
            if (samples)
            {
                entry.Sequence.Append(9);
            }
        }
    }
}
