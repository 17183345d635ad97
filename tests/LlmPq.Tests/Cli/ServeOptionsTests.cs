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

    [Fact]
    public void A_negative_shutdown_timeout_is_refused()
    {
        CliRunner.Result result = CliRunner.Run("serve", "--model", "m.gguf", "--shutdown-timeout-s", "-1");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--shutdown-timeout-s", result.StandardError, StringComparison.Ordinal);
    }
}
