namespace LlmPq.Scheduling;

/// <summary>How one engine iteration shares its token budget between running decodes and prompts.</summary>
public enum SchedulingPolicy
{
    /// <summary>Sarathi-Serve stall-free batching (the default): every running decode, then chunks of prompts being prefilled, then new prompts, within the token budget.</summary>
    Sarathi,

    /// <summary>vLLM (2023): whole new prompts first, in iterations of their own; decode-only iterations otherwise.</summary>
    PrefillFirst,

    /// <summary>FasterTransformer: a batch of requests runs to completion; no new prompt is admitted while any decode runs.</summary>
    RequestLevel,

    /// <summary>Chunked prefills without hybrid batches: prompt-chunk iterations and decode iterations alternate.</summary>
    ChunkedOnly,
}
