using System.Globalization;

namespace LlmPq.Host.Benchmarking;

/// <summary>One request of a workload: when it arrives (from the start of the run) and its token counts.</summary>
internal sealed record BenchRequest(int Index, TimeSpan Arrival, int PromptTokens, int OutputTokens);

/// <summary>Builds workloads: seeded lengths and Poisson arrivals, or a trace file; the same seed gives the same requests.</summary>
internal static class BenchWorkload
{
    /// <summary>The header a trace file starts with.</summary>
    public const string TraceHeader = "arrival_s,prompt_tokens,completion_tokens";

    /// <summary>
    /// Draws <paramref name="count"/> requests: lengths from the distributions, arrivals Poisson at
    /// <paramref name="qps"/> (0: all at once).
    /// </summary>
    public static IReadOnlyList<BenchRequest> Synthetic(int count, double qps, LengthDistribution prompt, LengthDistribution output, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(output);
        var random = new Random(seed);
        BenchRequest[] requests = [.. Enumerable.Range(0, count).Select(i => new BenchRequest(i, TimeSpan.Zero, prompt.Sample(random), output.Sample(random)))];
        return WithArrivals(requests, qps, seed);
    }

    /// <summary>
    /// The same requests with Poisson arrivals at <paramref name="qps"/> (0: all at once). Arrivals come from their
    /// own seeded stream, so two rates with one seed give the same arrivals scaled by the ratio of the rates.
    /// </summary>
    public static IReadOnlyList<BenchRequest> WithArrivals(IReadOnlyList<BenchRequest> requests, double qps, int seed)
    {
        ArgumentNullException.ThrowIfNull(requests);
        IEnumerable<TimeSpan> arrivals = qps > 0 ? PoissonArrivals(qps, seed) : Enumerable.Repeat(TimeSpan.Zero, requests.Count);
        return [.. requests.Zip(arrivals, (r, at) => r with { Arrival = at })];
    }

    /// <summary>Arrival times of a Poisson process: exponential gaps of mean 1/<paramref name="qps"/>, from a seeded draw.</summary>
    public static IEnumerable<TimeSpan> PoissonArrivals(double qps, int seed)
    {
        if (!(qps > 0) || !double.IsFinite(qps))
        {
            throw new ArgumentOutOfRangeException(nameof(qps), qps, "The arrival rate must be positive and finite.");
        }

        return Generate();

        IEnumerable<TimeSpan> Generate()
        {
            // A stream of its own (not the lengths'), so changing the rate keeps the lengths and scales the arrivals.
            var random = new Random(~seed);
            double t = 0;
            while (true)
            {
                t += -Math.Log(1 - random.NextDouble()) / qps;
                yield return TimeSpan.FromSeconds(t);
            }
        }
    }

    /// <summary>Reads a trace: the header <see cref="TraceHeader"/>, then one request a line, sorted by arrival.</summary>
    /// <exception cref="InvalidDataException">A line is not a request; the message names the file and line.</exception>
    public static IReadOnlyList<BenchRequest> ReadTrace(string path)
    {
        using var reader = new StreamReader(path);
        return ParseTrace(reader, Path.GetFileName(path));
    }

    /// <summary>Parses trace text (see <see cref="ReadTrace"/>); <paramref name="name"/> goes into error messages.</summary>
    public static IReadOnlyList<BenchRequest> ParseTrace(TextReader reader, string name)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var rows = new List<BenchRequest>();
        int lineNumber = 0;
        bool header = false;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line) || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            string[] cells = [.. line.Split(',').Select(c => c.Trim())];
            if (!header)
            {
                if (!string.Equals(string.Join(',', cells), TraceHeader, StringComparison.OrdinalIgnoreCase))
                {
                    throw Bad(lineNumber, $"the header must be '{TraceHeader}', not '{line.Trim()}'");
                }

                header = true;
                continue;
            }

            if (cells.Length != 3)
            {
                throw Bad(lineNumber, $"expected 3 values (arrival_s, prompt_tokens, completion_tokens), found {cells.Length}");
            }

            if (!double.TryParse(cells[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double arrival) || !double.IsFinite(arrival) || arrival < 0)
            {
                throw Bad(lineNumber, $"arrival_s '{cells[0]}' is not a non-negative number of seconds");
            }

            int prompt = Tokens(cells[1], "prompt_tokens", lineNumber);
            int completion = Tokens(cells[2], "completion_tokens", lineNumber);
            rows.Add(new BenchRequest(rows.Count, TimeSpan.FromSeconds(arrival), prompt, completion));
        }

        if (rows.Count == 0)
        {
            throw new InvalidDataException($"{name}: no requests (a trace is the header '{TraceHeader}' and one line per request).");
        }

        return [.. rows.OrderBy(r => r.Arrival).Select((r, i) => r with { Index = i })];

        int Tokens(string cell, string column, int at) =>
            int.TryParse(cell, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : throw Bad(at, $"{column} '{cell}' is not a positive whole number");

        InvalidDataException Bad(int at, string what) => new(string.Create(CultureInfo.InvariantCulture, $"{name} line {at}: {what}."));
    }
}
