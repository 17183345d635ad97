using System.Threading.Channels;
using LlmPq.Native;

namespace LlmPq.Engine;

/// <summary>Why a generation ended.</summary>
internal enum FinishReason
{
    /// <summary>The model ended its turn or produced a stop sequence.</summary>
    Stop,

    /// <summary>The output limit or the context was reached.</summary>
    Length,
}

/// <summary>
/// A generation request for the engine: prompt tokens, how to sample, and when to stop; <paramref name="CachePrompt"/>
/// false computes the whole prompt even where a finished request left a shared prefix in the KV cache;
/// <paramref name="TopLogprobs"/>, when set, asks for each sampled token's log-probability and that many alternatives.
/// </summary>
internal sealed record EngineRequest(IReadOnlyList<int> Prompt, SamplingSettings Sampling, int MaxOutputTokens, IReadOnlyList<string> StopSequences, bool CachePrompt = true, int? TopLogprobs = null);

/// <summary>Something the engine tells a caller about its request.</summary>
internal abstract record EngineEvent
{
    /// <summary>New text (never part of a stop sequence).</summary>
    public sealed record Text(string Delta) : EngineEvent;

    /// <summary>A sampled token's log-probability, when the request asked for them (before the token's text).</summary>
    public sealed record Logprob(TokenLogprob Token) : EngineEvent;

    /// <summary>
    /// The end: why, and the token counts; <paramref name="CachedTokens"/> of the prompt tokens were reused from the KV
    /// cache, not computed; <paramref name="Output"/> holds the generated token ids (without an end-of-generation token),
    /// so that the answer can be sent back as these tokens; the sequence was evicted and recomputed
    /// <paramref name="Preemptions"/> times.
    /// </summary>
    public sealed record Finished(FinishReason Reason, int PromptTokens, int OutputTokens, int CachedTokens, IReadOnlyList<int> Output, int Preemptions = 0) : EngineEvent;
}

/// <summary>A submitted request as its caller sees it: the events, in order; the channel fails with the error when the request fails.</summary>
internal sealed class EngineStream(long id, ChannelReader<EngineEvent> events)
{
    /// <summary>Gets the request's id (its arrival order).</summary>
    public long Id { get; } = id;

    /// <summary>Gets the events.</summary>
    public ChannelReader<EngineEvent> Events { get; } = events;
}
