using System.Globalization;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// How many tokens a request's prompt or output has: <c>N</c> (fixed), <c>uniform:MIN:MAX</c>, or
/// <c>zipf:MIN:MAX[:S]</c> (length <c>MIN + k - 1</c> with probability proportional to <c>k^-S</c>, so short
/// lengths are the most frequent; S defaults to 0.6 as in Sarathi-Serve's harness, which scrambles ranks; this does not).
/// </summary>
internal abstract class LengthDistribution
{
    /// <summary>Gets the smallest length drawn.</summary>
    public abstract int Min { get; }

    /// <summary>Gets the largest length drawn.</summary>
    public abstract int Max { get; }

    /// <summary>Draws a length.</summary>
    public abstract int Sample(Random random);

    /// <summary>Gets the distribution as <see cref="Parse"/> reads it.</summary>
    public abstract override string ToString();

    /// <summary>Parses <c>N</c>, <c>fixed:N</c>, <c>uniform:MIN:MAX</c> or <c>zipf:MIN:MAX[:S]</c>.</summary>
    /// <exception cref="FormatException">The text is none of these.</exception>
    public static LengthDistribution Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Trim().Split(':');
        string kind = parts.Length == 1 ? "fixed" : parts[0].ToLowerInvariant();
        string[] args = parts.Length == 1 ? parts : parts[1..];
        return (kind, args.Length) switch
        {
            ("fixed", 1) => new Fixed(Tokens(args[0])),
            ("uniform", 2) => new Uniform(Tokens(args[0]), Tokens(args[1])),
            ("zipf", 2) => new Zipf(Tokens(args[0]), Tokens(args[1])),
            ("zipf", 3) => new Zipf(Tokens(args[0]), Tokens(args[1]), Exponent(args[2])),
            _ => throw new FormatException($"'{text}' is not a length: use N, uniform:MIN:MAX or zipf:MIN:MAX[:EXPONENT]."),
        };

        static int Tokens(string s) => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n
            : throw new FormatException($"'{s}' is not a positive whole number of tokens.");

        static double Exponent(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double e) && e > 0 && double.IsFinite(e)
            ? e
            : throw new FormatException($"'{s}' is not a positive Zipf exponent.");
    }

    /// <summary>Always the same length.</summary>
    public sealed class Fixed : LengthDistribution
    {
        public Fixed(int tokens)
        {
            Validate(tokens, tokens);
            Min = tokens;
        }

        public override int Min { get; }

        public override int Max => Min;

        public override int Sample(Random random) => Min;

        public override string ToString() => Min.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Every length in [<see cref="Min"/>, <see cref="Max"/>] equally likely.</summary>
    public sealed class Uniform : LengthDistribution
    {
        public Uniform(int min, int max)
        {
            Validate(min, max);
            (Min, Max) = (min, max);
        }

        public override int Min { get; }

        public override int Max { get; }

        public override int Sample(Random random)
        {
            ArgumentNullException.ThrowIfNull(random);
            return random.Next(Min, Max + 1);
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"uniform:{Min}:{Max}");
    }

    /// <summary>Zipf over the lengths of [<see cref="Min"/>, <see cref="Max"/>], drawn by inverting its cumulative distribution.</summary>
    public sealed class Zipf : LengthDistribution
    {
        private readonly double[] _cumulative;

        public Zipf(int min, int max, double exponent = 0.6)
        {
            Validate(min, max);
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(exponent);
            (Min, Max, Exponent) = (min, max, exponent);
            _cumulative = new double[max - min + 1];
            double sum = 0;
            for (int k = 0; k < _cumulative.Length; k++)
            {
                sum += Math.Pow(k + 1, -exponent);
                _cumulative[k] = sum;
            }
        }

        public override int Min { get; }

        public override int Max { get; }

        /// <summary>Gets the exponent S.</summary>
        public double Exponent { get; }

        public override int Sample(Random random)
        {
            ArgumentNullException.ThrowIfNull(random);
            double u = random.NextDouble() * _cumulative[^1];
            int k = Array.BinarySearch(_cumulative, u);
            return Min + Math.Min(k >= 0 ? k : ~k, _cumulative.Length - 1);
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"zipf:{Min}:{Max}:{Exponent}");
    }

    private static void Validate(int min, int max)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(min);
        if (max < min)
        {
            throw new FormatException($"The largest length ({max}) is below the smallest ({min}).");
        }
    }
}
