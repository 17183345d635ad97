using LlmPq.Host.Benchmarking;

namespace LlmPq.Tests.Benchmarking;

/// <summary>The figures of a run, computed from request timings made up here.</summary>
public sealed class MetricsTests
{
    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    private static RequestTiming Timing(double arrival, double[] pieces, double? first, double end, long prompt, long output, RequestOutcome outcome, string? error = null) =>
        new(Ms(arrival), [.. pieces.Select(Ms)], first is { } f ? Ms(f) : null, Ms(end), prompt, output, outcome, error);

    [Fact]
    public void Percentiles_are_nearest_rank()
    {
        double[] values = [.. Enumerable.Range(1, 100).Select(i => (double)i).OrderBy(v => (v * 37) % 101)];
        Assert.Equal(1, LoadResult.Percentile(values, 0));
        Assert.Equal(50, LoadResult.Percentile(values, 50));
        Assert.Equal(99, LoadResult.Percentile(values, 99));
        Assert.Equal(100, LoadResult.Percentile(values, 100));
        Assert.Equal(7, LoadResult.Percentile([7], 99));
        Assert.Null(LoadResult.Percentile([], 50));
    }

    [Fact]
    public void The_engine_s_own_scheduling_delays_are_used_when_they_cover_every_answered_request()
    {
        RequestTiming[] timings =
        [
            Timing(0, [100, 110], 100, 120, 8, 2, RequestOutcome.Completed),
            Timing(0, [300, 310], 300, 320, 8, 2, RequestOutcome.Completed),
        ];
        IdlePoint[] idle = [new(8, 50)];
        var run = new LoadRun(timings, 0, TimeSpan.FromSeconds(1));

        LoadResult measured = LoadResult.From(run, idle, [7, 230]);
        LoadResult partial = LoadResult.From(run, idle, [7]);

        Assert.Equal("engine", measured.SchedulingDelaySource);
        Assert.Equal(7, measured.SchedulingDelayP50Ms);
        Assert.Equal(230, measured.SchedulingDelayP99Ms);
        Assert.Equal("ttft-minus-idle", partial.SchedulingDelaySource);
        Assert.Equal(50, partial.SchedulingDelayP50Ms);
        Assert.Equal(250, partial.SchedulingDelayP99Ms);
    }

    [Fact]
    public void Idle_ttft_is_interpolated_between_points_and_held_beyond_them()
    {
        IdlePoint[] points = [new(30, 150), new(10, 50)];
        Assert.Equal(50, LoadResult.IdleTtftMs(points, 5));
        Assert.Equal(50, LoadResult.IdleTtftMs(points, 10));
        Assert.Equal(100, LoadResult.IdleTtftMs(points, 20));
        Assert.Equal(150, LoadResult.IdleTtftMs(points, 40));
        Assert.Equal(0, LoadResult.IdleTtftMs([], 40));
    }

    [Fact]
    public void A_run_is_summarized_by_outcome_with_cut_off_requests_counted_honestly()
    {
        RequestTiming[] timings =
        [
            Timing(0, [100, 110, 130], 100, 140, 10, 3, RequestOutcome.Completed),
            Timing(1000, [1300, 1305], 1300, 1310, 30, 2, RequestOutcome.Completed),
            Timing(2000, [2500], 2500, 3000, 20, 1, RequestOutcome.Cancelled),   // cut off after one token
            Timing(2500, [], null, 3000, 20, 0, RequestOutcome.Cancelled),       // cut off before any
            Timing(0, [], null, 5, 40, 0, RequestOutcome.Failed, "boom"),
        ];
        IdlePoint[] idle = [new(10, 50), new(30, 150)];
        LoadResult r = LoadResult.From(new LoadRun(timings, NotSent: 2, Wall: TimeSpan.FromSeconds(10)), idle);

        Assert.Equal((7, 2, 1, 2, 2), (r.Requests, r.Completed, r.Failed, r.Cancelled, r.NotSent));
        Assert.Equal((3 + 2 + 1) / 10.0, r.ThroughputTokensPerSecond, 9);
        Assert.Equal(2 / 10.0, r.RequestsPerSecond, 9);
        Assert.Equal((10 + 30) / 2.0, r.PromptTokensMean);
        Assert.Equal((3 + 2) / 2.0, r.OutputTokensMean);

        // TTFT of the answered (the unanswered cut-off one at its wait so far, 3000 - 2500): 100, 300, 500, 500.
        Assert.Equal(300, r.TtftP50Ms!.Value, 6);
        Assert.Equal(500, r.TtftP99Ms!.Value, 6);

        // Less the idle TTFT of each prompt length (10: 50, 30: 150, 20: 100 between them): 50, 150, 400, 400.
        Assert.Equal(150, r.SchedulingDelayP50Ms!.Value, 6);
        Assert.Equal(400, r.SchedulingDelayP99Ms!.Value, 6);

        // Gaps 10, 20 and 5: the failed and the token-less add none.
        Assert.Equal(10, r.TbtP50Ms!.Value, 6);
        Assert.Equal(20, r.TbtP99Ms!.Value, 6);
        Assert.Equal(20, r.TbtMaxMs!.Value, 6);
        Assert.Equal(LoadResult.QuantileSteps + 1, r.TbtQuantilesMs.Count);
        Assert.Equal(5, r.TbtQuantilesMs[0], 6);
        Assert.Equal(20, r.TbtQuantilesMs[^1], 6);
        Assert.Equal(r.TbtQuantilesMs.Order(), r.TbtQuantilesMs);

        // End to end, completed only: 140 and 310.
        Assert.Equal(140, r.E2eP50Ms!.Value, 6);
        Assert.Equal(310, r.E2eP99Ms!.Value, 6);
        Assert.Equal(["boom"], r.Errors);
    }

    [Fact]
    public void A_run_without_answers_has_no_latencies_and_without_idle_points_the_delay_is_the_ttft()
    {
        LoadResult none = LoadResult.From(new LoadRun([Timing(0, [], null, 5, 4, 0, RequestOutcome.Failed, "no")], 0, TimeSpan.FromSeconds(1)));
        Assert.Null(none.TtftP50Ms);
        Assert.Null(none.TbtP99Ms);
        Assert.Null(none.SchedulingDelayP50Ms);
        Assert.Empty(none.TbtQuantilesMs);

        LoadResult bare = LoadResult.From(new LoadRun([Timing(10, [40], 40, 50, 4, 1, RequestOutcome.Completed)], 0, TimeSpan.FromSeconds(1)));
        Assert.Equal(bare.TtftP50Ms, bare.SchedulingDelayP50Ms);
    }

    [Fact]
    public void The_slos_need_no_failure_a_completion_tbt_and_delay_within_limits()
    {
        var ok = new LoadResult { Completed = 3, TbtP99Ms = 100, SchedulingDelayP50Ms = 1500 };
        Assert.True(CapacitySearch.Meets(ok, 100, 1500));
        Assert.True(CapacitySearch.Meets(ok with { TbtP99Ms = null }, 100, 1500));   // one-token answers have no gaps
        Assert.False(CapacitySearch.Meets(ok with { TbtP99Ms = 100.5 }, 100, 1500));
        Assert.False(CapacitySearch.Meets(ok with { SchedulingDelayP50Ms = 1501 }, 100, 1500));
        Assert.False(CapacitySearch.Meets(ok with { SchedulingDelayP50Ms = null }, 100, 1500));
        Assert.False(CapacitySearch.Meets(ok with { Failed = 1 }, 100, 1500));
        Assert.False(CapacitySearch.Meets(ok with { Completed = 0 }, 100, 1500));
    }
}
