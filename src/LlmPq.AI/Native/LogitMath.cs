namespace LlmPq.Native;

/// <summary>Arithmetic on a position's logits, as llama.cpp returns them.</summary>
internal static class LogitMath
{
    /// <summary>Gets log Σ exp(logit), shifted by the largest logit so that no exponential overflows, in double precision.</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float l in logits)
        {
            max = Math.Max(max, l);
        }

        double sum = 0;
        foreach (float l in logits)
        {
            sum += Math.Exp(l - max);
        }

        return max + Math.Log(sum);
    }
}
