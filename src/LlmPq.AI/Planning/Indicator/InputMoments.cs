namespace LlmPq.Planning.Indicator;

/// <summary>
/// A proxy, from the weights alone, for the second moment E[x_i²] of each input channel of a layer's matrices,
/// where LLM-PQ measures the input variance on calibration data.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>The input of <c>attn_q/k/v/qkv</c> is the output of <c>attn_norm</c>, and of <c>ffn_gate/up</c> (and their
/// <c>_exps</c>/<c>_shexp</c> forms) that of <c>ffn_norm</c> (<c>attn_norm</c> in architectures without one):
/// RMSNorm makes the mean of h_i² over the channels 1, so with every channel taken at that mean,
/// E[x_i²] = g_i² (+ b_i² for a LayerNorm with a bias).</item>
/// <item>Through a matrix, with inputs taken as uncorrelated, an output has E[y_j²] = Σ_i W[j, i]² E[x_i²]; its mean over
/// the outputs stands for every output.</item>
/// <item><c>attn_output</c> reads a convex mix of values, at most E[v²] (attention on one token), taken as that bound.</item>
/// <item><c>ffn_down</c> reads silu(a)·b with a, b the gate and up outputs, taken as independent normals:
/// E[silu(a)²]·E[b²] (E[silu(b)²] without a gate).</item>
/// <item>Anything else reads unit-RMS inputs: 1.</item>
/// </list>
/// </remarks>
internal sealed class InputMoments
{
    private readonly Dictionary<string, MatrixErrors> _byRole;
    private readonly Norm? _attentionNorm;
    private readonly Norm? _feedForwardNorm;

    /// <summary>Initializes the proxy for one layer.</summary>
    /// <param name="matrices">The layer's measured matrices.</param>
    /// <param name="attentionNorm">The layer's <c>attn_norm</c>, when it has one.</param>
    /// <param name="feedForwardNorm">The layer's <c>ffn_norm</c>, when it has one.</param>
    public InputMoments(IEnumerable<MatrixErrors> matrices, Norm? attentionNorm, Norm? feedForwardNorm)
    {
        _byRole = matrices.ToDictionary(m => WeightMatrices.Role(m.Tensor), StringComparer.Ordinal);
        _attentionNorm = attentionNorm;
        _feedForwardNorm = feedForwardNorm ?? attentionNorm;
    }

    /// <summary>Gets E[x_i²] for every input channel i of <paramref name="matrix"/>.</summary>
    public double[] Of(MatrixErrors matrix)
    {
        string role = WeightMatrices.Role(matrix.Tensor);
        int inputs = matrix.ColumnSquares.Length;
        if (role is "attn_q" or "attn_k" or "attn_v" or "attn_qkv")
        {
            return Normalized(_attentionNorm, inputs);
        }

        if (role.StartsWith("ffn_gate", StringComparison.Ordinal) || role.StartsWith("ffn_up", StringComparison.Ordinal))
        {
            return Normalized(_feedForwardNorm, inputs);
        }

        double moment = 1;
        if (role == "attn_output")
        {
            moment = OutputMoment("attn_v") ?? OutputMoment("attn_qkv") ?? 1;
        }
        else if (role.StartsWith("ffn_down", StringComparison.Ordinal))
        {
            string variant = role["ffn_down".Length..];
            double? gate = OutputMoment("ffn_gate" + variant);
            double? up = OutputMoment("ffn_up" + variant);
            moment = (gate, up) switch
            {
                (double a, double b) => SiluSquared(a) * b,
                (null, double b) => SiluSquared(b),
                _ => 1,
            };
        }

        return Filled(inputs, moment);
    }

    /// <summary>Gets E[silu(a)²] for a ~ N(0, <paramref name="variance"/>), by a midpoint rule over ±8 standard deviations.</summary>
    internal static double SiluSquared(double variance)
    {
        const int Steps = 320;
        const double Range = 8;
        double sigma = Math.Sqrt(variance);
        double step = 2 * Range / Steps;
        double sum = 0;
        for (int k = 0; k < Steps; k++)
        {
            double z = -Range + ((k + 0.5) * step);
            double a = sigma * z;
            double silu = a / (1 + Math.Exp(-a));
            sum += silu * silu * Math.Exp(-z * z / 2);
        }

        return sum * step / Math.Sqrt(2 * Math.PI);
    }

    private static double[] Normalized(Norm? norm, int inputs)
    {
        if (norm is not { } n)
        {
            return Filled(inputs, 1);
        }

        var moments = new double[n.Weight.Length];
        for (int i = 0; i < moments.Length; i++)
        {
            double bias = n.Bias is { } b && i < b.Length ? b[i] : 0;
            moments[i] = ((double)n.Weight[i] * n.Weight[i]) + (bias * bias);
        }

        // A norm of another width than the matrix's rows (an architecture this does not know) counts by its mean.
        return moments.Length == inputs ? moments : Filled(inputs, moments.DefaultIfEmpty(1).Average());
    }

    private static double[] Filled(int length, double value)
    {
        var values = new double[length];
        Array.Fill(values, value);
        return values;
    }

    private double? OutputMoment(string role)
    {
        if (!_byRole.TryGetValue(role, out var matrix) || matrix.Rows == 0)
        {
            return null;
        }

        var inputs = Of(matrix);
        double sum = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            sum += matrix.ColumnSquares[i] * inputs[i];
        }

        return sum / matrix.Rows;
    }

    /// <summary>The weight (and bias, for a LayerNorm) of a normalization.</summary>
    internal readonly record struct Norm(float[] Weight, float[]? Bias);
}
