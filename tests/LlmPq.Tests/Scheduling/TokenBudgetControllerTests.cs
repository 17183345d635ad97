using LlmPq.Scheduling;
using Microsoft.Extensions.Options;

namespace LlmPq.Tests.Scheduling;

/// <summary>The token budget chosen from a TBT target, on synthetic iteration costs.</summary>
public sealed class TokenBudgetControllerTests
{
    private static readonly IterationCost s_cost = new(FixedSeconds: 0.004, SecondsPerToken: 0.0002, SecondsPerDecode: 0.0005);

    [Theory]
    [InlineData(1, 0.020, 256, 0)]
    [InlineData(2, 0.050, 1000, 12)]
    [InlineData(3, 0.012, 512, 40)]
    [InlineData(4, 0.300, 300, 3)]
    public void A_linear_cost_is_fitted_exactly_and_gives_the_largest_budget_that_fits(int seed, double targetSeconds, int maxBudget, int decodes)
    {
        var random = new Random(seed);
        var controller = new TokenBudgetController(TimeSpan.FromSeconds(targetSeconds), maxBudget);
        for (int i = 0; i < 200; i++)
        {
            int tokens = random.Next(1, maxBudget + 1);
            int d = random.Next(0, Math.Min(tokens, 64) + 1);
            controller.Observe(tokens, d, Time(s_cost, tokens, d));
        }

        IterationCost fit = Assert.NotNull(controller.Fit());
        Assert.Equal(s_cost.FixedSeconds, fit.FixedSeconds, 9);
        Assert.Equal(s_cost.SecondsPerToken, fit.SecondsPerToken, 12);
        Assert.Equal(s_cost.SecondsPerDecode, fit.SecondsPerDecode, 12);

        int budget = Assert.NotNull(controller.Choose(decodes, out TimeSpan predicted));
        Assert.Equal(ExpectedBudget(s_cost, targetSeconds, maxBudget, decodes), budget);
        Assert.Equal(s_cost.Predict(Math.Max(budget, decodes), decodes), predicted.TotalSeconds, 6);
    }

    [Theory]
    [InlineData(256, 0.0001)] // nothing fits: the smallest budget
    [InlineData(256, 10)]     // everything fits: the largest
    [InlineData(300, 10)]     // the largest multiple of 32 under a max that is not one
    [InlineData(32, 10)]
    [InlineData(4096, 0.3)]
    public void The_budget_is_a_multiple_of_32_within_the_bounds(int maxBudget, double targetSeconds)
    {
        var controller = new TokenBudgetController(TimeSpan.FromSeconds(targetSeconds), maxBudget);
        controller.Seed(s_cost);
        foreach (int decodes in new[] { 0, 1, 31, 100 })
        {
            int budget = Assert.NotNull(controller.Choose(decodes, out _));
            Assert.Equal(0, budget % TokenBudgetController.Quantum);
            Assert.InRange(budget, TokenBudgetController.Quantum, maxBudget);
            Assert.Equal(ExpectedBudget(s_cost, targetSeconds, maxBudget, decodes), budget);
        }
    }

    [Fact]
    public void More_running_decodes_leave_a_smaller_budget()
    {
        var controller = new TokenBudgetController(TimeSpan.FromMilliseconds(40), 1024);
        controller.Seed(s_cost);
        int[] decodes = [0, 8, 16, 32, 48];
        int[] budgets = [.. decodes.Select(d => controller.Choose(d, out _)!.Value)];
        Assert.Equal(budgets.OrderDescending(), budgets);
        Assert.True(budgets[0] > budgets[^1], string.Join(", ", budgets));
    }

    [Fact]
    public void Without_enough_data_there_is_no_budget_and_the_caller_keeps_its_own()
    {
        var controller = new TokenBudgetController(TimeSpan.FromMilliseconds(20), 256);
        Assert.Null(controller.Fit());
        Assert.Null(controller.Choose(0, out _));

        // A few iterations are not trusted yet.
        for (int tokens = 40; tokens < 45; tokens++)
        {
            controller.Observe(tokens, 1, Time(s_cost, tokens, 1));
        }

        Assert.Null(controller.Choose(1, out _));

        // Many iterations of one size cannot tell how time grows with tokens.
        var sameSize = new TokenBudgetController(TimeSpan.FromMilliseconds(20), 256);
        for (int i = 0; i < 100; i++)
        {
            sameSize.Observe(64, 4, Time(s_cost, 64, 4));
        }

        Assert.Null(sameSize.Fit());
    }

    [Fact]
    public void Decodes_that_never_vary_apart_from_tokens_cost_nothing_extra()
    {
        // Only prompt iterations: the per-decode cost cannot be told, the per-token cost can.
        var controller = new TokenBudgetController(TimeSpan.FromMilliseconds(20), 256);
        var random = new Random(5);
        for (int i = 0; i < 50; i++)
        {
            int tokens = random.Next(1, 257);
            controller.Observe(tokens, 0, Time(s_cost, tokens, 0));
        }

        IterationCost fit = Assert.NotNull(controller.Fit());
        Assert.Equal(0, fit.SecondsPerDecode);
        Assert.Equal(s_cost.SecondsPerToken, fit.SecondsPerToken, 12);
        Assert.Equal(ExpectedBudget(s_cost with { SecondsPerDecode = 0 }, 0.020, 256, 0), controller.Choose(0, out _));
    }

    [Fact]
    public void A_seed_answers_at_once_and_measurements_take_over()
    {
        var measured = new IterationCost(0.010, 0.0004, 0.001);
        var controller = new TokenBudgetController(TimeSpan.FromMilliseconds(60), 512);
        controller.Seed(s_cost);
        Assert.Equal(ExpectedBudget(s_cost, 0.060, 512, 4), controller.Choose(4, out _));

        var random = new Random(6);
        for (int i = 0; i < 1000; i++)
        {
            int tokens = random.Next(1, 513);
            int decodes = random.Next(0, Math.Min(tokens, 16) + 1);
            controller.Observe(tokens, decodes, Time(measured, tokens, decodes));
        }

        IterationCost fit = Assert.NotNull(controller.Fit());
        Assert.Equal(measured.SecondsPerToken, fit.SecondsPerToken, 8);
        Assert.Equal(ExpectedBudget(measured, 0.060, 512, 4), controller.Choose(4, out _));
        Assert.NotEqual(ExpectedBudget(s_cost, 0.060, 512, 4), ExpectedBudget(measured, 0.060, 512, 4));
    }

    [Theory]
    [InlineData(-1, 256, true)]
    [InlineData(0, 256, true)]
    [InlineData(50, 16, true)]
    [InlineData(50, 32, false)]
    [InlineData(null, 16, false)]
    public void The_tbt_target_is_validated(int? milliseconds, int tokenBudget, bool fails)
    {
        var options = new LlmPqOptions { ModelPath = "missing.gguf", TokenBudget = tokenBudget };
        options.TbtTarget = milliseconds is { } ms ? TimeSpan.FromMilliseconds(ms) : null;
        ValidateOptionsResult result = new LlmPqOptionsValidator().Validate(null, options);
        Assert.Equal(fails, result.Failures!.Any(f => f.Contains("TbtTarget", StringComparison.Ordinal)));
    }

    /// <summary>An iteration's time under a cost, in whole ticks (<see cref="TimeSpan.FromSeconds(double)"/> truncates).</summary>
    private static TimeSpan Time(IterationCost cost, int tokens, int decodes) => TimeSpan.FromTicks((long)Math.Round(cost.Predict(tokens, decodes) * TimeSpan.TicksPerSecond));

    /// <summary>The definition, by brute force: the largest multiple of 32 up to the max whose time fits, else 32.</summary>
    private static int ExpectedBudget(IterationCost cost, double targetSeconds, int maxBudget, int decodes)
    {
        int best = TokenBudgetController.Quantum;
        for (int n = TokenBudgetController.Quantum; n <= maxBudget; n += TokenBudgetController.Quantum)
        {
            if (cost.Predict(Math.Max(n, decodes), decodes) <= targetSeconds)
            {
                best = n;
            }
        }

        return best;
    }
}
