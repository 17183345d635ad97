using LlmPq.Runner;
using LlmPq.Stages;
using Microsoft.Extensions.Options;

namespace LlmPq.Tests.Stages;

/// <summary>The watchdog's deadline rule (a pure function of recent iterations), its warm-up, and its options' checks.</summary>
public sealed class IterationDeadlineTests
{
    private static readonly StageWatchdogOptions s_options = new() { DeadlineFloor = TimeSpan.FromSeconds(1), DeadlineCeiling = TimeSpan.FromSeconds(60), DeadlineMultiplier = 4 };

    [Fact]
    public void Without_measured_iterations_the_deadline_is_the_ceiling()
    {
        Assert.Equal(s_options.DeadlineCeiling, IterationDeadline.Compute([], 10, s_options));
    }

    [Fact]
    public void Fast_iterations_give_the_floor()
    {
        IterationSample[] recent = [.. Enumerable.Repeat(new IterationSample(TimeSpan.FromMilliseconds(20), 8), 50)];

        Assert.Equal(s_options.DeadlineFloor, IterationDeadline.Compute(recent, 8, s_options));
    }

    [Fact]
    public void The_deadline_is_the_multiplier_times_the_99th_percentile()
    {
        // 99 iterations of 0.5 s and one of 3 s: the nearest-rank p99 of 100 values is the 99th, 0.5 s; of 200, the 198th.
        IterationSample[] recent = [.. Enumerable.Repeat(new IterationSample(TimeSpan.FromSeconds(0.5), 8), 99), new IterationSample(TimeSpan.FromSeconds(3), 8)];
        IterationSample[] slowTail = [.. recent, .. recent.Select(s => s with { Elapsed = TimeSpan.FromSeconds(2) })];

        Assert.Equal(TimeSpan.FromSeconds(4 * 0.5), IterationDeadline.Compute(recent, 8, s_options));
        Assert.Equal(TimeSpan.FromSeconds(4 * 2), IterationDeadline.Compute(slowTail, 8, s_options));
    }

    [Fact]
    public void An_iteration_larger_than_the_large_ones_seen_scales_the_deadline_by_its_tokens_and_a_smaller_one_does_not_shrink_it()
    {
        // Mostly 1-token decodes, some 16-token batches: the p99 of the tokens is 16, not the median 1.
        IterationSample[] recent = [.. Enumerable.Repeat(new IterationSample(TimeSpan.FromSeconds(0.5), 1), 80), .. Enumerable.Repeat(new IterationSample(TimeSpan.FromSeconds(0.5), 16), 20)];

        Assert.Equal(TimeSpan.FromSeconds(4 * 0.5 * 4), IterationDeadline.Compute(recent, 64, s_options));
        Assert.Equal(TimeSpan.FromSeconds(4 * 0.5), IterationDeadline.Compute(recent, 16, s_options));
        Assert.Equal(TimeSpan.FromSeconds(4 * 0.5), IterationDeadline.Compute(recent, 1, s_options));
    }

    [Fact]
    public void The_ceiling_bounds_the_deadline()
    {
        IterationSample[] recent = [.. Enumerable.Repeat(new IterationSample(TimeSpan.FromSeconds(5), 1), 20)];

        Assert.Equal(s_options.DeadlineCeiling, IterationDeadline.Compute(recent, 256, s_options));
    }

    [Fact]
    public void Warm_up_iterations_run_under_the_ceiling_and_are_not_measured()
    {
        var watch = new IterationWatch(s_options);
        for (int i = 0; i < IterationDeadline.WarmUpIterations; i++)
        {
            watch.Begin(8);
            Assert.Equal(s_options.DeadlineCeiling.TotalSeconds, watch.Report().DeadlineSeconds);
            watch.End(completed: true);
        }

        // A failed decode is not measured either: still no sample, so still the ceiling.
        watch.Begin(8);
        watch.End(completed: false);
        watch.Begin(8);
        Assert.Equal(s_options.DeadlineCeiling.TotalSeconds, watch.Report().DeadlineSeconds);
        watch.End(completed: true);

        // One measured (fast) iteration: the floor.
        watch.Begin(8);
        IterationReport running = watch.Report();
        Assert.Equal(s_options.DeadlineFloor.TotalSeconds, running.DeadlineSeconds);
        Assert.NotNull(running.RunningSeconds);
        Assert.False(running.Overdue);
        watch.End(completed: true);
        Assert.Null(watch.Report().RunningSeconds);
    }

    [Fact]
    public void A_report_is_overdue_only_while_an_iteration_runs_past_its_deadline()
    {
        Assert.True(new IterationReport(2.5, 2, 8).Overdue);
        Assert.False(new IterationReport(1.5, 2, 8).Overdue);
        Assert.False(new IterationReport(null, 2, 0).Overdue);
    }

    [Theory]
    [InlineData(0, 60, 4, "DeadlineFloor must be positive")]
    [InlineData(-1, 60, 4, "DeadlineFloor must be positive")]
    [InlineData(10, 5, 4, "DeadlineCeiling (00:00:05) must be at least DeadlineFloor (00:00:10)")]
    [InlineData(1, 60, 0.5, "DeadlineMultiplier must be a number of at least 1")]
    [InlineData(1, 60, double.NaN, "DeadlineMultiplier must be a number of at least 1")]
    public void Invalid_watchdog_options_fail_validation_with_a_message_naming_the_setting(double floor, double ceiling, double multiplier, string expected)
    {
        var options = new LlmPqOptions { ModelPath = TestModels.Small };
        options.Watchdog.DeadlineFloor = TimeSpan.FromSeconds(floor);
        options.Watchdog.DeadlineCeiling = TimeSpan.FromSeconds(ceiling);
        options.Watchdog.DeadlineMultiplier = multiplier;

        ValidateOptionsResult result = new LlmPqOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.StartsWith("LlmPq:Watchdog:", StringComparison.Ordinal) && f.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void The_default_watchdog_options_are_valid()
    {
        ValidateOptionsResult result = new LlmPqOptionsValidator().Validate(null, new LlmPqOptions { ModelPath = TestModels.Small });

        Assert.False(result.Failed, string.Join("; ", result.Failures ?? []));
    }

    [Theory]
    [InlineData(134, "was killed by signal 6 (SIGABRT")]
    [InlineData(137, "was killed by signal 9 (SIGKILL")]
    [InlineData(1, "exited with code 1;")]
    public void A_runner_exit_names_the_runner_its_code_or_signal_and_what_to_do(int code, string expected)
    {
        string message = LlmPqPipeline.RunnerExit(4242, code, "  line one\n  GGML_ASSERT(x) failed");

        Assert.StartsWith("the runner (the engine's process, pid 4242) ", message, StringComparison.Ordinal);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.Contains("its last output: GGML_ASSERT(x) failed", message, StringComparison.Ordinal);
        Assert.Contains("--verbose", message, StringComparison.Ordinal);
        Assert.DoesNotContain("stage server", message, StringComparison.Ordinal);
    }
}
