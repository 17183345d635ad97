using LlmPq.Stages;

namespace LlmPq;

/// <summary>
/// Options of an LlmPq engine and its chat client. Bound from the configuration section <c>LlmPq</c> by
/// <c>AddLlmPqChatClient(IConfiguration)</c>; validated when the host starts.
/// </summary>
public sealed class LlmPqOptions
{
    /// <summary>The configuration section the options bind from by default.</summary>
    public const string SectionName = "LlmPq";

    /// <summary>Gets or sets the GGUF model file. Required.</summary>
    public string ModelPath { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets a Jinja chat template (its text, or the path of a file holding it) used instead of the model's own;
    /// null (the default) uses the model's, and ChatML when the model has none. llama.cpp's chat layer renders it and
    /// derives from it the tool-call format, its grammar and its parser.
    /// </summary>
    public string? ChatTemplate { get; set; }

    /// <summary>Gets or sets the model id reported in responses and matched against <c>ChatOptions.ModelId</c>; defaults to the file name without extension.</summary>
    public string? ModelId { get; set; }

    /// <summary>Gets or sets the most tokens one conversation can hold (prompt and output); llama.cpp rounds it up to a multiple of 256.</summary>
    public int ContextLength { get; set; } = 4096;

    /// <summary>
    /// Gets or sets the KV cache size in tokens over all sequences; 0 (the default) gives every sequence its own
    /// <see cref="ContextLength"/>. A smaller value oversubscribes memory: sequences then share one cache, a request
    /// waits until the cache can hold its prompt, and when running sequences fill it the youngest is evicted and
    /// recomputed later. Shared attention is not batch-invariant: a batched answer can then differ in the last bits
    /// (and so, greedy, in its tokens) from the same request run alone.
    /// </summary>
    public int KvCacheTokens { get; set; }

    /// <summary>Gets or sets the most sequences decoded together (llama.cpp's <c>n_seq_max</c>); more requests wait in the queue.</summary>
    public int MaxSequences { get; set; } = 8;

    /// <summary>
    /// Gets or sets the most tokens of one iteration (Sarathi-Serve's token budget): all decodes, then prompt chunks.
    /// With <see cref="TbtTarget"/> set it is the largest budget the engine may choose (and llama.cpp's <c>n_batch</c>).
    /// </summary>
    public int TokenBudget { get; set; } = 256;

    /// <summary>
    /// Gets or sets the time-between-tokens target; null (the default) keeps the fixed <see cref="TokenBudget"/>. When
    /// set, the engine chooses before every iteration the largest budget, a multiple of 32 between 32 and
    /// <see cref="TokenBudget"/>, whose iteration time predicted at the current decode batch (a fit of the measured
    /// iterations) fits the target.
    /// </summary>
    public TimeSpan? TbtTarget { get; set; }

    /// <summary>Gets or sets how an iteration shares its token budget between decodes and prompts; <see cref="Scheduling.SchedulingPolicy.Sarathi"/> by default.</summary>
    public Scheduling.SchedulingPolicy SchedulingPolicy { get; set; } = Scheduling.SchedulingPolicy.Sarathi;

    /// <summary>Gets or sets llama.cpp's physical micro-batch (<c>n_ubatch</c>); 0 uses the token budget. With several stages, micro-batches are pipelined.</summary>
    public int MicroBatchSize { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether a finished request leaves its KV cells in its sequence slot, so that a
    /// later request sharing a prefix with it (the same system prompt, an earlier turn of its conversation) computes
    /// only the rest (true, the default). Idle cells count as KV in use and are reclaimed least recently used first.
    /// </summary>
    public bool PrefixReuse { get; set; } = true;

    /// <summary>
    /// Gets or sets the CPU threads of the engine's own llama.cpp context; 0 uses every core, or one when every layer is
    /// on stage servers (the engine then only looks up embeddings, and idle threads would spin on the servers' cores).
    /// </summary>
    public int Threads { get; set; }

    /// <summary>Gets or sets the layers offloaded to GPUs; -1 offloads all of them (nothing happens without a GPU).</summary>
    public int GpuLayers { get; set; } = -1;

    /// <summary>Gets or sets the output limit of a request that sets no <c>MaxOutputTokens</c>.</summary>
    public int DefaultMaxOutputTokens { get; set; } = 512;

    /// <summary>Gets or sets the most requests waiting for a sequence slot; beyond it requests fail as unavailable (HTTP 503).</summary>
    public int MaxQueueLength { get; set; } = 1024;

    /// <summary>
    /// Gets the pipeline stages the model is split across, in order, each a contiguous range of layers; empty (the
    /// default) runs the whole model in this process (on its GPUs per <see cref="GpuLayers"/>). A plan gives them
    /// (<c>llmpq serve --plan</c>); the layer counts must add up to the model's.
    /// </summary>
    public IList<LlmPqStageOptions> Stages { get; } = [];

    /// <summary>
    /// Gets or sets a value indicating whether llama.cpp pipelines the micro-batches (<see cref="MicroBatchSize"/>) of
    /// one iteration across <see cref="Stages"/>, so several stages compute at once (true, the default); false runs
    /// them one stage after another. It only acts with two or more stage servers.
    /// </summary>
    public bool PipelineParallelism { get; set; } = true;

    /// <summary>
    /// Gets the watchdog of the engine's iterations: an iteration past its deadline (derived from the measured ones,
    /// within a floor and a ceiling) fails its requests as unavailable, and a pipeline replaces its stuck stages and
    /// runner. Only stage servers can freeze an iteration this way.
    /// </summary>
    public StageWatchdogOptions Watchdog { get; } = new();

    /// <summary>
    /// Gets or sets the <c>llmpq</c> program that runs the engine of a pipeline in a process of its own (a path to
    /// <c>llmpq</c> or <c>llmpq.dll</c>); null looks for <c>llmpq.dll</c> beside the application, then <c>llmpq</c> on
    /// <c>PATH</c>. Only used when <see cref="Stages"/> run as separate processes.
    /// </summary>
    public string? RunnerPath { get; set; }

    /// <summary>Gets a value indicating whether sequences share one KV cache (see <see cref="KvCacheTokens"/>).</summary>
    internal bool SharedKvCache => KvCacheTokens > 0 && KvCacheTokens < (long)ContextLength * MaxSequences;

    /// <summary>Gets the model id: <see cref="ModelId"/>, or the model file name without extension.</summary>
    internal string EffectiveModelId => string.IsNullOrWhiteSpace(ModelId) ? Path.GetFileNameWithoutExtension(ModelPath) : ModelId;
}
