using System.Net;

namespace LlmPq.Host.Serving;

/// <summary>Where the OpenAI-compatible endpoint listens, who may use it, and how it stops.</summary>
internal sealed class OpenAIServerOptions
{
    /// <summary>Gets the IP address to listen on (or <c>localhost</c>). Anything but loopback requires <see cref="ApiKey"/>.</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>Gets the TCP port; 0 picks a free one (see <see cref="OpenAIServer.GetListenUri"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Gets the key every request but <c>/health</c> must send as <c>Authorization: Bearer KEY</c>; null for none.</summary>
    public string? ApiKey { get; init; }

    /// <summary>
    /// Gets how long a stopping server lets the requests in flight finish (new ones get 503) before it ends them with an
    /// error.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets the largest request body accepted; a larger one is answered 413 before it is read.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Gets a value indicating whether <c>/metrics</c> answers without the API key (for a scraper that cannot send it).</summary>
    public bool MetricsUnauthenticated { get; init; }

    /// <summary>Gets the base address of an OpenTelemetry collector (OTLP over HTTP) to push metrics and traces to; null for none.</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">The options are invalid, or ask for a non-loopback address without an API key.</exception>
    public void Validate()
    {
        IPAddress address = OpenAIServer.ParseAddress(Address);
        if (Port is < IPEndPoint.MinPort or > IPEndPoint.MaxPort)
        {
            throw new ArgumentException($"Port {Port} is out of range (0 to {IPEndPoint.MaxPort}).");
        }

        if (ApiKey is { } key && string.IsNullOrWhiteSpace(key))
        {
            throw new ArgumentException("The API key is empty.");
        }

        if (!IPAddress.IsLoopback(address) && ApiKey is null)
        {
            throw new ArgumentException(
                $"Refusing to listen on {address} without an API key: beyond loopback, anyone who reaches the port could use the model. "
                + "Give an API key, or listen on 127.0.0.1.");
        }

        if (ShutdownTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException($"The shutdown timeout must not be negative; it is {ShutdownTimeout.TotalSeconds} s.");
        }

        if (MaxRequestBodyBytes <= 0)
        {
            throw new ArgumentException($"The request size limit must be positive; it is {MaxRequestBodyBytes} bytes.");
        }
    }
}
