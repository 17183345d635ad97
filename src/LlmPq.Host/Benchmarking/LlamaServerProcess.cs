using System.Diagnostics;
using System.Globalization;
using LlmPq.Native;

namespace LlmPq.Host.Benchmarking;

/// <summary>llama-server from LlmPq's own native build, started on loopback as the anchor of a benchmark.</summary>
internal sealed class LlamaServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private LlamaServerProcess(Process process, Uri baseUri)
    {
        _process = process;
        BaseUri = baseUri;
    }

    /// <summary>Gets the server's base address.</summary>
    public Uri BaseUri { get; }

    /// <summary>Starts llama-server with settings comparable to the in-process engine and waits until it is healthy.</summary>
    public static async Task<LlamaServerProcess> StartAsync(string model, LlmPqOptions comparable, IReadOnlyList<string> extraArguments, CancellationToken cancellationToken)
    {
        int port = Loopback.FreePort();
        var c = CultureInfo.InvariantCulture;
        var psi = new ProcessStartInfo(NativeLibraryLoader.ToolPath("llama-server")) { RedirectStandardOutput = true, RedirectStandardError = true };
        string[] args =
        [
            "-m", model, "--host", "127.0.0.1", "--port", port.ToString(c),
            "-np", comparable.MaxSequences.ToString(c),
            "-c", ((long)comparable.ContextLength * comparable.MaxSequences).ToString(c),
            "-b", Math.Max(comparable.TokenBudget, comparable.MaxSequences).ToString(c),
            "-ub", Math.Max(comparable.TokenBudget, comparable.MaxSequences).ToString(c),
            "-t", (comparable.Threads > 0 ? comparable.Threads : Environment.ProcessorCount).ToString(c),
            "--no-kv-unified", "--no-webui",
        ];
        foreach (string a in args.Concat(extraArguments))
        {
            psi.ArgumentList.Add(a);
        }

        var process = Process.Start(psi) ?? throw new IOException("llama-server did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new LlamaServerProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (process.HasExited)
            {
                throw new IOException($"llama-server exited with code {process.ExitCode} at start.");
            }

            try
            {
                using HttpResponseMessage health = await http.GetAsync(new Uri(server.BaseUri, "health"), cancellationToken).ConfigureAwait(false);
                if (health.IsSuccessStatusCode)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }

            await Task.Delay(200, cancellationToken).ConfigureAwait(false);
        }

        await server.DisposeAsync().ConfigureAwait(false);
        throw new TimeoutException("llama-server did not become healthy within two minutes.");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }

        _process.Dispose();
    }
}
