using System.Text.RegularExpressions;
using LlmPq.Tests.Stages;

namespace LlmPq.Tests.Cli;

/// <summary>The README's main command, end to end.</summary>
[Collection(NativeTests.Name)]
public sealed partial class DemoTests
{
    [Fact]
    public void Demo_plans_quantizes_serves_on_three_stages_and_leaves_no_process()
    {
        CliRunner.Result r = CliRunner.Run("demo", "--requests", "3", "--output-tokens", "8");

        Assert.True(r.ExitCode == 0, r.StandardOutput + r.StandardError);
        Assert.Contains("quantized", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("3 concurrent streaming chats", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains(", 0 failed", r.StandardOutput, StringComparison.Ordinal);
        int[] pids = [.. Pid().Matches(r.StandardOutput).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
        Assert.Equal(4, pids.Length); // the runner and three stage servers
        Assert.All(pids, pid => Assert.False(ProcessTable.Read(pid) is { Command: "ggml-rpc-server" or "dotnet", State: not 'Z' }, $"process {pid} outlived the demo"));
    }

    [GeneratedRegex(@"(?:runner process|pid) (\d+)")]
    private static partial Regex Pid();
}
