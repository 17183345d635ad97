using System.Diagnostics;
using System.Globalization;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// A run's progress on standard error (standard output stays for results): one line redrawn four times a second on
/// a terminal, a line every ten seconds when redirected, and the final counts when disposed.
/// </summary>
internal sealed class ProgressLine : IDisposable
{
    private readonly string _label;
    private readonly LoadCounters _counters;
    private readonly int _total;
    private readonly TextWriter _output;
    private readonly bool _redraw;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Timer _timer;
    private readonly Lock _gate = new();
    private bool _disposed;

    public ProgressLine(string label, LoadCounters counters, int total, TextWriter? output = null)
    {
        _label = label;
        _counters = counters;
        _total = total;
        _output = output ?? Console.Error;
        _redraw = output is null && !Console.IsErrorRedirected;
        TimeSpan period = _redraw ? TimeSpan.FromMilliseconds(250) : TimeSpan.FromSeconds(10);
        _timer = new Timer(_ => Render(final: false), null, period, period);
    }

    public void Dispose()
    {
        _timer.Dispose();
        Render(final: true);
    }

    private void Render(bool final)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = final;
            double seconds = _clock.Elapsed.TotalSeconds;
            LoadCounters c = _counters;
            int inFlight = c.Sent - c.Completed - c.Failed - c.Cancelled;
            string line = string.Create(
                CultureInfo.InvariantCulture,
                $"{_label}: {seconds,6:F1} s  sent {c.Sent}/{_total}  done {c.Completed}  failed {c.Failed}  cut {c.Cancelled}  in flight {inFlight}  {(seconds > 0 ? c.OutputTokens / seconds : 0),7:F1} tok/s");
            if (_redraw)
            {
                _output.Write("\r" + line + "\u001b[K" + (final ? Environment.NewLine : string.Empty));
            }
            else
            {
                _output.WriteLine(line);
            }
        }
    }
}
