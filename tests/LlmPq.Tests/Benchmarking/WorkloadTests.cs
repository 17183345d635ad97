using LlmPq.Host.Benchmarking;

namespace LlmPq.Tests.Benchmarking;

/// <summary>Arrivals, length distributions and the prompt builder of the load generator.</summary>
public sealed class WorkloadTests
{
    [Theory]
    [InlineData(5.0, 1)]
    [InlineData(0.5, 2)]
    [InlineData(120.0, 3)]
    public void Poisson_gaps_have_mean_one_over_the_rate_and_exponential_spread(double qps, int seed)
    {
        const int n = 20_000;
        double[] arrivals = [.. BenchWorkload.PoissonArrivals(qps, seed).Take(n).Select(t => t.TotalSeconds)];
        double[] gaps = [arrivals[0], .. arrivals.Skip(1).Zip(arrivals, (b, a) => b - a)];
        Assert.All(gaps, g => Assert.True(g >= 0));

        // An exponential gap has mean and standard deviation 1/qps: the sample mean is within 5 standard errors
        // (1/qps/sqrt(n)), and the coefficient of variation within 5 of its standard errors (about sqrt(2/n)) of 1.
        double mean = gaps.Average();
        double sd = Math.Sqrt(gaps.Sum(g => (g - mean) * (g - mean)) / (n - 1));
        Assert.InRange(mean, (1 / qps) - (5 / qps / Math.Sqrt(n)), (1 / qps) + (5 / qps / Math.Sqrt(n)));
        Assert.InRange(sd / mean, 1 - (5 * Math.Sqrt(2.0 / n)), 1 + (5 * Math.Sqrt(2.0 / n)));
    }

    [Fact]
    public void Arrivals_are_reproducible_and_scale_with_the_rate()
    {
        TimeSpan[] a = [.. BenchWorkload.PoissonArrivals(2, seed: 7).Take(100)];
        TimeSpan[] again = [.. BenchWorkload.PoissonArrivals(2, seed: 7).Take(100)];
        TimeSpan[] other = [.. BenchWorkload.PoissonArrivals(2, seed: 8).Take(100)];
        TimeSpan[] twice = [.. BenchWorkload.PoissonArrivals(4, seed: 7).Take(100)];
        Assert.Equal(a, again);
        Assert.NotEqual(a, other);

        // The same draws at twice the rate: every arrival halves (up to the rounding of TimeSpan to 100 ns ticks).
        Assert.All(a.Zip(twice), p => Assert.InRange(Math.Abs((p.First.Ticks / 2.0) - p.Second.Ticks), 0, 2));
    }

    [Fact]
    public void Synthetic_workloads_draw_lengths_within_bounds_and_sorted_arrivals_and_zero_rate_sends_at_once()
    {
        LengthDistribution prompt = LengthDistribution.Parse("uniform:10:50"), output = LengthDistribution.Parse("zipf:1:8");
        IReadOnlyList<BenchRequest> paced = BenchWorkload.Synthetic(200, 3, prompt, output, seed: 1);
        Assert.Equal(Enumerable.Range(0, 200), paced.Select(r => r.Index));
        Assert.All(paced, r => Assert.InRange(r.PromptTokens, 10, 50));
        Assert.All(paced, r => Assert.InRange(r.OutputTokens, 1, 8));
        Assert.Equal(paced.Select(r => r.Arrival).Order(), paced.Select(r => r.Arrival));
        Assert.True(paced[^1].Arrival > TimeSpan.Zero);

        IReadOnlyList<BenchRequest> burst = BenchWorkload.Synthetic(200, 0, prompt, output, seed: 1);
        Assert.All(burst, r => Assert.Equal(TimeSpan.Zero, r.Arrival));
        Assert.Equal(paced.Select(r => (r.PromptTokens, r.OutputTokens)), burst.Select(r => (r.PromptTokens, r.OutputTokens)));
    }

    [Theory]
    [InlineData("128", 128, 128)]
    [InlineData("fixed:7", 7, 7)]
    [InlineData("uniform:3:9", 3, 9)]
    [InlineData("zipf:16:1024", 16, 1024)]
    [InlineData("ZIPF:2:5:1.5", 2, 5)]
    public void Length_specs_parse_to_their_bounds(string spec, int min, int max)
    {
        LengthDistribution d = LengthDistribution.Parse(spec);
        Assert.Equal(min, d.Min);
        Assert.Equal(max, d.Max);
        var random = new Random(1);
        Assert.All(Enumerable.Range(0, 2000).Select(_ => d.Sample(random)), v => Assert.InRange(v, min, max));
        Assert.Equal(d.ToString(), LengthDistribution.Parse(d.ToString()).ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("1.5")]
    [InlineData("uniform:5:1")]
    [InlineData("uniform:1")]
    [InlineData("zipf:1:10:0")]
    [InlineData("zipf:1:10:x")]
    [InlineData("normal:1:2")]
    public void Bad_length_specs_are_refused(string spec) =>
        Assert.Throws<FormatException>(() => LengthDistribution.Parse(spec));

    [Fact]
    public void Uniform_hits_every_length_about_equally()
    {
        const int n = 60_000, k = 6;
        var d = new LengthDistribution.Uniform(5, 5 + k - 1);
        var random = new Random(3);
        int[] counts = new int[k];
        for (int i = 0; i < n; i++)
        {
            counts[d.Sample(random) - 5]++;
        }

        // Each count is binomial(n, 1/k): within 5 standard deviations of n/k.
        double sigma = Math.Sqrt(n * (1.0 / k) * (1 - (1.0 / k)));
        Assert.All(counts, c => Assert.InRange(c, (n / k) - (5 * sigma), (n / k) + (5 * sigma)));
    }

    [Theory]
    [InlineData(0.6)]
    [InlineData(1.2)]
    [InlineData(2.0)]
    public void Zipf_frequencies_fall_with_the_length_as_k_to_the_minus_exponent(double exponent)
    {
        const int n = 200_000, min = 100, size = 10;
        var d = new LengthDistribution.Zipf(min, min + size - 1, exponent);
        var random = new Random(4);
        int[] counts = new int[size];
        for (int i = 0; i < n; i++)
        {
            counts[d.Sample(random) - min]++;
        }

        double h = Enumerable.Range(1, size).Sum(k => Math.Pow(k, -exponent));
        for (int k = 0; k < size; k++)
        {
            double p = Math.Pow(k + 1, -exponent) / h;
            double sigma = Math.Sqrt(n * p * (1 - p));
            Assert.InRange(counts[k], (n * p) - (5 * sigma), (n * p) + (5 * sigma));
            if (k > 0)
            {
                Assert.True(counts[k] < counts[k - 1], $"length {min + k} drawn {counts[k]} times, more than {min + k - 1} ({counts[k - 1]})");
            }
        }
    }

    [Fact]
    public void Prompts_meet_the_length_exactly_when_the_words_allow()
    {
        // A stand-in tokenizer: four tokens of template, one per short word, two per word longer than five letters.
        static int Count(string text) => 4 + text.Split(' ').Sum(w => w.Length > 5 ? 2 : 1);
        var builder = new PromptBuilder(Count);
        foreach (int tokens in new[] { 7, 8, 9, 40, 333 })
        {
            string a = builder.Build(3, tokens);
            Assert.Equal(tokens, Count(a));
            Assert.StartsWith("Request 3:", a, StringComparison.Ordinal);
            Assert.Equal(a, builder.Build(3, tokens));
        }

        Assert.NotEqual(builder.Build(1, 40)["Request 1:".Length..], builder.Build(2, 40)["Request 2:".Length..]);

        // Shorter than the template and the head (7 tokens): the shortest prompt there is.
        Assert.Equal("Request 3:", builder.Build(3, 2));
        Assert.Equal("Request 3:", builder.Build(3, 7));
    }
}
