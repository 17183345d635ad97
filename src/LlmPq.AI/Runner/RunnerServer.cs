using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LlmPq.Stages;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace LlmPq.Runner;

/// <summary>
/// The runner's side of <see cref="RunnerProtocol"/>: serves an <see cref="IChatClient"/> (the in-process chat client
/// over the engine) on a Unix domain socket, a request per connection.
/// </summary>
internal static partial class RunnerServer
{
    /// <summary>Serves <paramref name="client"/> on <paramref name="socketPath"/> until cancelled; heartbeats report <paramref name="iterations"/> and carry <paramref name="metrics"/>.</summary>
    public static async Task ServeAsync(IChatClient client, IterationWatch iterations, MetricRelay.Collector metrics, string socketPath, ILogger logger, CancellationToken cancellationToken)
    {
        File.Delete(socketPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(64);
        LogListening(logger, socketPath);
        var connections = new List<Task>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Socket socket = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                connections.RemoveAll(t => t.IsCompleted);
                connections.Add(HandleAsync(client, iterations, metrics, socket, logger, cancellationToken));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            await Task.WhenAll(connections).ConfigureAwait(false);
            File.Delete(socketPath);
        }
    }

    private static async Task HandleAsync(IChatClient client, IterationWatch iterations, MetricRelay.Collector metrics, Socket socket, ILogger logger, CancellationToken stopping)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true) { AutoFlush = true };
        try
        {
            string? line = await reader.ReadLineAsync(cts.Token).ConfigureAwait(false);
            if (line is null)
            {
                return;
            }

            RunnerProtocol.Request request = JsonSerializer.Deserialize<RunnerProtocol.Request>(line, RunnerProtocol.Json)
                ?? throw new JsonException("The runner request is null.");
            if (request.Ping || request.Heartbeat)
            {
                // Answered off the engine's loop thread, which a frozen stage blocks: that is what the watchdog needs to see.
                RunnerProtocol.Reply reply = request.Heartbeat ? new(Done: true, Iteration: iterations.Report(), Metrics: metrics.Drain()) : new(Done: true);
                await WriteAsync(writer, reply, cts.Token).ConfigureAwait(false);
                return;
            }

            // The client closing its end is a cancellation: watch for it while the answer streams.
            _ = WatchForCloseAsync(reader, cts);
            await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync(request.Messages ?? [], request.ToOptions(), cts.Token).ConfigureAwait(false))
            {
                await WriteAsync(writer, new RunnerProtocol.Reply(update), cts.Token).ConfigureAwait(false);
            }

            await WriteAsync(writer, new RunnerProtocol.Reply(Done: true), cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
            // The client went away mid-answer; nothing to tell it.
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogRequestFailed(logger, ex);
            try
            {
                await WriteAsync(writer, new RunnerProtocol.Reply(Error: RunnerProtocol.Failure.From(ex)), stopping).ConfigureAwait(false);
            }
            catch (IOException)
            {
            }
        }
        finally
        {
            await cts.CancelAsync().ConfigureAwait(false);
        }
    }

    private static async Task WatchForCloseAsync(StreamReader reader, CancellationTokenSource cts)
    {
        try
        {
            // Nothing more is sent on a request connection; end of stream means the client hung up.
            await reader.ReadLineAsync(cts.Token).ConfigureAwait(false);
            await cts.CancelAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
    }

    private static Task WriteAsync(StreamWriter writer, RunnerProtocol.Reply reply, CancellationToken cancellationToken) =>
        writer.WriteLineAsync(JsonSerializer.Serialize(reply, RunnerProtocol.Json).AsMemory(), cancellationToken);

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Runner listening on {SocketPath}")]
    private static partial void LogListening(ILogger logger, string socketPath);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "A runner request failed")]
    private static partial void LogRequestFailed(ILogger logger, Exception exception);
}
