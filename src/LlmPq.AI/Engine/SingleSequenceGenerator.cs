using System.Diagnostics;
using LlmPq.Native;

namespace LlmPq.Engine;

/// <summary>The tokens of one generation and how long its two phases took.</summary>
internal sealed record GenerationResult(IReadOnlyList<int> PromptTokens, IReadOnlyList<int> Tokens, bool EndedByModel, TimeSpan PrefillTime, TimeSpan DecodeTime)
{
    /// <summary>Gets decode speed in tokens per second (the first token comes from the prefill and is not counted).</summary>
    public double DecodeTokensPerSecond => Tokens.Count > 1 && DecodeTime > TimeSpan.Zero ? (Tokens.Count - 1) / DecodeTime.TotalSeconds : 0;
}

/// <summary>
/// Generates for one sequence on a context it owns for the duration of the call: the prompt in batches,
/// then one token per decode. The reference path that the batching engine is checked against.
/// </summary>
internal static class SingleSequenceGenerator
{
    /// <summary>Runs <paramref name="prompt"/> through sequence 0 of <paramref name="context"/> and samples up to <paramref name="maxTokens"/> tokens.</summary>
    public static GenerationResult Generate(LlamaContext context, LlamaSampler sampler, IReadOnlyList<int> prompt, int maxTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("The prompt has no tokens.", nameof(prompt));
        }

        if (prompt.Count + maxTokens > context.ContextLength)
        {
            throw new ArgumentException($"The prompt ({prompt.Count} tokens) and {maxTokens} new tokens exceed the context of {context.ContextLength} tokens.", nameof(prompt));
        }

        context.RemoveSequence(0);
        using var batch = new TokenBatch((int)context.BatchSize);
        var stopwatch = Stopwatch.StartNew();
        int last = 0;
        for (int start = 0; start < prompt.Count; start += batch.Capacity)
        {
            cancellationToken.ThrowIfCancellationRequested();
            batch.Clear();
            int end = Math.Min(prompt.Count, start + batch.Capacity);
            for (int i = start; i < end; i++)
            {
                last = batch.Add(prompt[i], i, 0, wantLogits: i == prompt.Count - 1);
            }

            DecodeOrThrow(context, batch);
        }

        TimeSpan prefill = stopwatch.Elapsed;
        stopwatch.Restart();
        var output = new List<int>(maxTokens);
        bool endedByModel = false;
        while (output.Count < maxTokens)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int token = sampler.Sample(context, last);
            if (context.Model.IsEndOfGeneration(token))
            {
                endedByModel = true;
                break;
            }

            output.Add(token);
            if (output.Count == maxTokens)
            {
                break;
            }

            batch.Clear();
            last = batch.Add(token, prompt.Count + output.Count - 1, 0, wantLogits: true);
            DecodeOrThrow(context, batch);
        }

        return new GenerationResult(prompt, output, endedByModel, prefill, stopwatch.Elapsed);
    }

    private static void DecodeOrThrow(LlamaContext context, TokenBatch batch)
    {
        if (!context.Decode(batch))
        {
            throw new LlamaException($"The KV cache ({context.ContextLength} tokens) has no room for a batch of {batch.Count} tokens.");
        }
    }
}
