using Microsoft.Extensions.Logging;

namespace LlmPq.Engine;

public sealed partial class LlmPqEngine
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Loading {ModelPath} (context {ContextLength} tokens, {MaxSequences} sequences, token budget {TokenBudget})")]
    private static partial void LogStarting(ILogger logger, string modelPath, int contextLength, int maxSequences, int tokenBudget);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Serving {ModelId}: {Layers} layers, {ContextLength} tokens per conversation, KV cache of {KvCapacity} tokens (shared: {Shared}), {Threads} CPU threads here")]
    private static partial void LogLoaded(ILogger logger, string modelId, int layers, int contextLength, int kvCapacity, bool shared, int threads);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Layers placed as planned: {Stages}")]
    private static partial void LogPlaced(ILogger logger, string stages);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "llama.cpp pipeline parallelism across the stages: {Enabled} (micro-batch {MicroBatch} of {Batch} tokens)")]
    private static partial void LogPipelineParallelism(ILogger logger, bool enabled, uint microBatch, uint batch);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Could not load {ModelPath}")]
    private static partial void LogLoadFailed(ILogger logger, Exception exception, string modelPath);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Stopped serving {ModelId}")]
    private static partial void LogStopped(ILogger logger, string modelId);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Request {Id} finished ({Reason}): {PromptTokens} prompt tokens, {OutputTokens} output tokens, {DurationMs:F0} ms, {Preemptions} preemptions")]
    private static partial void LogFinished(ILogger logger, long id, FinishReason reason, int promptTokens, int outputTokens, double durationMs, int preemptions);

    [LoggerMessage(EventId = 6, Level = LogLevel.Debug, Message = "Request {Id} cancelled after {OutputTokens} output tokens")]
    private static partial void LogCancelled(ILogger logger, long id, int outputTokens);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Request {Id} evicted from the KV cache ({Tokens} tokens); it will be recomputed")]
    private static partial void LogPreempted(ILogger logger, long id, int tokens);

    [LoggerMessage(EventId = 9, Level = LogLevel.Trace, Message = "Iteration: {DecodeTokens} decode + {PrefillTokens} prefill tokens over {Sequences} sequences in {Milliseconds:F1} ms ({DecodeMilliseconds:F1} ms until llama_decode returned, the rest sampling {Samples} and, with stages, waiting for their logits)")]
    private static partial void LogIteration(ILogger logger, int decodeTokens, int prefillTokens, int sequences, double milliseconds, double decodeMilliseconds, int samples);

    [LoggerMessage(EventId = 12, Level = LogLevel.Critical, Message = "The engine loop failed; the engine stops and its requests fail")]
    private static partial void LogLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "Sampling request {Id} failed; the request fails")]
    private static partial void LogSamplingFailed(ILogger logger, Exception exception, long id);

    [LoggerMessage(EventId = 14, Level = LogLevel.Warning, Message = "The model's memory cannot remove part of a sequence; prefix reuse is off")]
    private static partial void LogPrefixReuseUnsupported(ILogger logger);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "llama_decode failed on a batch of {Tokens} tokens; the requests in it fail")]
    private static partial void LogDecodeFailed(ILogger logger, Exception exception, int tokens);

    [LoggerMessage(EventId = 19, Level = LogLevel.Warning, Message = "An iteration of {Tokens} tokens took {Seconds:0.#} s, past its watchdog deadline of {DeadlineSeconds:0.#} s: a stage server was frozen or unreachable")]
    private static partial void LogIterationOverdue(ILogger logger, double seconds, double deadlineSeconds, int tokens);
}
