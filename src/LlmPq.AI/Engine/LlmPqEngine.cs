using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Threading.Channels;
using LlmPq.Native;
using LlmPq.Scheduling;
using LlmPq.Stages;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Engine;

/// <summary>
/// The continuous-batching engine: one llama.cpp context with many sequences, owned by one loop thread whose
/// iterations follow the configured <see cref="Scheduling.SchedulingPolicy"/> (Sarathi-Serve's stall-free batching by
/// default) within a token budget; the model in this process or across pipeline stages (<see cref="LlmPqOptions.Stages"/>).
/// Thread-safe: requests may be submitted from any thread.
/// </summary>
public sealed partial class LlmPqEngine : IAsyncDisposable
{
    /// <summary>The most tokens a prompt prefilled while no decode runs takes in one iteration (llama-server's default <c>n_batch</c>).</summary>
    private const int WholePromptBatch = 2048;

    /// <summary>
    /// The shortest running prefix copied into another sequence's own cells: the copy moves the source's whole KV
    /// stream (every layer, all of a sequence's cells), which costs less than computing this many tokens.
    /// </summary>
    private const int StreamCopyMinimum = 64;

    private readonly LlmPqOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly IMeterFactory? _meterFactory;
    private readonly ConcurrentQueue<Action> _inbox = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<SequenceState, Active> _active = [];
    private readonly Lock _inboxGate = new();
    private Thread? _thread;
    private LlamaModel? _model;
    private ChatTemplates? _templates;
    private LlamaContext? _context;
    private bool _inboxClosed;
    private EngineMetrics? _metrics;
    private BatchScheduler? _scheduler;
    private TokenBudgetController? _budget;
    private long _nextId;
    private int _disposed;
    private int _outstanding;
    private long _preemptions;
    private int _queued;
    private int _running;
    private int _kvTokens;
    private volatile bool _stopping;

    /// <summary>Creates an engine; <see cref="StartAsync"/> loads the model.</summary>
    /// <param name="options">The validated options.</param>
    /// <param name="loggerFactory">Where the engine and llama.cpp log.</param>
    /// <param name="meterFactory">Where the engine's metrics go (meter <c>LlmPq</c>).</param>
    public LlmPqEngine(LlmPqOptions options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<LlmPqEngine>();
        _meterFactory = meterFactory;
        ModelId = options.EffectiveModelId;
        Iterations = new IterationWatch(options.Watchdog);
    }

    /// <summary>Gets the id of the served model.</summary>
    public string ModelId { get; }

    /// <summary>Gets a value indicating whether the model is loaded and requests are served.</summary>
    public bool IsReady => _loaded.Task.IsCompletedSuccessfully && !_stopping && !Iterations.Overdue;

    /// <summary>Gets the most tokens one conversation can hold (known once loaded).</summary>
    public int ContextLength { get; private set; }

    /// <summary>Gets the KV cache size in tokens over all sequences (known once loaded).</summary>
    public int KvCapacity { get; private set; }

    /// <summary>Gets the requests waiting for a sequence slot.</summary>
    public int QueueLength => Volatile.Read(ref _queued);

    /// <summary>Gets the sequences holding a slot.</summary>
    public int RunningSequences => Volatile.Read(ref _running);

    /// <summary>Gets the KV cache tokens in use.</summary>
    public int KvTokensInUse => Volatile.Read(ref _kvTokens);

    /// <summary>Gets the running iteration and its deadline, for a watchdog outside the loop thread (which a frozen stage blocks).</summary>
    internal IterationWatch Iterations { get; }

    /// <summary>Gets how many times a sequence was evicted from the KV cache to be recomputed.</summary>
    internal long Preemptions => Interlocked.Read(ref _preemptions);

    /// <summary>Gets the model's chat templates (or the configured one), loaded with the model; usable off the loop thread.</summary>
    internal ChatTemplates Templates => IsReady && _templates is { } templates ? templates : throw NotServing();

    /// <summary>Gets the loaded model; only for read-only use (tokenizing) off the loop thread.</summary>
    internal LlamaModel Model => IsReady && _model is { } model ? model : throw NotServing();

    /// <summary>Loads the model and starts the loop thread; completes when requests can be served.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _thread, new Thread(Run) { IsBackground = true, Name = "LlmPq engine" }, null) is null)
        {
            LogStarting(_logger, _options.ModelPath, _options.ContextLength, _options.MaxSequences, _options.TokenBudget);
            _thread.Start();
        }

        return _loaded.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Stops the loop: running and queued requests fail as unavailable; the model is unloaded.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        _stopping = true;
        _wake.Release();
        if (_thread is not null)
        {
            await _stopped.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _wake.Dispose();
        }
    }

    /// <summary>Gets a value indicating whether llama.cpp pipelines micro-batches across the stages (known once loaded).</summary>
    internal bool PipelineParallel { get; private set; }

    /// <summary>Queues a request. Throws <see cref="LlmPqRequestException"/> for a prompt the context cannot hold.</summary>
    internal EngineStream Submit(EngineRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!IsReady)
        {
            throw NotServing();
        }

        if (request.Prompt.Count == 0)
        {
            throw new LlmPqRequestException("The prompt has no tokens.");
        }

        if (request.Prompt.Count + 1 > ContextLength)
        {
            throw new LlmPqRequestException("context_length_exceeded", $"The prompt has {request.Prompt.Count} tokens; a conversation holds at most {ContextLength}, and at least one must be left to generate. Shorten the conversation or raise LlmPq:ContextLength.");
        }

        if (Volatile.Read(ref _outstanding) >= _options.MaxQueueLength + _options.MaxSequences)
        {
            throw new LlmPqUnavailableException($"The LlmPq engine is overloaded: {_options.MaxQueueLength} requests are already waiting. Retry later.");
        }

        // The sampler is built here so a bad grammar fails the caller, not the loop.
        LlamaModel model = Model;
        var text = new TextStreamer(model, request.StopSequences);
        var sampler = new LlamaSampler(model, request.Sampling);
        var channel = Channel.CreateUnbounded<EngineEvent>(new UnboundedChannelOptions { SingleWriter = true });
        var sequence = new SequenceState(Interlocked.Increment(ref _nextId), request.Prompt) { ReusesPrefix = request.CachePrompt };
        var active = new Active(sequence, request, sampler, text, channel.Writer);
        if (cancellationToken.CanBeCanceled)
        {
            active.Cancellation = cancellationToken.Register(() => Post(() => Cancel(sequence, cancellationToken)));
        }

        bool posted = Post(() =>
        {
            if (cancellationToken.IsCancellationRequested)
            {
                active.Cancellation.Dispose();
                sampler.Dispose();
                channel.Writer.TryComplete(new OperationCanceledException("The request was cancelled.", cancellationToken));
                return;
            }

            Interlocked.Increment(ref _outstanding);
            _active.Add(sequence, active);
            _scheduler!.Enqueue(sequence);
        });
        if (!posted)
        {
            active.Cancellation.Dispose();
            sampler.Dispose();
            throw new LlmPqUnavailableException("The LlmPq engine has stopped.");
        }

        return new EngineStream(sequence.Id, channel.Reader);
    }

    /// <summary>Says why the engine is not ready: an iteration stuck past its watchdog deadline, or not started (or stopping).</summary>
    private LlmPqUnavailableException NotServing() => Iterations.Report() is { Overdue: true } stuck
        ? new(string.Create(CultureInfo.InvariantCulture, $"The LlmPq engine is stuck: an iteration has run {stuck.RunningSeconds:0.#} s, past its deadline of {stuck.DeadlineSeconds:0.#} s (a stage server is frozen or unreachable). Retry later."))
        : new("The LlmPq engine is not serving: start the host (or call StartAsync) first; it may also be loading or stopping.");

    /// <summary>Hands work to the loop thread; false once the loop has shut its inbox.</summary>
    private bool Post(Action action)
    {
        lock (_inboxGate)
        {
            if (_inboxClosed)
            {
                return false;
            }

            _inbox.Enqueue(action);

            // Inside the gate: once the inbox is closed the loop may end and the semaphore be disposed.
            _wake.Release();
        }

        return true;
    }

    /// <summary>The loop thread: load, serve until stopped, then fail what is left and unload.</summary>
    private void Run()
    {
        TokenBatch batch;
        try
        {
            batch = Load();
        }
        catch (Exception ex)
        {
            LogLoadFailed(_logger, ex, _options.ModelPath);
            _templates?.Dispose();
            _context?.Dispose();
            _model?.Dispose();
            _model = null;
            _loaded.TrySetException(ex);
            lock (_inboxGate)
            {
                _inboxClosed = true;
            }

            _stopped.TrySetResult();
            return;
        }

        _loaded.TrySetResult();
        Exception? failure = null;
        try
        {
            Loop(batch);
        }
        catch (Exception ex)
        {
            // An exception leaving this thread would end the process: stop serving and fail the requests instead.
            _stopping = true;
            LogLoopFailed(_logger, ex);
            failure = new LlmPqUnavailableException($"The LlmPq engine failed and stopped: {ex.Message}", ex);
        }
        finally
        {
            FailAll(failure ?? new LlmPqUnavailableException("The LlmPq engine stopped."));
            batch.Dispose();
            _templates!.Dispose();
            _context.Dispose();
            _model.Dispose();
            _metrics!.Dispose();
            LogStopped(_logger, ModelId);
            _stopped.TrySetResult();
        }
    }

    /// <summary>Loads the model, sizes and creates its context, and wires the scheduler; returns the batch iterations fill.</summary>
    [MemberNotNull(nameof(_model), nameof(_context))]
    private TokenBatch Load()
    {
        LlamaBackend.EnsureInitialized(_loggerFactory);
        _model = LoadModel();

        // The chat templates hold the model (and so its stage servers' connections) until the engine unloads them.
        _templates = ChatTemplates.Create(_model, _options.ChatTemplate is { } template && File.Exists(template) ? File.ReadAllText(template) : _options.ChatTemplate);

        // Past its training context a model degrades; keep conversations within it.
        int perSequence = _model.TrainingContextLength > 0 ? Math.Min(_options.ContextLength, _model.TrainingContextLength) : _options.ContextLength;
        LlamaContextOptions sizes = ContextSizes(perSequence);
        _context = CreateContext(_model, sizes);
        KvCapacity = (int)_context.ContextLength;
        ContextLength = Math.Min(perSequence, (int)_context.SequenceContextLength);
        CreateScheduler((int)_context.BatchSize);
        LogLoaded(_logger, ModelId, _model.LayerCount, ContextLength, KvCapacity, sizes.SharedKvCache, sizes.Threads);
        SchedulingLog.Started(_logger, _options.SchedulingPolicy, _options.TokenBudget, _options.TbtTarget);
        return new TokenBatch((int)_context.BatchSize);
    }

    /// <summary>Loads the whole model here, or its layers placed across the pipeline stages.</summary>
    private LlamaModel LoadModel()
    {
        if (_options.Stages.Count == 0)
        {
            return LlamaModel.Load(_options.ModelPath, new LlamaModelLoadOptions { GpuLayers = _options.GpuLayers });
        }

        (LlamaModel model, Placement placement) = LayerPlacement.Load(_options.ModelPath, [.. _options.Stages], _options.PipelineParallelism);
        string layout = string.Join(", ", _options.Stages.Select((s, i) => $"{placement.Devices[i]} {s.Endpoint ?? "in-process"}: {s.Layers} layers"));
        LogPlaced(_logger, layout);
        return model;
    }

    /// <summary>
    /// Sizes the context: its KV cache (per sequence or shared); its micro-batch (the budget, and every decode at once),
    /// which sizes the compute buffers; its batch, which also takes a whole prompt while no decode runs; its threads.
    /// </summary>
    private LlamaContextOptions ContextSizes(int perSequence)
    {
        int batchCapacity = Math.Max(_options.TokenBudget, _options.MaxSequences);
        bool shared = _options.SharedKvCache;
        int wholePrompt = Math.Min(WholePromptBatch, shared ? Math.Min(perSequence, _options.KvCacheTokens) : perSequence);
        return new LlamaContextOptions
        {
            ContextLength = (uint)(shared ? _options.KvCacheTokens : (long)perSequence * _options.MaxSequences),
            SharedKvCache = shared,
            BatchSize = (uint)Math.Max(batchCapacity, wholePrompt),
            MicroBatchSize = (uint)(_options.MicroBatchSize > 0 ? _options.MicroBatchSize : batchCapacity),
            SequenceCount = (uint)_options.MaxSequences,
            Threads = ContextThreads(_options),
        };
    }

    /// <summary>
    /// The context's CPU threads: the configured ones, else every core, except that with every layer on stage servers
    /// this process only looks up embeddings, so one thread, whose idle OpenMP partners would otherwise spin on cores
    /// the stage servers of this machine need.
    /// </summary>
    internal static int ContextThreads(LlmPqOptions options) =>
        options.Threads > 0 ? options.Threads
        : options.Stages.Count > 0 && !options.Stages.Any(s => s.InProcess) ? 1
        : Environment.ProcessorCount;

    /// <summary>Creates the context and learns whether llama.cpp pipelines micro-batches across the stages.</summary>
    private LlamaContext CreateContext(LlamaModel model, LlamaContextOptions sizes)
    {
        // llama.cpp decides on pipeline parallelism itself and only says so in its log.
        bool pipelined = false;
        LlamaContext context;
        using (LlamaBackend.ObserveLog(text =>
        {
            pipelined |= text.Contains("pipeline parallelism enabled", StringComparison.Ordinal);
            return false;
        }))
        {
            context = new LlamaContext(model, sizes);
        }

        PipelineParallel = pipelined;
        if (_options.Stages.Count > 0)
        {
            LogPipelineParallelism(_logger, pipelined, sizes.MicroBatchSize, sizes.BatchSize);
        }

        return context;
    }

    /// <summary>Creates the scheduler, the budget controller (with a TBT target) and the metrics that read them.</summary>
    private void CreateScheduler(int batchLimit)
    {
        // A shared cache shares a running prefix's cells; per-sequence cells copy a whole stream, worth it for a long prefix only.
        BatchScheduler scheduler = _scheduler = new BatchScheduler(_options.SchedulingPolicy, _options.TokenBudget, KvCapacity, _options.MaxSequences, batchLimit, _options.PrefixReuse)
        {
            PrefixCopy = _options.PrefixReuse,
            CopyMinimum = _context!.SharedKvCache ? 1 : StreamCopyMinimum,
            FillBatchWhenIdle = PipelineParallel,
        };
        _budget = _options.TbtTarget is { } tbt ? new TokenBudgetController(tbt, _options.TokenBudget) : null;
        _metrics = new EngineMetrics(_meterFactory, ModelId, () => QueueLength, () => RunningSequences, () => KvTokensInUse, KvCapacity, () => scheduler.TokenBudget);
    }

    /// <summary>Runs iterations until stopped: the inbox, a plan, its evictions, one decode, then sampling.</summary>
    private void Loop(TokenBatch batch)
    {
        BatchScheduler scheduler = _scheduler!;
        var samples = new List<(SequenceState Sequence, int Index)>();
        while (!_stopping)
        {
            // Submissions and cancellations from other threads.
            while (_inbox.TryDequeue(out Action? action))
            {
                action();
            }

            BatchPlan? plan = scheduler.Plan();
            PublishCounts(scheduler);
            if (plan is null)
            {
                _wake.Wait();
                continue;
            }

            Preempt(plan.Preempted);
            Trim(plan.Trims);
            foreach (SlotCopy copy in plan.Copies)
            {
                _context!.ShareSequence(copy.Source, copy.Slot, copy.Count);
            }

            CountPrefills(plan.Admitted);
            if (plan.Entries.Count == 0)
            {
                continue;
            }

            Fill(batch, plan, samples);
            long started = Stopwatch.GetTimestamp();
            Iterations.Begin(plan.TokenCount);
            if (!Decode(batch))
            {
                Iterations.End(completed: false);
                continue;
            }

            _metrics!.Batch(plan.PrefillTokens, plan.DecodeTokens);
            foreach (BatchEntry entry in plan.Entries)
            {
                entry.Sequence.MarkCached(entry.Count);
            }

            // With stages, llama_decode returns once the graph is sent; the first sample waits for its logits.
            long decoded = Stopwatch.GetTimestamp();
            foreach ((SequenceState s, int index) in samples)
            {
                Sample(s, index);
            }

            TimeSpan elapsed = Stopwatch.GetElapsedTime(started);
            if (_logger.IsEnabled(LogLevel.Trace))
            {
                double untilDecoded = Stopwatch.GetElapsedTime(started, decoded).TotalMilliseconds;
                LogIteration(_logger, plan.DecodeTokens, plan.PrefillTokens, plan.Entries.Count, elapsed.TotalMilliseconds, untilDecoded, samples.Count);
            }

            Measured(scheduler, plan, elapsed);
        }
    }

    /// <summary>Clears the evicted sequences' cells; they are recomputed when readmitted.</summary>
    private void Preempt(IReadOnlyList<Eviction> evictions)
    {
        foreach (Eviction eviction in evictions)
        {
            _context!.RemoveSequence(eviction.Slot);
            LogPreempted(_logger, eviction.Sequence.Id, eviction.Sequence.Tokens.Count);
        }

        if (evictions.Count > 0)
        {
            Interlocked.Add(ref _preemptions, evictions.Count);
            _metrics!.Preempted(evictions.Count);
        }
    }

    /// <summary>Removes the cells a plan takes from slots: reclaimed caches, and what an admitted sequence does not share with its slot's cache.</summary>
    private void Trim(IReadOnlyList<SlotTrim> trims)
    {
        foreach (SlotTrim trim in trims)
        {
            if (!_context!.RemoveSequence(trim.Slot, trim.From))
            {
                // This model's memory cannot drop part of a sequence (recurrent layers): drop it whole, stop reusing.
                _context.RemoveSequence(trim.Slot);
                trim.For?.Recompute();
                _scheduler!.PrefixReuse = false;
                LogPrefixReuseUnsupported(_logger);
            }
        }
    }

    /// <summary>Counts the tokens admitted sequences found cached and those they compute.</summary>
    private void CountPrefills(IReadOnlyList<SequenceState> admitted)
    {
        foreach (SequenceState s in admitted)
        {
            _metrics!.Prefill(s.Reused, s.Tokens.Count - s.Reused);
        }
    }

    /// <summary>Puts the plan's tokens into the batch (in slot order) and lists the entries to sample from (by batch index).</summary>
    private void Fill(TokenBatch batch, BatchPlan plan, List<(SequenceState Sequence, int Index)> samples)
    {
        batch.Clear();
        samples.Clear();
        foreach (BatchEntry entry in plan.BatchOrder)
        {
            SequenceState s = entry.Sequence;
            if (_active.TryGetValue(s, out Active? owner) && !owner.Scheduled)
            {
                owner.Scheduled = true;
                _metrics!.Scheduled(owner.Clock.Elapsed);
            }

            for (int k = 0; k < entry.Count; k++)
            {
                int position = s.Cached + k;
                bool last = k == entry.Count - 1 && entry.Samples;
                int index = batch.Add(s.Tokens[position], position, s.Slot, last);
                if (last)
                {
                    samples.Add((s, index));
                }
            }
        }
    }

    /// <summary>Decodes the batch; false when it did not run (the running requests failed, or a sequence was evicted to make room).</summary>
    private bool Decode(TokenBatch batch)
    {
        bool decoded;
        try
        {
            decoded = _context!.Decode(batch);
        }
        catch (Exception ex) when (ex is LlamaException or OperationCanceledException)
        {
            // A failed decode leaves the cache in an unknown state: end what ran in it, keep the queue.
            LogDecodeFailed(_logger, ex, batch.Count);
            foreach (SequenceState s in _scheduler!.Running.ToList())
            {
                Fail(s, new LlmPqUnavailableException($"The model failed while generating: {ex.Message}", ex));
            }

            _context!.ClearMemory();
            _scheduler!.ForgetIdleCaches();
            return false;
        }

        if (!decoded)
        {
            // llama.cpp found no room although the token accounting did (a fragmented cache): make room, retry.
            if (_scheduler!.ReclaimIdle() is { } trim)
            {
                Trim([trim]);
            }
            else
            {
                Preempt([_scheduler.EvictYoungest()]);
            }

            return false;
        }

        return true;
    }

    private void Sample(SequenceState sequence, int index)
    {
        Active active = _active[sequence];
        int token;
        try
        {
            token = active.Sampler.Sample(_context!, index);
        }
        catch (LlamaException ex)
        {
            // One request's sampler (a grammar that allows no token) fails that request, not the loop.
            LogSamplingFailed(_logger, ex, sequence.Id);
            Fail(sequence, new LlmPqUnavailableException($"The model failed while sampling: {ex.Message}", ex));
            return;
        }

        if (sequence.Generated == 0 && active.FirstToken is null)
        {
            active.FirstToken = active.Clock.Elapsed;
            _metrics!.FirstToken(active.FirstToken.Value);
        }

        if (_model!.IsEndOfGeneration(token))
        {
            Finish(sequence, FinishReason.Stop);
            return;
        }

        if (active.Request.TopLogprobs is int top)
        {
            active.Writer.TryWrite(new EngineEvent.Logprob(TokenLogprob.From(_model, _context!.Logits(index), token, top)));
        }

        sequence.Append(token);
        string text = active.Text.Push(token);
        if (text.Length > 0)
        {
            active.Writer.TryWrite(new EngineEvent.Text(text));
        }

        if (active.Text.Stopped)
        {
            Finish(sequence, FinishReason.Stop);
        }
        else if (sequence.Generated >= active.Request.MaxOutputTokens || sequence.Tokens.Count >= ContextLength)
        {
            Finish(sequence, FinishReason.Length);
        }
    }

    private void Finish(SequenceState sequence, FinishReason reason)
    {
        int cachedTokens = Math.Min(sequence.Reused, sequence.PromptLength);
        Active active = Detach(sequence, keepCells: true);
        string rest = active.Text.Flush();
        if (rest.Length > 0)
        {
            active.Writer.TryWrite(new EngineEvent.Text(rest));
        }

        active.Writer.TryWrite(new EngineEvent.Finished(reason, sequence.PromptLength, sequence.Generated, cachedTokens, sequence.Tokens.Skip(sequence.PromptLength).ToArray(), sequence.Preemptions));
        active.Writer.TryComplete();
        TimeSpan duration = active.Clock.Elapsed;
        _metrics!.Completed(duration, duration - (active.FirstToken ?? duration), sequence.PromptLength, sequence.Generated);
        LogFinished(_logger, sequence.Id, reason, sequence.PromptLength, sequence.Generated, duration.TotalMilliseconds, sequence.Preemptions);
    }

    private void Cancel(SequenceState sequence, CancellationToken token)
    {
        if (_active.ContainsKey(sequence))
        {
            // A cancelled request frees its cells: its caller is gone, and so, likely, is its conversation.
            Active active = Detach(sequence, keepCells: false);
            var cancelled = new OperationCanceledException("The request was cancelled.", token);
            active.Writer.TryComplete(cancelled);
            _metrics?.Ended(active.Clock.Elapsed, cancelled);
            LogCancelled(_logger, sequence.Id, sequence.Generated);
        }
    }

    private void Fail(SequenceState sequence, Exception error)
    {
        Active active = Detach(sequence, keepCells: false);
        active.Writer.TryComplete(error);
        _metrics?.Ended(active.Clock.Elapsed, error);
    }

    private void FailAll(Exception error)
    {
        lock (_inboxGate)
        {
            _inboxClosed = true;
        }

        while (_inbox.TryDequeue(out Action? action))
        {
            action();
        }

        foreach (SequenceState s in _active.Keys.ToList())
        {
            Fail(s, error);
        }
    }

    /// <summary>Takes a sequence out of the scheduler and releases what it holds; its cells stay for reuse when valid and the scheduler keeps them.</summary>
    private Active Detach(SequenceState sequence, bool keepCells)
    {
        Active active = _active[sequence];
        _active.Remove(sequence);
        Interlocked.Decrement(ref _outstanding);
        int slot = sequence.Slot;
        if (!_scheduler!.Remove(sequence, keepCells) && slot >= 0)
        {
            _context!.RemoveSequence(slot);
        }

        active.Cancellation.Dispose();
        active.Sampler.Dispose();
        return active;
    }

    private void PublishCounts(BatchScheduler scheduler)
    {
        Volatile.Write(ref _queued, scheduler.Waiting.Count);
        Volatile.Write(ref _running, scheduler.Running.Count);
        Volatile.Write(ref _kvTokens, scheduler.KvTokensCached);
    }

    /// <summary>Reports an iteration's time (decode and sampling) and, with a TBT target, retunes the next budget.</summary>
    private void Measured(BatchScheduler scheduler, BatchPlan plan, TimeSpan elapsed)
    {
        _metrics!.Iteration(plan.Kind, elapsed);
        if (Iterations.End(completed: true) is { } watched && watched.Elapsed > watched.Deadline)
        {
            LogIterationOverdue(_logger, watched.Elapsed.TotalSeconds, watched.Deadline.TotalSeconds, plan.TokenCount);
        }

        if (_budget is null)
        {
            return;
        }

        _budget.Observe(plan.TokenCount, plan.DecodeTokens, elapsed);
        int decodes = scheduler.Decodes;
        if (_budget.Choose(decodes, out TimeSpan predicted) is int budget && budget != scheduler.TokenBudget)
        {
            SchedulingLog.BudgetChanged(_logger, scheduler.TokenBudget, budget, predicted.TotalMilliseconds, decodes, _budget.Target.TotalMilliseconds);
            scheduler.TokenBudget = budget;
        }
    }

    /// <summary>A running request's engine-side state (loop thread only).</summary>
    private sealed class Active(SequenceState sequence, EngineRequest request, LlamaSampler sampler, TextStreamer text, ChannelWriter<EngineEvent> writer)
    {
        public SequenceState Sequence { get; } = sequence;

        public EngineRequest Request { get; } = request;

        public LlamaSampler Sampler { get; } = sampler;

        public TextStreamer Text { get; } = text;

        public ChannelWriter<EngineEvent> Writer { get; } = writer;

        public Stopwatch Clock { get; } = Stopwatch.StartNew();

        public TimeSpan? FirstToken { get; set; }

        /// <summary>Gets or sets a value indicating whether an iteration has computed any of its tokens yet.</summary>
        public bool Scheduled { get; set; }

        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
