using System.Diagnostics;

namespace LlmPq.Tests.Cli;

/// <summary>Runs the built <c>llmpq</c> command line as a separate process, as a user would.</summary>
public static class CliRunner
{
    /// <summary>The result of one run.</summary>
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    /// <summary>Runs <c>llmpq</c> with the arguments and waits for it (at most two minutes).</summary>
    public static Result Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "llmpq.dll"));
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"llmpq {string.Join(' ', args)} did not finish in two minutes");
        }

        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
