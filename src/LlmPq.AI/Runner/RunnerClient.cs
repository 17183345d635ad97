using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace LlmPq.Runner;

/// <summary>The caller's side of <see cref="RunnerProtocol"/>: a request per connection to the runner's socket.</summary>
/// <param name="socketPath">The runner's socket.</param>
/// <param name="lostReason">Says why the runner went away, when it did (for example the stage that failed).</param>
internal sealed class RunnerClient(string socketPath, Func<string> lostReason)
{
    /// <summary>Gets whether the runner answers a probe.</summary>
    public async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var _ in SendAsync(new RunnerProtocol.Request(null, null, Ping: true), cancellationToken).ConfigureAwait(false))
            {
            }

            return true;
        }
        catch (LlmPqUnavailableException)
        {
            return false;
        }
    }

    /// <summary>Asks the runner for its engine's running iteration and the measurements it made since the last heartbeat.</summary>
    /// <returns>The answer; null when the runner cannot be reached (it exited, or has not started).</returns>
    public async Task<RunnerProtocol.Reply?> HeartbeatAsync(CancellationToken cancellationToken)
    {
        try
        {
            RunnerProtocol.Reply? last = null;
            await foreach (RunnerProtocol.Reply reply in SendAsync(new RunnerProtocol.Request(null, null, Heartbeat: true), cancellationToken).ConfigureAwait(false))
            {
                last = reply;
            }

            return last;
        }
        catch (Exception ex) when (ex is LlmPqUnavailableException or IOException)
        {
            return null;
        }
    }

    /// <summary>Streams the answer to a chat request from the runner.</summary>
    /// <exception cref="LlmPqUnavailableException">The runner cannot be reached or went away mid-answer.</exception>
    public async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (RunnerProtocol.Reply reply in SendAsync(RunnerProtocol.Request.For(messages, options), cancellationToken).ConfigureAwait(false))
        {
            if (reply.Update is { } update)
            {
                yield return update;
            }
        }
    }

    // Every reply line up to and including the last one (done); an error reply is thrown.
    private async IAsyncEnumerable<RunnerProtocol.Reply> SendAsync(RunnerProtocol.Request request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new LlmPqUnavailableException($"The LlmPq pipeline is not serving ({lostReason()}); retry when it is ready.", ex);
        }

        await using var stream = new NetworkStream(socket, ownsSocket: true);
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        await using (var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true))
        {
            await writer.WriteLineAsync(JsonSerializer.Serialize(request, RunnerProtocol.Json).AsMemory(), cancellationToken).ConfigureAwait(false);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        while (true)
        {
            string? line;
            try
            {
                line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                throw Lost(ex);
            }

            if (line is null)
            {
                throw Lost(null);
            }

            RunnerProtocol.Reply reply = JsonSerializer.Deserialize<RunnerProtocol.Reply>(line, RunnerProtocol.Json)
                ?? throw new InvalidDataException("The runner sent a null reply.");
            if (reply.Error is { } error)
            {
                throw error.ToException();
            }

            yield return reply;
            if (reply.Done)
            {
                yield break;
            }
        }
    }

    private LlmPqUnavailableException Lost(Exception? cause)
    {
        string message = $"The LlmPq pipeline stopped mid-answer: {lostReason()}. It is restarting; retry the request.";
        return cause is null ? new LlmPqUnavailableException(message) : new LlmPqUnavailableException(message, cause);
    }
}
