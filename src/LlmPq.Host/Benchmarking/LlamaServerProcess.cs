using System.Globalization;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Host.Benchmarking;

/// <summary>llama-server from LlmPq's own native build, started on loopback as the anchor of a benchmark; it dies with this process.</summary>
internal sealed class LlamaServerProcess : IAsyncDisposable
{
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromMinutes(2);
    private readonly ChildProcess _process;

    private LlamaServerProcess(ChildProcess process, Uri baseUri)
    {
        _process = process;
        BaseUri = baseUri;
    }

    /// <summary>Gets the server's base address.</summary>
    public Uri BaseUri { get; }

    /// <summary>Starts llama-server with settings comparable to the in-process engine and waits until it is healthy.</summary>
    /// <exception cref="IOException">It exited or was not healthy in time; the message quotes its last output.</exception>
    public static async Task<LlamaServerProcess> StartAsync(string model, LlmPqOptions comparable, IReadOnlyList<string> extraArguments, ILogger? logger, CancellationToken cancellationToken)
    {
        int port = Loopback.FreePort();
        var c = CultureInfo.InvariantCulture;
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
        ChildProcess process = await ChildProcess.StartAsync(NativeLibraryLoader.ToolPath("llama-server"), [.. args, .. extraArguments], logger ?? NullLogger.Instance).ConfigureAwait(false);
        var server = new LlamaServerProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await process.WaitUntilAsync(ct => OpenAIHttpChatClient.IsHealthyAsync(http, server.BaseUri, ct), "answered /health", s_startTimeout, cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch (LlamaException ex)
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw new IOException(ex.Message, ex);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
