using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using LlmPq.Native;

namespace LlmPq.Stages;

/// <summary>A stage the coordinator is about to load layers onto: its server's endpoint and the memory its layers need.</summary>
/// <param name="Name">The stage's name (its device's name in the plan), for messages.</param>
/// <param name="Endpoint">The stage server, <c>host:port</c> (IPv4: ggml's RPC speaks nothing else).</param>
/// <param name="RequiredBytes">The bytes the plan puts on its device (weights, KV cache, compute buffers); 0 checks nothing.</param>
internal sealed record StageRequirement(string Name, string Endpoint, long RequiredBytes);

/// <summary>The memory of one device of a stage server, as the server reports it.</summary>
/// <param name="FreeBytes">Free bytes.</param>
/// <param name="TotalBytes">Total bytes.</param>
internal readonly record struct StageDeviceMemory(ulong FreeBytes, ulong TotalBytes);

/// <summary>What a stage server said about itself.</summary>
/// <param name="Endpoint">Its endpoint.</param>
/// <param name="Protocol">Its RPC protocol version.</param>
/// <param name="Devices">The memory of each device it serves.</param>
internal sealed record StageServerInfo(string Endpoint, Version Protocol, IReadOnlyList<StageDeviceMemory> Devices);

/// <summary>
/// Checks stage servers before the coordinator loads onto them: each is reachable, speaks the RPC protocol of this
/// build, serves one device, and has the free memory its stage needs. It talks ggml's RPC protocol itself (HELLO,
/// DEVICE_COUNT, GET_DEVICE_MEMORY; <c>ggml/src/ggml-rpc/ggml-rpc.cpp</c>), because ggml's own client aborts the
/// whole process on an unreachable server or a version mismatch.
/// </summary>
internal static class StageEndpointCheck
{
    /// <summary>The RPC protocol of the pinned build (<c>RPC_PROTO_*_VERSION</c> in its <c>ggml-rpc.h</c>).</summary>
    public static readonly Version ProtocolVersion = new(7, 0, 0);

    // Command codes and message sizes of that protocol version (ggml-rpc.cpp: enum rpc_cmd and the rpc_msg_* structs, packed).
    private const byte CommandGetDeviceMemory = 11;
    private const byte CommandHello = 14;
    private const byte CommandDeviceCount = 15;
    private const int ConnectionCapsSize = 24;
    private const int HelloResponseSize = 4 + ConnectionCapsSize;
    private const int MaxDevices = 64; // more than any machine has: a larger count is not a stage server talking

    /// <summary>Checks every stage at once and fails with all the problems found.</summary>
    /// <param name="stages">The stages.</param>
    /// <param name="timeout">How long each server may take to answer.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>What each server said, in the order of <paramref name="stages"/>.</returns>
    /// <exception cref="LlamaException">A stage server is not fit to load; the message names each one and what to do.</exception>
    public static async Task<IReadOnlyList<StageServerInfo>> CheckAsync(IReadOnlyList<StageRequirement> stages, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stages);
        Task<StageServerInfo>[] probes = [.. stages.Select(s => CheckOneAsync(s, timeout, cancellationToken))];
        try
        {
            return await Task.WhenAll(probes).ConfigureAwait(false);
        }
        catch (LlamaException)
        {
            string[] problems = [.. probes.Where(p => p.IsFaulted).Select(p => p.Exception!.InnerException).OfType<LlamaException>().Select(e => "  " + e.Message)];
            throw new LlamaException(string.Create(
                CultureInfo.InvariantCulture,
                $"{problems.Length} of {stages.Count} stage servers cannot take their stage:{Environment.NewLine}{string.Join(Environment.NewLine, problems)}"));
        }
    }

    /// <summary>Asks a stage server for its protocol version and the memory of its devices.</summary>
    /// <param name="endpoint">The server, <c>host:port</c>.</param>
    /// <param name="timeout">How long it may take to connect and answer.</param>
    /// <param name="cancellationToken">Cancels the exchange.</param>
    /// <returns>What it said.</returns>
    /// <exception cref="ArgumentException"><paramref name="endpoint"/> is not <c>host:port</c>.</exception>
    /// <exception cref="LlamaException">It cannot be reached, or answers in another protocol; the message says what to do.</exception>
    public static async Task<StageServerInfo> ProbeAsync(string endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        (string host, int port) = ParseEndpoint(endpoint);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        using var client = new TcpClient { NoDelay = true };
        string step = "connect";
        try
        {
            await client.ConnectAsync(host, port, deadline.Token).ConfigureAwait(false);
            NetworkStream stream = client.GetStream();

            step = "answer the RPC hello";
            byte[] hello = await RequestAsync(stream, CommandHello, new byte[ConnectionCapsSize], HelloResponseSize, deadline.Token).ConfigureAwait(false);
            var version = new Version(hello[0], hello[1], hello[2]);
            if (version != ProtocolVersion)
            {
                throw new LlamaException(
                    $"The stage server at {endpoint} speaks RPC protocol {version}, this build {ProtocolVersion}: the coordinator and its stage servers must come " +
                    $"from the same llama.cpp build (node-llama-cpp {NativeLibraryLoader.NodeLlamaCppVersion}, ggml {NativeLibraryLoader.PinnedGgmlVersion}). " +
                    "Build LlmPq there (eng/build-native.sh) and start the server with 'llmpq stage'.");
            }

            step = "report its devices";
            byte[] count = await RequestAsync(stream, CommandDeviceCount, [], sizeof(uint), deadline.Token).ConfigureAwait(false);
            uint devices = BinaryPrimitives.ReadUInt32LittleEndian(count);
            if (devices > MaxDevices)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"it reports {devices} devices"));
            }

            var memory = new StageDeviceMemory[devices];
            for (int i = 0; i < memory.Length; i++)
            {
                byte[] request = new byte[sizeof(uint)];
                BinaryPrimitives.WriteUInt32LittleEndian(request, (uint)i);
                byte[] reply = await RequestAsync(stream, CommandGetDeviceMemory, request, 2 * sizeof(ulong), deadline.Token).ConfigureAwait(false);
                memory[i] = new StageDeviceMemory(BinaryPrimitives.ReadUInt64LittleEndian(reply), BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(sizeof(ulong))));
            }

            return new StageServerInfo(endpoint, version, memory);
        }
        catch (SocketException ex)
        {
            throw new LlamaException($"Could not reach the stage server at {endpoint} ({ex.Message}). Start it there with 'llmpq stage --port {port}', or check the address and the firewall.", ex);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new LlamaException(
                string.Create(CultureInfo.InvariantCulture, $"The stage server at {endpoint} did not {step} within {timeout.TotalSeconds:0.#} s. ") +
                "A stage server serves one client at a time: is another coordinator connected to it? Or is something other than ggml-rpc-server listening there?",
                ex);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException)
        {
            throw new LlamaException(
                $"The stage server at {endpoint} did not {step} the way ggml-rpc-server {ProtocolVersion} does ({ex.Message}): it is another llama.cpp version, or not a stage server. " +
                "Start it with 'llmpq stage' of this build.",
                ex);
        }
    }

    /// <summary>Checks what a stage server said against what its stage needs.</summary>
    /// <param name="info">What it said.</param>
    /// <param name="stage">The stage's name, for the message.</param>
    /// <param name="requiredBytes">The bytes the stage needs on its device; 0 checks nothing.</param>
    /// <exception cref="LlamaException">It serves not exactly one device, or that device has too little free memory.</exception>
    public static void Verify(StageServerInfo info, string stage, long requiredBytes)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (info.Devices.Count != 1)
        {
            throw new LlamaException(string.Create(
                CultureInfo.InvariantCulture,
                $"The stage server of '{stage}' at {info.Endpoint} serves {info.Devices.Count} devices; a stage is one device (the devices of one server are not pipelined). Start one server per device: 'llmpq stage --device NAME'."));
        }

        StageDeviceMemory device = info.Devices[0];
        if (requiredBytes > 0 && device.FreeBytes < (ulong)requiredBytes)
        {
            throw new LlamaException(
                $"The stage server of '{stage}' at {info.Endpoint} has {Mib(device.FreeBytes)} MiB free of {Mib(device.TotalBytes)} MiB, but its stage needs {Mib((ulong)requiredBytes)} MiB. " +
                "Free memory on that machine, or plan again with the memory it has (memoryGiB in the cluster file).");
        }
    }

    /// <summary>Splits <c>host:port</c>.</summary>
    /// <param name="endpoint">The endpoint.</param>
    /// <returns>The host and the port.</returns>
    /// <exception cref="ArgumentException">It is not <c>host:port</c> with a port from 1 to 65535.</exception>
    public static (string Host, int Port) ParseEndpoint(string endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        int colon = endpoint.LastIndexOf(':');
        return colon > 0 && ushort.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) && port > 0
            ? (endpoint[..colon], port)
            : throw new ArgumentException($"'{endpoint}' is not a stage server endpoint; write it as host:port (for example 127.0.0.1:50052).", nameof(endpoint));
    }

    private static async Task<byte[]> RequestAsync(NetworkStream stream, byte command, byte[] payload, int responseSize, CancellationToken cancellationToken)
    {
        // Request: | command u8 | size u64 | payload |; response: | size u64 | payload |, little-endian.
        byte[] request = new byte[1 + sizeof(ulong) + payload.Length];
        request[0] = command;
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(1), (ulong)payload.Length);
        payload.AsSpan().CopyTo(request.AsSpan(1 + sizeof(ulong)));
        await stream.WriteAsync(request, cancellationToken).ConfigureAwait(false);

        byte[] size = new byte[sizeof(ulong)];
        await stream.ReadExactlyAsync(size, cancellationToken).ConfigureAwait(false);
        ulong actual = BinaryPrimitives.ReadUInt64LittleEndian(size);
        if (actual != (ulong)responseSize)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"a reply of {actual} bytes where {responseSize} were expected"));
        }

        byte[] response = new byte[responseSize];
        await stream.ReadExactlyAsync(response, cancellationToken).ConfigureAwait(false);
        return response;
    }

    private static async Task<StageServerInfo> CheckOneAsync(StageRequirement stage, TimeSpan timeout, CancellationToken cancellationToken)
    {
        StageServerInfo info;
        try
        {
            info = await ProbeAsync(stage.Endpoint, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (LlamaException ex)
        {
            throw new LlamaException($"'{stage.Name}': {ex.Message}", ex);
        }

        Verify(info, stage.Name, stage.RequiredBytes);
        return info;
    }

    private static ulong Mib(ulong bytes) => bytes >> 20;
}
