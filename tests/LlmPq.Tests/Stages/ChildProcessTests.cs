using System.Diagnostics;
using System.Globalization;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Stages;

/// <summary>The one helper every child process goes through: output, readiness, errors, and cleanup.</summary>
[Collection(NativeTests.Name)]
public sealed class ChildProcessTests
{
    [Fact]
    public async Task A_process_that_exits_before_it_listens_is_an_error_quoting_its_output()
    {
        await using ChildProcess p = await Shell("echo starting; echo 'bad flag' >&2; exit 3");
        int port = Loopback.FreePort();
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => p.WaitForPortAsync("127.0.0.1", port, TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Contains("sh exited with code 3", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("starting", ex.Message, StringComparison.Ordinal);
        Assert.Contains("bad flag", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_process_that_never_listens_times_out_with_its_output()
    {
        await using ChildProcess p = await Shell("echo waiting; exec sleep 600");
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => p.WaitForPortAsync("127.0.0.1", Loopback.FreePort(), TimeSpan.FromSeconds(1), CancellationToken.None));
        Assert.Contains("had not listened", ex.Message, StringComparison.Ordinal);
        Assert.Contains("waiting", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Its_output_reaches_the_logger_and_success_returns_standard_output()
    {
        var sink = new ListLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink));
        string output;
        await using (ChildProcess ok = await ChildProcess.StartAsync("/bin/sh", ["-c", "echo out; echo err >&2"], loggers.CreateLogger("test"), keepStandardOutput: true))
        {
            output = await ok.WaitForSuccessAsync(CancellationToken.None);
        }

        Assert.Equal("out" + Environment.NewLine, output);
        Assert.Contains(sink.Lines, l => l.Message.EndsWith(": err", StringComparison.Ordinal));

        await using ChildProcess failing = await ChildProcess.StartAsync("/bin/sh", ["-c", "echo nope >&2; exit 2"], loggers.CreateLogger("test"));
        LlamaException ex = await Assert.ThrowsAsync<LlamaException>(() => failing.WaitForSuccessAsync(CancellationToken.None));
        Assert.Contains("exit code 2", ex.Message, StringComparison.Ordinal);
        Assert.Contains("nope", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disposing_it_kills_the_whole_tree()
    {
        ChildProcess p = await Shell("sleep 600 & echo $!; wait");
        int grandchild = await FirstNumberPrinted(p);
        ProcessTable.Entry entry = ProcessTable.Read(grandchild)!;
        Assert.Equal(p.Id, entry.ParentPid);

        await p.DisposeAsync();

        Assert.True(ProcessTable.WaitUntilGone(entry), $"the grandchild {grandchild} outlived the disposed child");
    }

    private static Task<ChildProcess> Shell(string script) =>
        ChildProcess.StartAsync("/bin/sh", ["-c", script], Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    private static async Task<int> FirstNumberPrinted(ChildProcess p)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            string line = p.LastOutput.Trim();
            if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                return pid;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the script printed no pid");
            await Task.Delay(20);
        }
    }
}
