using LlmPq.Planning;

namespace LlmPq.Tests.Planning;

public class ByteSizeTests
{
    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(200, "200 B")]
    [InlineData(1023, "1023 B")]
    [InlineData(1024, "1.00 KiB")]
    [InlineData(1536, "1.50 KiB")]
    [InlineData(3.5 * 1024 * 1024, "3.50 MiB")]
    [InlineData(21474836.48, "20.48 MiB")]
    [InlineData(2.0 * (1L << 30), "2.00 GiB")]
    [InlineData(1.25 * (1L << 40), "1.25 TiB")]
    public void Takes_the_unit_that_keeps_the_number_below_1024(double bytes, string expected) =>
        Assert.Equal(expected, ByteSize.Format(bytes));
}
