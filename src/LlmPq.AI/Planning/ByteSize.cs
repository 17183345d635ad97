using System.Globalization;

namespace LlmPq.Planning;

/// <summary>
/// Byte counts as a reader takes them in: in the binary unit that keeps the number below 1024, so that a few MiB never
/// read as 0.00 GiB.
/// </summary>
internal static class ByteSize
{
    private static readonly string[] s_units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

    /// <summary>Formats a byte count: <c>200 B</c>, <c>3.42 MiB</c>, <c>2.00 GiB</c>.</summary>
    /// <param name="bytes">The count (not necessarily whole: a shortfall may be a sum of estimates).</param>
    /// <returns>The count in its unit, with two decimals above bytes.</returns>
    public static string Format(double bytes)
    {
        int unit = 0;
        double value = bytes;
        while (Math.Abs(value) >= 1024 && unit < s_units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{value:F0} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:F2} {s_units[unit]}");
    }
}
