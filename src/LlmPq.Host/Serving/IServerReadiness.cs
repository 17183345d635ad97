namespace LlmPq.Host.Serving;

/// <summary>
/// Tells <c>GET /health</c> whether the server can take requests (the model is loaded, the stages are up). Register one
/// in the services of <see cref="OpenAIServer.Build"/>; without one the server reports itself ready.
/// </summary>
internal interface IServerReadiness
{
    /// <summary>Gets a value indicating whether requests can be served now.</summary>
    bool IsReady { get; }
}
