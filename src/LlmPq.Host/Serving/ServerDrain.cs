using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LlmPq.Host.Serving;

/// <summary>
/// Lets a stopping server finish or fail, visibly, every request it accepted. Once the host begins to stop, new requests
/// get a 503 with <c>Retry-After</c> while those in flight run on for the grace period; then <see cref="GraceOver"/>
/// cancels them, and each ends with an OpenAI error (a 503, or an error event on a started stream). The drain runs in
/// <see cref="StoppingAsync"/>, before any hosted service stops, so Kestrel still listens and the model still serves.
/// </summary>
internal sealed class ServerDrain(OpenAIServerOptions options, ILogger<ServerDrain> logger) : IHostedLifecycleService, IDisposable
{
    private readonly CancellationTokenSource _graceOver = new();
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;
    private int _stopping;

    /// <summary>Gets a token that fires when the grace period is over and the requests still in flight must end.</summary>
    public CancellationToken GraceOver => _graceOver.Token;

    /// <summary>Gets the error of a request refused or cut short because the server is stopping.</summary>
    public static OpenAIError ShuttingDown { get; } =
        new(503, "server_error", "The server is shutting down; retry on another instance or later.", Code: "service_unavailable");

    /// <summary>The middleware: counts the requests in flight, and refuses new ones once the server is stopping.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        // Counting before looking at the flag means the drain either sees this request or this request sees the flag.
        Interlocked.Increment(ref _inFlight);
        try
        {
            if (Volatile.Read(ref _stopping) != 0)
            {
                await ShuttingDown.WriteAsync(context).ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        }
        finally
        {
            if (Interlocked.Decrement(ref _inFlight) == 0 && Volatile.Read(ref _stopping) != 0)
            {
                _idle.TrySetResult();
            }
        }
    }

    /// <summary>Waits for the requests in flight, at most the grace period, then cancels the rest and waits for them to end.</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        Interlocked.Exchange(ref _stopping, 1);
        int inFlight = Volatile.Read(ref _inFlight);
        if (inFlight == 0)
        {
            _idle.TrySetResult();
            return;
        }

        ServingLog.Draining(logger, inFlight, (long)options.ShutdownTimeout.TotalSeconds);
        try
        {
            await _idle.Task.WaitAsync(options.ShutdownTimeout, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (TimeoutException)
        {
            ServingLog.DrainTimedOut(logger, Volatile.Read(ref _inFlight));
        }
        catch (OperationCanceledException)
        {
            // The host's own shutdown timeout fired first: cut the requests all the same.
        }

        await _graceOver.CancelAsync().ConfigureAwait(false);
        try
        {
            await _idle.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Kestrel aborts whatever is left when it stops.
        }
    }

    /// <inheritdoc/>
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public void Dispose() => _graceOver.Dispose();
}
