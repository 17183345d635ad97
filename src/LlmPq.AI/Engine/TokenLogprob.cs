using LlmPq.Native;

namespace LlmPq.Engine;

/// <summary>A sampled token's log-probability under the model (before sampling's filters) and its most likely alternatives.</summary>
/// <param name="Token">The token's text.</param>
/// <param name="Logprob">Its natural log-probability.</param>
/// <param name="Top">The most likely tokens at that position, most likely first.</param>
internal sealed record TokenLogprob(string Token, float Logprob, IReadOnlyList<TopLogprob> Top)
{
    /// <summary>The <c>ChatResponseUpdate.AdditionalProperties</c> key of an update's token log-probabilities.</summary>
    public const string PropertyName = "logprobs";

    /// <summary>The most alternatives a request may ask for, as OpenAI allows.</summary>
    public const int MaxTop = 20;

    /// <summary>Computes the log-softmax of one position's logits for the sampled token and the <paramref name="top"/> most likely.</summary>
    public static TokenLogprob From(LlamaModel model, ReadOnlySpan<float> logits, int token, int top)
    {
        float logZ = (float)LogitMath.LogSumExp(logits);
        var best = new PriorityQueue<int, float>(top + 1);
        for (int i = 0; i < logits.Length && top > 0; i++)
        {
            best.Enqueue(i, logits[i]);
            if (best.Count > top)
            {
                best.Dequeue();
            }
        }

        var alternatives = new TopLogprob[best.Count];
        for (int i = alternatives.Length - 1; i >= 0; i--)
        {
            int id = best.Dequeue();
            alternatives[i] = new TopLogprob(Text(model, id), logits[id] - logZ);
        }

        return new TokenLogprob(Text(model, token), logits[token] - logZ, alternatives);
    }

    private static string Text(LlamaModel model, int token) => model.Detokenize([token], removeSpecial: false, unparseSpecial: true);
}

/// <summary>One alternative token at a position and its natural log-probability.</summary>
/// <param name="Token">The token's text.</param>
/// <param name="Logprob">Its natural log-probability.</param>
internal sealed record TopLogprob(string Token, float Logprob);
