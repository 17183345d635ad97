using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;

namespace LlmPq.Runner;

/// <summary>
/// Carries the runner's engine metrics (the <c>gen_ai.server.*</c> histograms and the engine's counters and
/// histograms, meter <c>LlmPq</c>) to the pipeline's process, whose exporters cannot see the runner's meters: the runner
/// collects each measurement (<see cref="Collector"/>), the heartbeat carries them, and the pipeline records them again
/// on its own meter under the same instrument names, units and tags (<see cref="Replay"/>). The engine's observable
/// gauges (queue, KV use, token budget) are read at each heartbeat and observed in the pipeline's process as their
/// last reading.
/// </summary>
internal static class MetricRelay
{
    /// <summary>The most measurements the runner holds between heartbeats; beyond it the oldest are dropped.</summary>
    public const int Capacity = 100_000;

    // The engine's meter (EngineMetrics.MeterName; the runner's folder does not see the engine's).
    private const string EngineMeter = "LlmPq";

    /// <summary>The runner's side: listens to the engine's meter and hands over what it measured since the last call.</summary>
    public sealed class Collector : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<Measurement> _pending = new();

        /// <summary>Initializes a new instance of the <see cref="Collector"/> class, listening from now on.</summary>
        public Collector()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == EngineMeter)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.Start();
        }

        /// <summary>Takes the measurements made since the last call.</summary>
        public IReadOnlyList<Measurement> Drain()
        {
            // The gauges' readings now, queued with the rest.
            _listener.RecordObservableInstruments();
            var drained = new List<Measurement>();
            while (_pending.TryDequeue(out Measurement? measurement))
            {
                drained.Add(measurement);
            }

            return drained;
        }

        /// <inheritdoc/>
        public void Dispose() => _listener.Dispose();

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var copied = new Dictionary<string, string?>(tags.Length);
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                copied[tag.Key] = Convert.ToString(tag.Value, CultureInfo.InvariantCulture);
            }

            bool counter = instrument.GetType().GetGenericTypeDefinition() == typeof(Counter<>);
            bool integral = instrument.GetType().GetGenericArguments()[0] is var type && (type == typeof(long) || type == typeof(int));
            _pending.Enqueue(new Measurement(instrument.Name, instrument.Unit, instrument.Description, counter, integral, value, copied) { Gauge = instrument.IsObservable });
            while (_pending.Count > Capacity && _pending.TryDequeue(out _))
            {
            }
        }
    }

    /// <summary>The pipeline's side: records forwarded measurements on its own meter, an instrument per name made on first use.</summary>
    /// <param name="meter">The pipeline's <c>LlmPq</c> meter.</param>
    public sealed class Replay(Meter meter)
    {
        private readonly ConcurrentDictionary<string, Instrument> _instruments = new(StringComparer.Ordinal);

        // A gauge's last reading per tag set (as text), observed by the gauge made for its name.
        private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Measurement>> _gauges = new(StringComparer.Ordinal);

        /// <summary>Records <paramref name="measurements"/> again.</summary>
        public void Record(IEnumerable<Measurement> measurements)
        {
            foreach (Measurement m in measurements)
            {
                if (m.Gauge)
                {
                    ConcurrentDictionary<string, Measurement> readings = _gauges.GetOrAdd(m.Name, name =>
                    {
                        var byTags = new ConcurrentDictionary<string, Measurement>(StringComparer.Ordinal);
                        meter.CreateObservableGauge(name, () => byTags.Values.Select(r => new Measurement<double>(r.Value, Tags(r))), m.Unit, m.Description);
                        return byTags;
                    });
                    readings[string.Join('\n', m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))] = m;
                    continue;
                }

                KeyValuePair<string, object?>[] tags = Tags(m);
                switch (_instruments.GetOrAdd(m.Name, _ => Create(m)))
                {
                    case Counter<long> counter:
                        counter.Add((long)m.Value, tags);
                        break;
                    case Counter<double> counter:
                        counter.Add(m.Value, tags);
                        break;
                    case Histogram<long> histogram:
                        histogram.Record((long)m.Value, tags);
                        break;
                    case Histogram<double> histogram:
                        histogram.Record(m.Value, tags);
                        break;
                }
            }
        }

        private static KeyValuePair<string, object?>[] Tags(Measurement m) => [.. m.Tags.Select(t => new KeyValuePair<string, object?>(t.Key, t.Value))];

        private Instrument Create(Measurement m) => (m.Counter, m.Integral) switch
        {
            (true, true) => meter.CreateCounter<long>(m.Name, m.Unit, m.Description),
            (true, false) => meter.CreateCounter<double>(m.Name, m.Unit, m.Description),
            (false, true) => meter.CreateHistogram<long>(m.Name, m.Unit, m.Description),
            (false, false) => meter.CreateHistogram<double>(m.Name, m.Unit, m.Description),
        };
    }

    /// <summary>One measurement of a counter or a histogram, as it crosses the runner protocol.</summary>
    /// <param name="Name">The instrument's name.</param>
    /// <param name="Unit">Its unit.</param>
    /// <param name="Description">Its description.</param>
    /// <param name="Counter">Whether it is a counter (else a histogram).</param>
    /// <param name="Integral">Whether its values are integers.</param>
    /// <param name="Value">The value.</param>
    /// <param name="Tags">The tags, as text.</param>
    public sealed record Measurement(string Name, string? Unit, string? Description, bool Counter, bool Integral, double Value, IReadOnlyDictionary<string, string?> Tags)
    {
        /// <summary>Gets a value indicating whether this is a gauge's reading (its last one counts), not a counter's or a histogram's measurement.</summary>
        public bool Gauge { get; init; }
    }
}
