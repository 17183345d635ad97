using System.Diagnostics.Metrics;

namespace LlmPq.Engine;

/// <summary>
/// The engine's instruments: the OpenTelemetry GenAI server metrics (names and units from the semantic
/// conventions) plus what a serving operator watches: batch composition, queue length, KV use, preemptions.
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
    private readonly KeyValuePair<string, object?> _model;

    public EngineMetrics(IMeterFactory? meterFactory, string modelId, Func<int> queueLength, Func<int> running, Func<int> kvTokens, int kvCapacity)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _model = new("gen_ai.request.model", modelId);
        _ttft = _meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", "s", "Time to generate the first token of a request.");
        _tpot = _meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", "s", "Time per output token after the first.");
        _duration = _meter.CreateHistogram<double>("gen_ai.server.request.duration", "s", "Time from arrival to the last token.");
        _tokenUsage = _meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Input and output tokens per request.");
        _batchTokens = _meter.CreateHistogram<long>("llmpq.engine.batch.tokens", "{token}", "Tokens in one iteration's batch, by phase (prefill or decode).");
        _preemptions = _meter.CreateCounter<long>("llmpq.engine.preemptions", "{sequence}", "Sequences evicted from the KV cache to be recomputed later.");
        _meter.CreateObservableGauge("llmpq.engine.queue.length", queueLength, "{request}", "Requests waiting for a sequence slot.");
        _meter.CreateObservableGauge("llmpq.engine.sequences.running", running, "{sequence}", "Sequences holding a slot.");
        _meter.CreateObservableGauge("llmpq.engine.kv.tokens", kvTokens, "{token}", "KV cache tokens in use.");
        _meter.CreateObservableGauge("llmpq.engine.kv.capacity", () => kvCapacity, "{token}", "KV cache size in tokens.");
    }

    public void FirstToken(TimeSpan sinceArrival) => _ttft.Record(sinceArrival.TotalSeconds, _model, Operation);

    public void Completed(TimeSpan duration, TimeSpan sinceFirstToken, int inputTokens, int outputTokens)
    {
        _duration.Record(duration.TotalSeconds, _model, Operation);
        if (outputTokens > 1)
        {
            _tpot.Record(sinceFirstToken.TotalSeconds / (outputTokens - 1), _model, Operation);
        }

        _tokenUsage.Record(inputTokens, _model, Operation, new("gen_ai.token.type", "input"));
        _tokenUsage.Record(outputTokens, _model, Operation, new("gen_ai.token.type", "output"));
    }

    public void Batch(int prefillTokens, int decodeTokens)
    {
        _batchTokens.Record(prefillTokens, new KeyValuePair<string, object?>("llmpq.phase", "prefill"));
        _batchTokens.Record(decodeTokens, new KeyValuePair<string, object?>("llmpq.phase", "decode"));
    }

    public void Preempted(int count) => _preemptions.Add(count);

    public void Dispose() => _meter.Dispose();

    private static KeyValuePair<string, object?> Operation => new("gen_ai.operation.name", "chat");
}
