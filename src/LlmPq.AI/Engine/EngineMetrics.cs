using System.Diagnostics;
using System.Diagnostics.Metrics;
using LlmPq.Scheduling;

namespace LlmPq.Engine;

/// <summary>
/// The engine's instruments: the OpenTelemetry GenAI server metrics (names and units from the semantic
/// conventions) plus what a serving operator watches: batch composition, queue length, KV use, preemptions, the
/// token budget, and iteration times by kind with their spread (the proxy for pipeline bubbles).
/// </summary>
internal sealed class EngineMetrics : IDisposable
{
    /// <summary>The meter name to listen to (for example with OpenTelemetry's <c>AddMeter("LlmPq")</c>).</summary>
    public const string MeterName = "LlmPq";

    private readonly Meter _meter;
    private readonly Histogram<double> _ttft;
    private readonly Histogram<double> _tpot;
    private readonly Histogram<double> _duration;
    private readonly Histogram<long> _tokenUsage;
    private readonly Histogram<long> _batchTokens;
    private readonly Counter<long> _preemptions;
    private readonly Counter<long> _reusedTokens;
    private readonly Counter<long> _computedTokens;
    private readonly Histogram<double> _iterationDuration;
    private readonly IterationSpread _spread = new();
    private readonly Histogram<double> _schedulingDelay;
    private readonly KeyValuePair<string, object?> _model;

    /// <summary>The provider as the GenAI conventions name it on every metric (<c>gen_ai.provider.name</c>).</summary>
    private static readonly KeyValuePair<string, object?> s_provider = new("gen_ai.provider.name", "llmpq");

    public EngineMetrics(IMeterFactory? meterFactory, string modelId, Func<int> queueLength, Func<int> running, Func<int> kvTokens, int kvCapacity, Func<int> tokenBudget)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _model = new("gen_ai.request.model", modelId);
        _ttft = _meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", "s", "Time to generate the first token of a request.");
        _tpot = _meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", "s", "Time per output token after the first.");
        _duration = _meter.CreateHistogram<double>("gen_ai.server.request.duration", "s", "Time from arrival to the last token.");
        _tokenUsage = _meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Input and output tokens per request.");
        _batchTokens = _meter.CreateHistogram<long>("llmpq.engine.batch.tokens", "{token}", "Tokens in one iteration's batch, by phase (prefill or decode).");
        _schedulingDelay = _meter.CreateHistogram<double>("llmpq.engine.scheduling_delay", "s", "Time from a request's arrival to the first iteration that computes any of its tokens (Sarathi-Serve's scheduling delay).");
        _preemptions = _meter.CreateCounter<long>("llmpq.engine.preemptions", "{sequence}", "Sequences evicted from the KV cache to be recomputed later.");
        _reusedTokens = _meter.CreateCounter<long>("llmpq.engine.prompt_tokens.reused", "{token}", "Prompt tokens an admitted sequence found in its slot's KV cache (prefix reuse) instead of computing them.");
        _computedTokens = _meter.CreateCounter<long>("llmpq.engine.prompt_tokens.computed", "{token}", "Prompt tokens an admitted sequence computes (a preempted one recomputes its output too); the prefix hit rate is reused / (reused + computed).");
        // The gauges carry the model, so that the engines of keyed registrations can be told apart.
        _meter.CreateObservableGauge("llmpq.engine.queue.length", () => Tagged(queueLength()), "{request}", "Requests waiting for a sequence slot.");
        _meter.CreateObservableGauge("llmpq.engine.sequences.running", () => Tagged(running()), "{sequence}", "Sequences holding a slot.");
        _meter.CreateObservableGauge("llmpq.engine.kv.tokens", () => Tagged(kvTokens()), "{token}", "KV cache tokens in use.");
        _meter.CreateObservableGauge("llmpq.engine.kv.capacity", () => Tagged(kvCapacity), "{token}", "KV cache size in tokens.");
        _meter.CreateObservableGauge("llmpq.engine.token_budget", () => Tagged(tokenBudget()), "{token}", "Most tokens of one iteration: fixed, or chosen from the TBT target.");
        _iterationDuration = _meter.CreateHistogram<double>("llmpq.engine.iteration.duration", "s", "Time of one iteration (batch decode and sampling), by kind (prefill, decode or hybrid).");
        _meter.CreateObservableGauge("llmpq.engine.iteration.spread", ObserveSpread, "1", "Standard deviation over mean of recent iteration times, by kind: uneven iterations idle pipeline stages.");
        _meter.CreateObservableGauge("llmpq.engine.iteration.imbalance", ObserveImbalance, "1", "Average |t1 - t0| / max(t0, t1) of recent consecutive iterations: the share a pipeline stage idles between them.");
    }

    public void Scheduled(TimeSpan sinceArrival) => _schedulingDelay.Record(sinceArrival.TotalSeconds, _model);

    public void FirstToken(TimeSpan sinceArrival) => _ttft.Record(sinceArrival.TotalSeconds, _model, Operation, s_provider);

    public void Completed(TimeSpan duration, TimeSpan sinceFirstToken, int inputTokens, int outputTokens)
    {
        _duration.Record(duration.TotalSeconds, _model, Operation, s_provider);
        if (outputTokens > 1)
        {
            _tpot.Record(sinceFirstToken.TotalSeconds / (outputTokens - 1), _model, Operation, s_provider);
        }

        var input = new TagList { _model, Operation, s_provider, new("gen_ai.token.type", "input") };
        var output = new TagList { _model, Operation, s_provider, new("gen_ai.token.type", "output") };
        _tokenUsage.Record(inputTokens, input);
        _tokenUsage.Record(outputTokens, output);
    }

    /// <summary>Records a request that ended without its answer (failed or cancelled), as the conventions want: its duration with <c>error.type</c>.</summary>
    /// <param name="duration">Time from arrival to the end.</param>
    /// <param name="error">What ended it.</param>
    public void Ended(TimeSpan duration, Exception error) =>
        _duration.Record(duration.TotalSeconds, _model, Operation, s_provider, new("error.type", error.GetType().FullName));

    public void Batch(int prefillTokens, int decodeTokens)
    {
        _batchTokens.Record(prefillTokens, new KeyValuePair<string, object?>("llmpq.phase", "prefill"));
        _batchTokens.Record(decodeTokens, new KeyValuePair<string, object?>("llmpq.phase", "decode"));
    }

    public void Preempted(int count) => _preemptions.Add(count);

    public void Prefill(int reusedTokens, int computedTokens)
    {
        _reusedTokens.Add(reusedTokens, _model);
        _computedTokens.Add(computedTokens, _model);
    }

    public void Iteration(IterationKind kind, TimeSpan elapsed)
    {
        _iterationDuration.Record(elapsed.TotalSeconds, Kind(kind));
        _spread.Record(kind, elapsed);
    }

    public void Dispose() => _meter.Dispose();

    private static KeyValuePair<string, object?> Operation => new("gen_ai.operation.name", "chat");

    private Measurement<int> Tagged(int value) => new(value, _model);

    private static KeyValuePair<string, object?> Kind(IterationKind kind) => new("llmpq.iteration.kind", kind switch
    {
        IterationKind.Prefill => "prefill",
        IterationKind.Decode => "decode",
        _ => "hybrid",
    });

    private IEnumerable<Measurement<double>> ObserveSpread()
    {
        foreach (IterationKind kind in Enum.GetValues<IterationKind>())
        {
            if (_spread.Spread(kind) is { } spread)
            {
                yield return new Measurement<double>(spread, Kind(kind));
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveImbalance()
    {
        if (_spread.Imbalance is { } imbalance)
        {
            yield return new Measurement<double>(imbalance);
        }
    }
}
