using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace LlmPq.Host.Serving;

/// <summary>
/// The OpenAI-compatible HTTP endpoint of <c>llmpq serve</c> (<c>/v1/chat/completions</c>, <c>/v1/models</c>,
/// <c>/health</c>) over whatever <see cref="IChatClient"/> the caller registers.
/// </summary>
internal static class OpenAIServer
{
    /// <summary>The largest request headers answered (Kestrel's default limit); larger ones get 431.</summary>
    private const int MaxHeaderBytes = 32 * 1024;

    /// <summary>Builds the server, runs it until <paramref name="cancellationToken"/> fires or the host is stopped, and stops it.</summary>
    /// <param name="options">Where to listen and the API key.</param>
    /// <param name="configureServices">Registers the <see cref="IChatClient"/>, logging, and optionally an <see cref="IServerReadiness"/>.</param>
    /// <param name="cancellationToken">Stops the server.</param>
    /// <exception cref="ArgumentException">The options are invalid, or ask for a non-loopback address without an API key.</exception>
    public static async Task RunAsync(OpenAIServerOptions options, Action<IServiceCollection> configureServices, CancellationToken cancellationToken)
    {
        WebApplication app = Build(options, configureServices);
        await using (app.ConfigureAwait(false))
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            await app.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Builds the server without starting it.</summary>
    /// <param name="options">Where to listen and the API key.</param>
    /// <param name="configureServices">Registers the <see cref="IChatClient"/>, logging, and optionally an <see cref="IServerReadiness"/>.</param>
    /// <returns>The application; start it with <c>StartAsync</c>, then <see cref="GetListenUri"/> tells where it listens.</returns>
    /// <exception cref="ArgumentException">The options are invalid, or ask for a non-loopback address without an API key.</exception>
    public static WebApplication Build(OpenAIServerOptions options, Action<IServiceCollection> configureServices)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(configureServices);
        options.Validate();
        IPAddress address = ParseAddress(options.Address);
        bool loopback = IPAddress.IsLoopback(address);

        // The empty builder reads no configuration files or environment variables and adds no log providers: only these
        // options choose the address, and the caller's services decide the rest.
        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;

            // Kestrel answers headers over its limit itself, with an empty body; a higher limit there lets LimitHeaders
            // answer the usual sizes with an OpenAI error.
            kestrel.Limits.MaxRequestHeadersTotalSize = 8 * MaxHeaderBytes;
            kestrel.Listen(address, options.Port);
        });

        // The host's own limit only bounds the drain, which ends the requests at the grace period.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout + TimeSpan.FromSeconds(10));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<ServerDrain>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ServerDrain>());
        builder.Services.AddRoutingCore();
        ServerTelemetry.Add(builder.Services, options);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<OpenAIEndpoints>();
        configureServices(builder.Services);

        WebApplication app = builder.Build();
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OpenAIServer));
        if (!loopback)
        {
            ServingLog.ListeningBeyondLoopback(logger, address);
        }

        app.Lifetime.ApplicationStarted.Register(() => ServingLog.Listening(logger, GetListenUri(app)));
        app.Use(LimitHeaders);
        app.Use(app.Services.GetRequiredService<ServerDrain>().InvokeAsync);
        if (options.ApiKey is { } apiKey)
        {
            app.Use(RequireApiKey(apiKey, options.MetricsUnauthenticated, logger));
        }

        OpenAIEndpoints endpoints = app.Services.GetRequiredService<OpenAIEndpoints>();
        app.MapPost("/v1/chat/completions", endpoints.ChatCompletionsAsync);
        app.MapGet("/v1/models", endpoints.ModelsAsync);
        app.MapGet("/health", OpenAIEndpoints.HealthAsync);
        app.MapPrometheusScrapingEndpoint(ServerTelemetry.MetricsPath);
        app.MapFallback(OpenAIEndpoints.NotFoundAsync);
        return app;
    }

    /// <summary>Gets the address a started server listens on, with the port it was given when it asked for port 0.</summary>
    /// <exception cref="InvalidOperationException">The server has not started.</exception>
    public static Uri GetListenUri(WebApplication app) =>
        app.Urls.FirstOrDefault() is { } url ? new Uri(url) : throw new InvalidOperationException("The server has not started.");

    /// <summary>Reads the address to listen on.</summary>
    /// <exception cref="ArgumentException">It is not an IP address or <c>localhost</c>.</exception>
    public static IPAddress ParseAddress(string address) =>
        string.Equals(address, "localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
        : IPAddress.TryParse(address, out IPAddress? ip) ? ip
        : throw new ArgumentException($"'{address}' is not an IP address to listen on (for example 127.0.0.1, ::1 or 0.0.0.0).");

    private static Task LimitHeaders(HttpContext context, RequestDelegate next)
    {
        long size = 0;
        foreach (KeyValuePair<string, StringValues> header in context.Request.Headers)
        {
            size += header.Key.Length + header.Value.Sum(v => v?.Length ?? 0);
        }

        return size <= MaxHeaderBytes
            ? next(context)
            : new OpenAIError(431, "invalid_request_error", $"The request headers are {size} bytes; at most {MaxHeaderBytes} are accepted.").WriteAsync(context);
    }

    private static Func<HttpContext, RequestDelegate, Task> RequireApiKey(string apiKey, bool metricsUnauthenticated, ILogger logger)
    {
        // Comparing hashes keeps the comparison constant-time whatever the length of the key sent.
        byte[] expected = SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));
        return (context, next) =>
        {
            // /health stays open so that load balancers and supervisors can probe without the key.
            if (context.Request.Path == "/health"
                || (metricsUnauthenticated && context.Request.Path == ServerTelemetry.MetricsPath)
                || HasApiKey(context.Request, expected))
            {
                return next(context);
            }

            ServingLog.Unauthorized(logger, context.Request.Method, context.Request.Path, context.Connection.RemoteIpAddress);
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return new OpenAIError(
                401, "invalid_request_error", "Missing or incorrect API key: send it as 'Authorization: Bearer KEY'.", Code: "invalid_api_key")
                .WriteAsync(context);
        };
    }

    private static bool HasApiKey(HttpRequest request, byte[] expected)
    {
        const string Scheme = "Bearer ";
        string? header = request.Headers.Authorization;
        return header is not null
            && header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)
            && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim())), expected);
    }
}
