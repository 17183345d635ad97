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
        var builder = new PromptBuilder(Count);
        foreach (int tokens in new[] { 7, 8, 9, 40, 333 })
        {
            string a = builder.Build("Request 3:", 3, tokens);
            Assert.Equal(tokens, Count(a));
            Assert.StartsWith("Request 3:", a, StringComparison.Ordinal);
            Assert.Equal(a, builder.Build("Request 3:", 3, tokens));
        }

        Assert.NotEqual(builder.Build("Request 1:", 1, 40)["Request 1:".Length..], builder.Build("Request 2:", 2, 40)["Request 2:".Length..]);

        // Shorter than the template and the head (7 tokens): the shortest prompt there is.
        Assert.Equal("Request 3:", builder.Build("Request 3:", 3, 2));
        Assert.Equal("Request 3:", builder.Build("Request 3:", 3, 7));

        // Counted with what comes before it.
        string after = builder.Build("Request 4:", 4, 30, before: "one two three\n");
        Assert.StartsWith("one two three\nRequest 4:", after, StringComparison.Ordinal);
        Assert.Equal(30, Count(after));
    }

    [Fact]
    public void A_conversation_has_its_turns_each_a_message_of_the_prompt_length()
    {
        BenchRequest[] workload = [new(0, TimeSpan.Zero, 40, 8), new(1, TimeSpan.Zero, 60, 8)];
        BenchPrompt[] round = new PromptSource(Count, workload, new ConversationShape(4, 0), seed: 1).Next();
        Assert.Equal(workload, round.Select(p => p.Request));
        foreach (BenchPrompt prompt in round)
        {
            Assert.Equal(4, prompt.Turns);
            Assert.Equal(0, prompt.SharedPrefixTokens);
            Assert.All(prompt.FollowUps.Prepend(prompt.Text), text => Assert.Equal(prompt.Request.PromptTokens, Count(text)));
            Assert.Equal(4, prompt.FollowUps.Prepend(prompt.Text).Distinct().Count());
        }

        // A single-message workload has no later turns.
        Assert.All(new PromptSource(Count, workload, ConversationShape.Single, seed: 1).Next(), p => Assert.Empty(p.FollowUps));
    }

    [Theory]
    [InlineData(1, 64, 40)]
    [InlineData(3, 500, 20)]
    public void Every_request_of_a_round_starts_with_the_same_prefix_of_the_shared_length(int turns, int prefixTokens, int promptTokens)
    {
        BenchRequest[] workload = [.. Enumerable.Range(0, 5).Select(i => new BenchRequest(i, TimeSpan.Zero, promptTokens, 4))];
        BenchPrompt[] round = new PromptSource(Count, workload, new ConversationShape(turns, prefixTokens), seed: 1).Next();

        string prefix = Prefix(round[0]);
        Assert.All(round, p => Assert.StartsWith(prefix, p.Text, StringComparison.Ordinal));
        Assert.All(round, p => Assert.Equal(prefixTokens, p.SharedPrefixTokens));

        // The prefix's own tokens (less the template of an empty message) are the shared length.
        Assert.Equal(prefixTokens, Count(prefix) - Count(string.Empty));
        Assert.All(round, p => Assert.Equal(prefixTokens + promptTokens, Count(p.Text)));

        // Later turns carry no prefix: the first message stays in the history.
        Assert.All(round.SelectMany(p => p.FollowUps), text => Assert.Equal(promptTokens, Count(text)));
        Assert.All(round.SelectMany(p => p.FollowUps), text => Assert.DoesNotContain(prefix, text, StringComparison.Ordinal));
    }

    [Fact]
    public void Each_round_has_prompts_of_its_own_and_the_same_seed_gives_the_same_rounds()
    {
        IReadOnlyList<BenchRequest> workload = BenchWorkload.Synthetic(6, 0, LengthDistribution.Parse("uniform:20:40"), LengthDistribution.Parse("4"), seed: 1);
        var shape = new ConversationShape(2, 32);
        var source = new PromptSource(Count, workload, shape, seed: 1);
        BenchPrompt[] first = source.Next(), second = source.Next();
        BenchPrompt alone = source.Alone(workload[0]);

        // The same lengths, other texts: no text of one round, nor its prefix, is in another.
        Assert.Equal(first.Select(p => p.Request), second.Select(p => p.Request));
        string[] a = [.. first.SelectMany(p => p.FollowUps.Prepend(p.Text))], b = [.. second.SelectMany(p => p.FollowUps.Prepend(p.Text)), alone.Text];
        Assert.Empty(a.Intersect(b));
        Assert.NotEqual(Prefix(first[0]), Prefix(second[0]));
        Assert.False(alone.Text.StartsWith(Prefix(first[0]), StringComparison.Ordinal));
        Assert.Empty(alone.FollowUps);

        var again = new PromptSource(Count, workload, shape, seed: 1);
        Assert.Equal(a, again.Next().SelectMany(p => p.FollowUps.Prepend(p.Text)));
        Assert.NotEqual(a, new PromptSource(Count, workload, shape, seed: 2).Next().SelectMany(p => p.FollowUps.Prepend(p.Text)));
    }

    [Fact]
    public void A_conversation_holds_the_prefix_and_every_turn_at_its_last_answer()
    {
        var request = new BenchRequest(0, TimeSpan.Zero, 128, 64);
        Assert.Equal(192, ConversationShape.Single.TokensAtLastAnswer(request));
        Assert.Equal(1024 + (10 * 192), new ConversationShape(10, 1024).TokensAtLastAnswer(request));
    }

    // A stand-in tokenizer: four tokens of template, one per short word, two per word longer than five letters.
    private static int Count(string text) => 4 + text.Split(' ', '\n').Count(w => w.Length > 0) + text.Split(' ', '\n').Count(w => w.Length > 5);

    // The shared prefix ends at the first line break; words and heads have none.
    private static string Prefix(BenchPrompt prompt) => prompt.Text[..prompt.Text.IndexOf('\n', StringComparison.Ordinal)];
}
