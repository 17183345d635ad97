using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Native;

/// <summary>
/// Process-wide llama.cpp state: one-time backend initialization and the log hook that sends llama.cpp's and
/// ggml's messages to an <see cref="ILogger"/> (category <c>LlmPq.Native.LlamaCpp</c>).
/// </summary>
internal static unsafe partial class LlamaBackend
{
    private static readonly Lock s_lock = new();
    private static readonly StringBuilder s_pending = new();
    private static ILogger s_logger = NullLogger.Instance;
    private static LogLevel s_pendingLevel = LogLevel.Debug;
    private static bool s_initialized;

    [ThreadStatic]
    private static List<string>? t_recentErrors;

    [ThreadStatic]
    private static Func<string, bool>? t_observer;

    /// <summary>Initializes llama.cpp once per process and routes its log to <paramref name="loggerFactory"/> when one is given.</summary>
    public static void EnsureInitialized(ILoggerFactory? loggerFactory = null)
    {
        lock (s_lock)
        {
            if (loggerFactory is not null)
            {
                s_logger = loggerFactory.CreateLogger("LlmPq.Native.LlamaCpp");
            }

            if (s_initialized)
            {
                return;
            }

            LlamaNative.llama_log_set(&OnLog, null);
            LlamaNative.llama_backend_init();
            s_initialized = true;
        }
    }

    /// <summary>Gets the version of the loaded ggml library.</summary>
    public static string GgmlVersion => Marshal.PtrToStringUTF8((IntPtr)GgmlNative.ggml_version()) ?? string.Empty;

    /// <summary>Gets llama.cpp's description of the CPU features and backends it was built with.</summary>
    public static string SystemInfo => Marshal.PtrToStringUTF8((IntPtr)LlamaNative.llama_print_system_info()) ?? string.Empty;

    /// <summary>
    /// Starts collecting the warnings and errors llama.cpp logs on this thread, so a failed native call can
    /// explain itself; returns them when the scope ends.
    /// </summary>
    public static ErrorCapture CaptureErrors() => new();

    /// <summary>
    /// Shows <paramref name="observer"/> every piece of text llama.cpp logs on this thread until the scope ends, for
    /// calls that report progress only through their log (<c>llama_model_quantize</c>). A piece the observer returns
    /// true for is expected, and is logged at debug level whatever its level.
    /// </summary>
    public static LogObservation ObserveLog(Func<string, bool> observer) => new(observer);

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static void OnLog(int level, byte* text, void* userData)
    {
        string message = Marshal.PtrToStringUTF8((IntPtr)text) ?? string.Empty;
        const int Continuation = 5;
        LogLevel mapped = level switch
        {
            1 => LogLevel.Debug,
            2 => LogLevel.Debug, // llama.cpp is chatty at INFO (every tensor at load); keep it out of the way
            3 => LogLevel.Warning,
            4 => LogLevel.Error,
            _ => LogLevel.Debug,
        };

        if (t_observer?.Invoke(message) == true)
        {
            mapped = LogLevel.Debug;
        }

        if (mapped >= LogLevel.Warning && t_recentErrors is { Count: < 32 } errors)
        {
            errors.Add(message.TrimEnd());
        }

        // ggml sends lines in pieces (CONT continues the previous one); emit whole lines only.
        lock (s_lock)
        {
            if (level != Continuation)
            {
                s_pendingLevel = mapped;
            }

            s_pending.Append(message);
            if (!message.EndsWith('\n'))
            {
                return;
            }

            string line = s_pending.ToString().TrimEnd();
            s_pending.Clear();
            if (line.Length > 0)
            {
                LogNative(s_logger, s_pendingLevel, line);
            }
        }
    }

    [LoggerMessage(EventId = 200, Message = "{Line}")]
    private static partial void LogNative(ILogger logger, LogLevel level, string line);

    /// <summary>The warnings and errors llama.cpp logged on this thread since <see cref="CaptureErrors"/>.</summary>
    public sealed class ErrorCapture : IDisposable
    {
        private readonly List<string>? _outer = t_recentErrors;
        private readonly List<string> _lines = [];

        internal ErrorCapture() => t_recentErrors = _lines;

        /// <summary>Gets the captured lines joined for an exception message, or a fallback when there were none.</summary>
        public string Summary => _lines.Count > 0
            ? string.Join(" | ", _lines.Where(l => l.Length > 0))
            : "llama.cpp logged no reason";

        /// <inheritdoc/>
        public void Dispose() => t_recentErrors = _outer;
    }

    /// <summary>The scope of <see cref="ObserveLog"/>.</summary>
    public sealed class LogObservation : IDisposable
    {
        private readonly Func<string, bool>? _outer = t_observer;

        internal LogObservation(Func<string, bool> observer) => t_observer = observer;

        /// <inheritdoc/>
        public void Dispose() => t_observer = _outer;
    }
}
