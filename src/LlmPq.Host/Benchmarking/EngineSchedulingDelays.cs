using System.Diagnostics.Metrics;
using LlmPq.Engine;

namespace LlmPq.Host.Benchmarking;

/// <summary>
/// Collects the scheduling delays an in-process engine measures itself (<c>llmpq.engine.scheduling_delay</c>: arrival
/// to the first iteration that computes any of the request's tokens, Sarathi-Serve's definition). A target in another
/// process reports none, and the bench then estimates the delay from outside.
/// </summary>
internal sealed class EngineSchedulingDelays : IDisposable
{
    private const string Instrument = "llmpq.engine.scheduling_delay";
    private readonly MeterListener _listener = new();
    private readonly List<double> _milliseconds = [];

    public EngineSchedulingDelays()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == EngineMetrics.MeterName && instrument.Name == Instrument)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((_, seconds, _, _) =>
        {
            lock (_milliseconds)
            {
                _milliseconds.Add(seconds * 1000);
            }
        });
        _listener.Start();
    }

    /// <summary>Returns the delays recorded since the last call, and forgets them.</summary>
    public IReadOnlyList<double> Drain()
    {
        lock (_milliseconds)
        {
            double[] taken = [.. _milliseconds];
            _milliseconds.Clear();
            return taken;
        }
    }

    public void Dispose() => _listener.Dispose();
}
