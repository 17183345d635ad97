using LlmPq.Planning;

namespace LlmPq.Stages;

/// <summary>Turns a plan into the engine's settings: its stages, token budget and micro-batch.</summary>
public static class PlanStages
{
    /// <summary>
    /// Sets <paramref name="options"/> to serve <paramref name="plan"/>: one stage per planned stage with its layer
    /// count, memory need, endpoint (a stage server the cluster file names) or else a local server with the stage's
    /// threads; the plan's token budget as <c>n_batch</c> and a micro-batch (<c>n_ubatch</c>) of one prefill
    /// micro-batch per stage, so every stage has one in flight, unless the stages are <see cref="Oversubscribed(Plan, int)"/>
    /// (then <see cref="LlmPqOptions.PipelineParallelism"/> is set off, else on); and the plan's global batch as the sequences.
    /// </summary>
    /// <param name="options">The options to change; their stages are replaced.</param>
    /// <param name="plan">The plan (made for the model <see cref="LlmPqOptions.ModelPath"/> holds, quantized by it).</param>
    public static void Apply(LlmPqOptions options, Plan plan)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(plan);
        options.Stages.Clear();
        foreach (StagePlan stage in plan.Stages)
        {
            bool cpu = string.Equals(stage.Device.Kind, "CPU", StringComparison.OrdinalIgnoreCase);
            options.Stages.Add(new LlmPqStageOptions
            {
                Endpoint = stage.Device.Endpoint,
                Layers = stage.LayerEnd - stage.LayerStart,
                Device = cpu && stage.Device.Endpoint is null ? "CPU" : null,
                Threads = stage.Device.Threads,
                MemoryBytes = stage.MemoryBytes,
            });
        }

        options.TokenBudget = plan.TokenBudget;
        options.MicroBatchSize = Math.Max(plan.DecodeMicroBatch, plan.TokenBudget / plan.Stages.Count);
        options.MaxSequences = plan.Workload.BatchSize;
        options.PipelineParallelism = !Oversubscribed(plan, Environment.ProcessorCount);
    }

    /// <summary>
    /// Gets whether the plan's stages are all servers on this machine that together want more threads than it has
    /// cores. Overlapping their micro-batches then only makes a stage's threads wait, spinning at its barriers, for
    /// cores another stage holds (the planner prices such stages one after another): they run in turn instead.
    /// </summary>
    /// <param name="plan">The plan.</param>
    /// <param name="cores">This machine's cores.</param>
    /// <returns><see langword="true"/> when the stages should not overlap.</returns>
    public static bool Oversubscribed(Plan plan, int cores)
    {
        ArgumentNullException.ThrowIfNull(plan);
        bool local = plan.Stages.All(s => string.Equals(s.Device.Kind, "CPU", StringComparison.OrdinalIgnoreCase) && s.Device.Endpoint is null);
        return local && Oversubscribed(plan.Stages.Select(s => s.Device.Threads), cores);
    }

    /// <summary>Gets whether stages of this machine with these threads (0: every core) want more threads than it has cores.</summary>
    /// <param name="threads">Each stage's threads.</param>
    /// <param name="cores">This machine's cores.</param>
    /// <returns><see langword="true"/> when the stages should not overlap.</returns>
    public static bool Oversubscribed(IEnumerable<int> threads, int cores) => threads.Sum(t => t > 0 ? t : cores) > cores;
}
