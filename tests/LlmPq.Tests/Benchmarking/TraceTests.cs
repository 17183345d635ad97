using LlmPq.Host.Benchmarking;

namespace LlmPq.Tests.Benchmarking;

/// <summary>Trace files: <c>arrival_s,prompt_tokens,completion_tokens</c>, one request a line.</summary>
public sealed class TraceTests
{
    [Fact]
    public void A_trace_gives_its_requests_sorted_by_arrival()
    {
        const string text = """
            arrival_s, prompt_tokens, completion_tokens
            # a comment, then an empty line

            0.5,100,20
            0,  30,5
            1.25,7,1
            """;
        IReadOnlyList<BenchRequest> requests = BenchWorkload.ParseTrace(new StringReader(text), "t.csv");
        Assert.Equal(
            [new BenchRequest(0, TimeSpan.Zero, 30, 5), new BenchRequest(1, TimeSpan.FromSeconds(0.5), 100, 20), new BenchRequest(2, TimeSpan.FromSeconds(1.25), 7, 1)],
            requests);
    }

    [Theory]
    [InlineData("arrival,prompt,completion\n0,1,1", 1, "header")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\n0,1,1\n0.5,2", 3, "expected 3 values")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\n0,1,1,9", 2, "expected 3 values")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\n-1,1,1", 2, "arrival_s '-1'")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\nsoon,1,1", 2, "arrival_s 'soon'")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\n\n0,12.5,1", 3, "prompt_tokens '12.5'")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\n0,1,0", 2, "completion_tokens '0'")]
    public void A_bad_row_is_refused_with_its_line_number(string text, int line, string what)
    {
        InvalidDataException error = Assert.Throws<InvalidDataException>(() => BenchWorkload.ParseTrace(new StringReader(text), "bad.csv"));
        Assert.StartsWith($"bad.csv line {line}: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(what, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("arrival_s,prompt_tokens,completion_tokens\n")]
    public void A_trace_without_requests_is_refused(string text)
    {
        InvalidDataException error = Assert.Throws<InvalidDataException>(() => BenchWorkload.ParseTrace(new StringReader(text), "empty.csv"));
        Assert.Contains("no requests", error.Message, StringComparison.Ordinal);
    }
}
