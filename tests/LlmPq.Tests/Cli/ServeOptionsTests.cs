namespace LlmPq.Tests.Cli;

/// <summary><c>llmpq serve</c>'s refusals, which come before it loads or announces anything.</summary>
public sealed class ServeOptionsTests
{
    [Fact]
    public void Serving_beyond_loopback_without_a_key_is_refused_before_anything_is_announced()
    {
        CliRunner.Result result = CliRunner.Run("serve", "--model", "no-such-model.gguf", "--host", "0.0.0.0", "--port", "1");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("without an API key", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("serving", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("3.0")]
    public void A_shutdown_timeout_that_is_not_whole_seconds_is_refused_with_a_message_not_a_crash(string value)
    {
        CliRunner.Result result = CliRunner.Run("serve", "--model", "m.gguf", "--shutdown-timeout-s", value);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"--shutdown-timeout-s takes whole seconds, 0 or more ('{value}' is not)", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_model_is_one_clear_line_before_anything_is_announced()
    {
        CliRunner.Result result = CliRunner.Run("serve", "--model", "no-such-model.gguf", "--port", "1");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("There is no model at", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("serving", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }
}
