using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace LlmPq.Tests.Stages;

/// <summary>
/// A stand-in for ggml-rpc-server that answers HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY with chosen values, or
/// closes the connection after the first byte: for what a real server of this build never says.
/// </summary>
public sealed class FakeStageServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _serving;

    /// <summary>Starts serving one client after another.</summary>
    /// <param name="version">The protocol version the HELLO reply names.</param>
    /// <param name="devices">Free and total bytes of each device.</param>
    /// <param name="hangUp">Close each connection after reading the command byte instead of answering.</param>
    public FakeStageServer(Version version, (ulong Free, ulong Total)[] devices, bool hangUp = false)
    {
        _listener.Start();
        _serving = ServeAsync(version, devices, hangUp, _stop.Token);
    }

    /// <summary>Gets the endpoint, <c>127.0.0.1:port</c>.</summary>
    public string Endpoint => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _serving;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task ServeAsync(Version version, (ulong Free, ulong Total)[] devices, bool hangUp, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            using TcpClient client = await _listener.AcceptTcpClientAsync(ct);
            NetworkStream stream = client.GetStream();
            try
            {
                while (true)
                {
                    byte[] header = new byte[9];
                    await stream.ReadExactlyAsync(header, ct);
                    if (hangUp)
                    {
                        break;
                    }

                    byte[] payload = new byte[BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(1))];
                    await stream.ReadExactlyAsync(payload, ct);
                    byte[] reply = header[0] switch
                    {
                        14 => [(byte)version.Major, (byte)version.Minor, (byte)version.Build, 0, .. new byte[24]],
                        15 => BitConverter.GetBytes((uint)devices.Length),
                        11 => [.. BitConverter.GetBytes(devices[BinaryPrimitives.ReadUInt32LittleEndian(payload)].Free), .. BitConverter.GetBytes(devices[BinaryPrimitives.ReadUInt32LittleEndian(payload)].Total)],
                        _ => throw new InvalidDataException($"unexpected command {header[0]}"),
                    };
                    await stream.WriteAsync(BitConverter.GetBytes((ulong)reply.Length), ct);
                    await stream.WriteAsync(reply, ct);
                }
            }
            catch (EndOfStreamException)
            {
                // The client is done.
            }
        }
    }
}
