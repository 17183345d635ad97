using System.Globalization;
using System.Text;

namespace LlmPq.Grammar;

// Integer ranges as digit patterns: llama.cpp's build_min_max_int.
internal static partial class JsonGrammar
{
    /// <summary>
    /// Appends the alternatives that match the integers from <paramref name="minValue"/> to <paramref name="maxValue"/>
    /// (<see cref="long.MinValue"/> and <see cref="long.MaxValue"/> for no bound; at least one is set), with at most
    /// <paramref name="decimalsLeft"/> digits where a side is unbounded.
    /// </summary>
    private static void BuildMinMaxInt(long minValue, long maxValue, StringBuilder output, int decimalsLeft = 16, bool topLevel = true)
    {
        bool hasMin = minValue != long.MinValue;
        bool hasMax = maxValue != long.MaxValue;

        void DigitRange(char from, char to)
        {
            output.Append('[').Append(from);
            if (from != to)
            {
                output.Append('-').Append(to);
            }

            output.Append(']');
        }

        void MoreDigits(int minDigits, int maxDigits)
        {
            output.Append("[0-9]");
            if (minDigits == maxDigits && minDigits == 1)
            {
                return;
            }

            output.Append('{').Append(Number(minDigits));
            if (maxDigits != minDigits)
            {
                output.Append(',');
                if (maxDigits != int.MaxValue)
                {
                    output.Append(Number(maxDigits));
                }
            }

            output.Append('}');
        }

        // The numbers from "from" to "to", both of the same number of digits.
        void UniformRange(string from, string to)
        {
            int i = 0;
            while (i < from.Length && i < to.Length && from[i] == to[i])
            {
                i++;
            }

            if (i > 0)
            {
                output.Append('"').Append(from, 0, i).Append('"');
            }

            if (i >= from.Length || i >= to.Length)
            {
                return;
            }

            if (i > 0)
            {
                output.Append(' ');
            }

            int subLength = from.Length - i - 1;
            if (subLength == 0)
            {
                output.Append('[').Append(from[i]).Append('-').Append(to[i]).Append(']');
                return;
            }

            string fromSub = from[(i + 1)..];
            string toSub = to[(i + 1)..];
            string subZeros = new('0', subLength);
            string subNines = new('9', subLength);
            bool toReached = false;
            output.Append('(');
            if (fromSub == subZeros)
            {
                DigitRange(from[i], (char)(to[i] - 1));
                output.Append(' ');
                MoreDigits(subLength, subLength);
            }
            else
            {
                output.Append('[').Append(from[i]).Append("] (");
                UniformRange(fromSub, subNines);
                output.Append(')');
                if (from[i] < to[i] - 1)
                {
                    output.Append(" | ");
                    toReached = toSub == subNines;
                    DigitRange((char)(from[i] + 1), toReached ? to[i] : (char)(to[i] - 1));
                    output.Append(' ');
                    MoreDigits(subLength, subLength);
                }
            }

            if (!toReached)
            {
                output.Append(" | ");
                DigitRange(to[i], to[i]);
                output.Append(' ');
                UniformRange(subZeros, toSub);
            }

            output.Append(')');
        }

        if (hasMin && hasMax)
        {
            if (minValue < 0 && maxValue < 0)
            {
                output.Append("\"-\" (");
                BuildMinMaxInt(-maxValue, -minValue, output, decimalsLeft, topLevel: true);
                output.Append(')');
                return;
            }

            if (minValue < 0)
            {
                output.Append("\"-\" (");
                BuildMinMaxInt(0, -minValue, output, decimalsLeft, topLevel: true);
                output.Append(") | ");
                minValue = 0;
            }

            string minText = Number(minValue);
            string maxText = Number(maxValue);
            for (int digits = minText.Length; digits < maxText.Length; digits++)
            {
                UniformRange(minText, new string('9', digits));
                minText = "1" + new string('0', digits);
                output.Append(" | ");
            }

            UniformRange(minText, maxText);
            return;
        }

        int lessDecimals = Math.Max(decimalsLeft - 1, 1);
        if (hasMin)
        {
            if (minValue < 0)
            {
                output.Append("\"-\" (");
                BuildMinMaxInt(long.MinValue, -minValue, output, decimalsLeft, topLevel: false);
                output.Append(") | [0] | [1-9] ");
                MoreDigits(0, decimalsLeft - 1);
            }
            else if (minValue == 0)
            {
                if (topLevel)
                {
                    output.Append("[0] | [1-9] ");
                    MoreDigits(0, lessDecimals);
                }
                else
                {
                    MoreDigits(1, decimalsLeft);
                }
            }
            else if (minValue <= 9)
            {
                char c = (char)('0' + minValue);
                char rangeStart = topLevel ? '1' : '0';
                if (c > rangeStart)
                {
                    DigitRange(rangeStart, (char)(c - 1));
                    output.Append(' ');
                    MoreDigits(1, lessDecimals);
                    output.Append(" | ");
                }

                DigitRange(c, '9');
                output.Append(' ');
                MoreDigits(0, lessDecimals);
            }
            else
            {
                string minText = Number(minValue);
                char c = minText[0];

                // Below the top level a leading zero is just a digit: llama.cpp only allows it when c > '1'.
                char low = topLevel ? '1' : '0';
                if (c > low)
                {
                    DigitRange(low, (char)(c - 1));
                    output.Append(' ');
                    MoreDigits(minText.Length, lessDecimals);
                    output.Append(" | ");
                }

                DigitRange(c, c);
                output.Append(" (");
                AtLeast(minText[1..], lessDecimals);
                output.Append(')');
                if (c < '9')
                {
                    output.Append(" | ");
                    DigitRange((char)(c + 1), '9');
                    output.Append(' ');
                    MoreDigits(minText.Length - 1, lessDecimals);
                }
            }
        }
        else if (maxValue >= 0)
        {
            if (topLevel)
            {
                output.Append("\"-\" [1-9] ");
                MoreDigits(0, lessDecimals);
                output.Append(" | ");
            }

            BuildMinMaxInt(0, maxValue, output, decimalsLeft, topLevel: true);
        }
        else
        {
            // The digits after "-" start a number, so no leading zero (llama.cpp goes below the top level here).
            output.Append("\"-\" (");
            BuildMinMaxInt(-maxValue, long.MaxValue, output, decimalsLeft, topLevel: true);
            output.Append(')');
        }

        // The digit strings, leading zeros allowed, longer than rest or as long and not below it. llama.cpp parses
        // rest as a number, so "1005" asked for no more than "5" after the "1" and admitted 15.
        void AtLeast(string rest, int decimals)
        {
            if (rest.Length > 1 && rest[0] == '0')
            {
                output.Append("[0] (");
                AtLeast(rest[1..], decimals - 1);
                output.Append(") | [1-9] ");
                MoreDigits(rest.Length - 1, decimals - 1);
                return;
            }

            BuildMinMaxInt(long.Parse(rest, CultureInfo.InvariantCulture), long.MaxValue, output, decimals, topLevel: false);
        }
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
