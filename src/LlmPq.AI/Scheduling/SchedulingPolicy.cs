namespace LlmPq.Scheduling;

/// <summary>How one engine iteration shares its token budget between running decodes and prompts.</summary>
public enum SchedulingPolicy
{
    /// <summary>Sarathi-Serve stall-free batching (the default): every running decode, then chunks of prompts being prefilled, then new prompts, within the token budget.</summary>
    Sarathi,

    /// <summary>
    /// vLLM (2023): whole new prompts first, in iterations of their own; decode-only iterations otherwise. A prompt longer
    /// than the token budget is prefilled in budget-sized, prompt-only iterations before any decode runs.
    /// </summary>
    PrefillFirst,

    /// <summary>
    /// FasterTransformer: the waiting requests that fit are admitted as one batch while nothing decodes, prefilled, then
    /// decoded until the last of them ends; no new prompt is admitted while any decode runs.
    /// </summary>
    RequestLevel,

    /// <summary>Chunked prefills without hybrid batches: prompt-chunk iterations and decode iterations alternate.</summary>
    ChunkedOnly,
}
