namespace LlmPq.Host.Serving;

/// <summary>Where the OpenAI-compatible endpoint listens and who may use it.</summary>
internal sealed class OpenAIServerOptions
{
    /// <summary>Gets the IP address to listen on (or <c>localhost</c>). Anything but loopback requires <see cref="ApiKey"/>.</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>Gets the TCP port; 0 picks a free one (see <see cref="OpenAIServer.GetListenUri"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Gets the key every request but <c>/health</c> must send as <c>Authorization: Bearer KEY</c>; null for none.</summary>
    public string? ApiKey { get; init; }
}
