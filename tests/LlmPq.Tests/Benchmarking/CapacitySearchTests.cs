using LlmPq.Host.Benchmarking;

namespace LlmPq.Tests.Benchmarking;

/// <summary>The capacity search against a made-up system that meets its SLOs up to a threshold rate and not beyond.</summary>
public sealed class CapacitySearchTests
{
    [Theory]
    [InlineData(7.3, 1.0, 0.05)]      // above the start: doubling, then bisecting
    [InlineData(0.37, 4.0, 0.05)]     // below the start: halving, then bisecting
    [InlineData(123.0, 0.5, 0.02)]
    [InlineData(1.0, 1.0, 0.1)]       // the start itself
    public async Task The_search_brackets_the_threshold_within_its_precision(double threshold, double start, double precision)
    {
        var tried = new List<double>();
        CapacityBounds bounds = await SearchAsync(start, precision, 40, rate =>
        {
            tried.Add(rate);
            return rate <= threshold;
        });

        Assert.True(bounds.Complete);
        Assert.Equal(tried.Count, bounds.Probes);
        Assert.Equal(start, tried[0]);
        double pass = Assert.NotNull(bounds.HighestPassing), fail = Assert.NotNull(bounds.LowestFailing);
        Assert.InRange(threshold, pass, fail);
        Assert.True(fail - pass <= precision * fail, $"bracket [{pass}, {fail}] is wider than {precision:P0} of {fail}");
        Assert.Equal(tried.Where(r => r <= threshold).Max(), pass);
        Assert.Equal(tried.Where(r => r > threshold).Min(), fail);
    }

    [Fact]
    public async Task A_search_out_of_probes_is_incomplete_with_what_it_found()
    {
        CapacityBounds bounds = await SearchAsync(1, 0.01, 4, rate => rate <= 1000);
        Assert.False(bounds.Complete);
        Assert.Equal(4, bounds.Probes);
        Assert.Equal(8, bounds.HighestPassing);   // 1, 2, 4, 8: all passed
        Assert.Null(bounds.LowestFailing);
    }

    [Fact]
    public async Task A_system_that_sustains_nothing_ends_below_the_floor_with_no_capacity()
    {
        CapacityBounds bounds = await SearchAsync(1, 0.05, 100, _ => false);
        Assert.True(bounds.Complete);
        Assert.Null(bounds.HighestPassing);
        Assert.True(bounds.LowestFailing <= 1.0 / 1024);
        Assert.Equal(11, bounds.Probes);   // 1, 1/2, ..., 1/1024
    }

    [Fact]
    public async Task A_stopped_probe_ends_the_search_incomplete()
    {
        int calls = 0;
        CapacityBounds bounds = await CapacitySearch.FindAsync(2, 0.05, 20, (rate, _) => Task.FromResult<bool?>(++calls < 3 ? true : null), CancellationToken.None);
        Assert.False(bounds.Complete);
        Assert.Equal(3, bounds.Probes);
        Assert.Equal(4, bounds.HighestPassing);
    }

    [Theory]
    [InlineData(0, 0.05, 3)]
    [InlineData(1, 0, 3)]
    [InlineData(1, 1, 3)]
    [InlineData(1, 0.05, 0)]
    public async Task Bad_settings_are_refused(double start, double precision, int probes) =>
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => CapacitySearch.FindAsync(start, precision, probes, (_, _) => Task.FromResult<bool?>(true), CancellationToken.None));

    private static Task<CapacityBounds> SearchAsync(double start, double precision, int maxProbes, Func<double, bool> system) =>
        CapacitySearch.FindAsync(start, precision, maxProbes, (rate, _) => Task.FromResult<bool?>(system(rate)), CancellationToken.None);
}
