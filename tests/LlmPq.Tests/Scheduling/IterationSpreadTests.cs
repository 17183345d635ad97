using LlmPq.Scheduling;

namespace LlmPq.Tests.Scheduling;

/// <summary>The bubble proxy: spread of iteration times per kind and imbalance of consecutive iterations.</summary>
public sealed class IterationSpreadTests
{
    [Fact]
    public void Nothing_is_reported_before_iterations_are()
    {
        var spread = new IterationSpread();
        Assert.Null(spread.Spread(IterationKind.Hybrid));
        Assert.Null(spread.Imbalance);
        spread.Record(IterationKind.Hybrid, TimeSpan.FromMilliseconds(5));
        Assert.Equal(0, spread.Spread(IterationKind.Hybrid)!.Value, 12);
        Assert.Null(spread.Imbalance);
    }

    [Fact]
    public void Uniform_iterations_have_no_spread_and_no_imbalance()
    {
        var spread = new IterationSpread();
        for (int i = 0; i < 50; i++)
        {
            spread.Record(IterationKind.Hybrid, TimeSpan.FromMilliseconds(20));
        }

        Assert.Equal(0, spread.Spread(IterationKind.Hybrid)!.Value, 9);
        Assert.Equal(0, spread.Imbalance!.Value, 12);
    }

    [Fact]
    public void Alternating_prefill_and_decode_iterations_are_uniform_per_kind_but_imbalanced()
    {
        // vLLM-style: 30 ms prompt iterations between 10 ms decode ones; a stage idles 2/3 of the longer one.
        var spread = new IterationSpread();
        for (int i = 0; i < 50; i++)
        {
            spread.Record(i % 2 == 0 ? IterationKind.Prefill : IterationKind.Decode, TimeSpan.FromMilliseconds(i % 2 == 0 ? 30 : 10));
        }

        Assert.Equal(0, spread.Spread(IterationKind.Prefill)!.Value, 9);
        Assert.Equal(0, spread.Spread(IterationKind.Decode)!.Value, 9);
        Assert.Equal(2.0 / 3, spread.Imbalance!.Value, 9);
    }

    [Fact]
    public void Uneven_iterations_of_one_kind_spread()
    {
        var spread = new IterationSpread();
        var random = new Random(3);
        for (int i = 0; i < 200; i++)
        {
            spread.Record(IterationKind.Prefill, TimeSpan.FromMilliseconds(random.Next(1, 100)));
        }

        Assert.InRange(spread.Spread(IterationKind.Prefill)!.Value, 0.2, 1);
        Assert.Null(spread.Spread(IterationKind.Decode));
    }
}
