using System.Diagnostics.Metrics;
using System.Text.Json;
using LlmPq.Runner;

namespace LlmPq.Tests.Runner;

/// <summary>The runner's metrics relay: what the engine's meter measures in the runner is recorded again, the same, in the pipeline's process.</summary>
public sealed class MetricRelayTests
{
    [Fact]
    public void Counters_histograms_and_gauges_cross_the_protocol_and_are_recorded_again_with_their_names_units_and_tags()
    {
        string name = $"test.relay.{Guid.NewGuid():N}";
        using var collector = new MetricRelay.Collector();
        using var engine = new Meter("LlmPq");
        engine.CreateHistogram<double>(name + ".duration", "s", "A duration.").Record(0.25, new KeyValuePair<string, object?>("gen_ai.request.model", "m"));
        engine.CreateCounter<long>(name + ".count", "{item}").Add(3);
        engine.CreateObservableGauge(name + ".gauge", () => new Measurement<int>(7, new KeyValuePair<string, object?>("gen_ai.request.model", "m")), "{request}");

        // Over the wire as the heartbeat carries them.
        var heartbeat = new RunnerProtocol.Reply(Done: true, Metrics: [.. collector.Drain().Where(m => m.Name.StartsWith(name, StringComparison.Ordinal))]);
        RunnerProtocol.Reply received = JsonSerializer.Deserialize<RunnerProtocol.Reply>(JsonSerializer.Serialize(heartbeat, RunnerProtocol.Json), RunnerProtocol.Json)!;

        using var host = new Meter($"test.relay.host.{name}");
        var seen = new List<(string Name, string? Unit, double Value, string Type, string? Model)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == host)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => seen.Add((i.Name, i.Unit, v, i.GetType().Name, Model(tags))));
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => seen.Add((i.Name, i.Unit, v, i.GetType().Name, Model(tags))));
        listener.Start();
        new MetricRelay.Replay(host).Record(received.Metrics!);
        listener.RecordObservableInstruments();

        Assert.Equal(
            [(name + ".duration", "s", 0.25, "Histogram`1", "m"), (name + ".count", "{item}", 3, "Counter`1", null), (name + ".gauge", "{request}", 7, "ObservableGauge`1", "m")],
            seen);

        // Counters and histograms cross once; a gauge is read again at every heartbeat.
        Assert.DoesNotContain(collector.Drain(), m => m.Name.StartsWith(name, StringComparison.Ordinal) && !m.Gauge);
    }

    private static string? Model(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            if (tag.Key == "gen_ai.request.model")
            {
                return (string?)tag.Value;
            }
        }

        return null;
    }
}
