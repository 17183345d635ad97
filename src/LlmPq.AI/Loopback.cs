using System.Net;
using System.Net.Sockets;

namespace LlmPq;

/// <summary>Loopback helpers for the local servers LlmPq starts (stage servers, llama-server anchors).</summary>
internal static class Loopback
{
    /// <summary>Gets a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
