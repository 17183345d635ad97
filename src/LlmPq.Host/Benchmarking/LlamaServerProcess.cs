using System.Globalization;
using LlmPq.Native;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Host.Benchmarking;

/// <summary>How llama-server is configured beside the in-process engine.</summary>
internal enum LlamaServerSetup
{
    /// <summary>The engine's budget: <c>-b</c> and <c>-ub</c> are the token budget, each sequence has its own KV cache.</summary>
    SameBudget,

    /// <summary>
    /// As users start it: its own batch sizes (<c>-b 2048 -ub 512</c> in this build) and one KV cache shared by all
    /// slots (the default only without <c>-np</c>, so asked for); the prompt cache and its RAM cache stay on, as by default.
    /// </summary>
    Defaults,
}

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

    /// <summary>
    /// Starts llama-server with the engine's sequences, context per sequence and threads, and the batch sizes and KV
    /// cache of <paramref name="setup"/>, and waits until it is healthy.
    /// </summary>
    /// <exception cref="IOException">It exited or was not healthy in time; the message quotes its last output.</exception>
    public static async Task<LlamaServerProcess> StartAsync(string model, LlmPqOptions comparable, LlamaServerSetup setup, ILogger? logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(comparable);
        int port = Loopback.FreePort();
        var c = CultureInfo.InvariantCulture;
        string batch = Math.Max(comparable.TokenBudget, comparable.MaxSequences).ToString(c);
        string[] args =
        [
            "-m", model, "--host", "127.0.0.1", "--port", port.ToString(c),
            "-np", comparable.MaxSequences.ToString(c),
            "-c", ((long)comparable.ContextLength * comparable.MaxSequences).ToString(c),
            "-t", (comparable.Threads > 0 ? comparable.Threads : Environment.ProcessorCount).ToString(c),
            "--no-webui",
            .. setup == LlamaServerSetup.SameBudget ? ["-b", batch, "-ub", batch, "--no-kv-unified"] : new[] { "--kv-unified" },
        ];
        ChildProcess process = await ChildProcess.StartAsync(NativeLibraryLoader.ToolPath("llama-server"), args, logger ?? NullLogger.Instance).ConfigureAwait(false);
        var server = new LlamaServerProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await process.WaitUntilAsync(ct => OpenAITarget.IsHealthyAsync(http, server.BaseUri, ct), "answered /health", s_startTimeout, cancellationToken).ConfigureAwait(false);
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
