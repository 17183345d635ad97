using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace LlmPq.Native;

/// <summary>A ggml backend device (a CPU, a GPU, or a stage server reached over RPC).</summary>
internal sealed record BackendDevice(IntPtr Pointer, string Name, string Description, GgmlBackendDeviceType Type, ulong FreeBytes, ulong TotalBytes)
{
    /// <summary>Lists every device ggml knows, RPC servers added so far included.</summary>
    public static IReadOnlyList<BackendDevice> All()
    {
        LlamaBackend.EnsureInitialized();
        int n = (int)GgmlBackendNative.ggml_backend_dev_count();
        var list = new List<BackendDevice>(n);
        for (int i = 0; i < n; i++)
        {
            list.Add(From(GgmlBackendNative.ggml_backend_dev_get((nuint)i)));
        }

        return list;
    }

    /// <summary>
    /// Registers a stage server (<c>host:port</c>) through the RPC backend's registry entry and returns its devices.
    /// Fails with <see cref="LlamaException"/> when the build has no RPC or the server cannot be reached.
    /// </summary>
    public static unsafe IReadOnlyList<BackendDevice> AddRpcServer(string endpoint, TimeSpan? connectTimeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(endpoint);
        LlamaBackend.EnsureInitialized();

        // ggml aborts the whole process when it cannot connect, so prove the endpoint answers first.
        ProbeEndpoint(endpoint, connectTimeout ?? TimeSpan.FromSeconds(5));
        IntPtr rpc = GgmlBackendNative.ggml_backend_reg_by_name("RPC");
        IntPtr add = rpc == IntPtr.Zero ? IntPtr.Zero : GgmlBackendNative.ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server");
        if (add == IntPtr.Zero)
        {
            throw new LlamaException("This llama.cpp build has no RPC backend; rebuild it with GGML_RPC=ON (eng/build-native.sh does).");
        }

        using LlamaBackend.ErrorCapture errors = LlamaBackend.CaptureErrors();
        IntPtr reg;
        IntPtr text = Marshal.StringToCoTaskMemUTF8(endpoint);
        try
        {
            reg = ((delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)add)(text);
        }
        finally
        {
            Marshal.FreeCoTaskMem(text);
        }

        if (reg == IntPtr.Zero)
        {
            throw new LlamaException($"Could not reach the stage server at {endpoint}: {errors.Summary}");
        }

        int n = (int)GgmlBackendNative.ggml_backend_reg_dev_count(reg);
        var list = new List<BackendDevice>(n);
        for (int i = 0; i < n; i++)
        {
            list.Add(From(GgmlBackendNative.ggml_backend_reg_dev_get(reg, (nuint)i)));
        }

        return list;
    }

    private static void ProbeEndpoint(string endpoint, TimeSpan timeout)
    {
        int colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !ushort.TryParse(endpoint.AsSpan(colon + 1), out ushort port) || port == 0)
        {
            throw new ArgumentException($"'{endpoint}' is not a stage server endpoint; write it as host:port (for example 127.0.0.1:50052).", nameof(endpoint));
        }

        using var client = new TcpClient();
        try
        {
            if (!client.ConnectAsync(endpoint[..colon].Trim('[', ']'), port).Wait(timeout))
            {
                throw new LlamaException($"The stage server at {endpoint} did not answer within {timeout.TotalSeconds:0.#} s.");
            }
        }
        catch (AggregateException ex) when (ex.InnerException is SocketException socket)
        {
            throw new LlamaException($"Could not reach the stage server at {endpoint}: {socket.Message}. Start it with 'llmpq stage' or ggml-rpc-server.", socket);
        }
    }

    private static unsafe BackendDevice From(IntPtr device)
    {
        nuint free, total;
        GgmlBackendNative.ggml_backend_dev_memory(device, &free, &total);
        return new BackendDevice(
            device,
            Marshal.PtrToStringUTF8((IntPtr)GgmlBackendNative.ggml_backend_dev_name(device)) ?? "?",
            Marshal.PtrToStringUTF8((IntPtr)GgmlBackendNative.ggml_backend_dev_description(device)) ?? string.Empty,
            GgmlBackendNative.ggml_backend_dev_type(device),
            free,
            total);
    }
}
