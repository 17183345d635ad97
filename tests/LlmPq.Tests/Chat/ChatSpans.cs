using System.Diagnostics;
using LlmPq.Chat;

namespace LlmPq.Tests.Chat;

/// <summary>
/// Records the GenAI chat spans LlmPq draws under a trace of the test's own, so that spans of tests running beside it
/// are not counted.
/// </summary>
internal sealed class ChatSpans : IDisposable
{
    private readonly List<Activity> _stopped = [];
    private readonly ActivityListener _listener;
    private readonly ActivitySource _source;

    /// <param name="testSource">The name of the test's own activity source, which starts the trace.</param>
    public ChatSpans(string testSource)
    {
        _source = new ActivitySource(testSource);
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ChatTelemetry.SourceName || source.Name == testSource,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity => { lock (_stopped) { _stopped.Add(activity); } },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>Starts the test's trace; the chat spans of calls made under it are <see cref="Of"/> its id.</summary>
    public Activity StartTrace() => _source.StartActivity("test")!;

    /// <summary>Gets the chat spans stopped so far under a trace.</summary>
    public List<Activity> Of(ActivityTraceId trace)
    {
        lock (_stopped)
        {
            return [.. _stopped.Where(s => s.TraceId == trace && s.Source.Name == ChatTelemetry.SourceName)];
        }
    }

    public void Dispose()
    {
        _listener.Dispose();
        _source.Dispose();
    }
}
