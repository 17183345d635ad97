using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests;

/// <summary>Keeps every log line in memory so tests can look at what was logged.</summary>
public sealed class ListLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<(string Category, LogLevel Level, string Message)> _lines = new();

    /// <summary>Gets the lines logged so far.</summary>
    public IReadOnlyCollection<(string Category, LogLevel Level, string Message)> Lines => _lines;

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<(string, LogLevel, string)> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => lines.Enqueue((category, logLevel, formatter(state, exception)));
    }
}
