using System.Runtime.ExceptionServices;
using LlmPq.Gguf;
using LlmPq.Native;

namespace LlmPq.Planning.Indicator;

/// <summary>
/// Computes the quality indicator ω[layer, type], LLM-PQ's per-layer cost of a quantization type, from the model's own
/// weights, or from a fixed table when there are no weights.
/// </summary>
/// <remarks>
/// <para>
/// LLM-PQ's variance indicator is Σ s_w²·Var(x) over a layer's linear layers: the quantization step squared times the
/// input variance measured on calibration data, a first-order estimate of how much quantization disturbs the layer's
/// outputs. This computes the same quantity without calibration data, measuring the error instead of deriving it from
/// a step:
/// </para>
/// <para>
/// ω[l, t] = Σ over the weight matrices W of layer l of Σ_j Σ_i (Q_t(W)[j, i] − W[j, i])² · E[x_i²],
/// </para>
/// <para>
/// with Q_t ggml's own quantization to t followed by its dequantization (<c>ggml_quantize_chunk</c> without an
/// importance matrix, exactly what <c>llama_model_quantize</c> writes, then the type's <c>to_float</c>), j the rows
/// (outputs) and i the columns (inputs). That is E‖(Q_t(W) − W)·x‖², the expected squared disturbance of the
/// matrix's output for one token, when the inputs x are uncorrelated with second moments E[x_i²]. For a uniform
/// quantizer of step s the mean squared error is s²/12, so for a matrix of n inputs and m outputs ω is
/// m·n·s²/12·Var(x), LLM-PQ's term times the matrix's size (which LLM-PQ approximates by weighting FFN layers ×4).
/// E[x_i²] comes from the weights too: g_i² of the preceding norm for the matrices that read the normalized residual
/// stream (attention q/k/v, feed-forward gate/up), E[v²] for the attention output and E[silu(gate)²]·E[up²] for the
/// feed-forward down projection, with E[y_j²] = Σ_i W[j, i]²·E[x_i²] averaged over a matrix's outputs; 1 for any
/// other matrix. F16 gets the error of rounding the file's weights to F16: 0 when they are F16.
/// </para>
/// <para>
/// Matrices with more rows than <see cref="QualityIndicatorOptions.MaxRowsPerMatrix"/> are measured on that many rows,
/// evenly spaced (the middle row of each of that many equal stripes), and the sums scaled by rows / sampled rows, so
/// the result is deterministic. A type whose blocks do not tile a matrix's rows cannot be given to that matrix, so
/// its layer gets no value (null) for it.
/// </para>
/// </remarks>
public static class QualityIndicator
{
    /// <summary>The <see cref="QualityIndicatorTable.Method"/> of tables computed from the weights.</summary>
    public const string WeightsMethod =
        "weights: sum over the matrices W of the layer of sum_ij (dequant(quant_t(W)) - W)_ij^2 * E[x_i^2]; "
        + "ggml_quantize_chunk without imatrix; E[x^2] from the norm weights, propagated through attn_v and the SiLU-gated FFN";

    /// <summary>The <see cref="QualityIndicatorTable.Method"/> of tables made by <see cref="Fallback(IReadOnlyList{long}, IReadOnlyList{GgmlType})"/>.</summary>
    public const string FallbackMethod =
        "fallback: LLM-PQ table {2: 6.4, 3: 4.8, 4: 1.6, 8: 0.4, 16: 0.1} interpolated at the bits per weight of the type, "
        + "times the parameters of the layer over their mean over the layers";

    // LLM-PQ's partitioner/indicator.py constants, by bits per weight.
    private static readonly (double Bits, double Cost)[] s_fallbackTable = [(2, 6.4), (3, 4.8), (4, 1.6), (8, 0.4), (16, 0.1)];

    /// <summary>Gets the candidate types the indicator measures by default: every planning type (<see cref="PlanTypes.All"/>).</summary>
    public static IReadOnlyList<GgmlType> CandidateTypes => PlanTypes.All;

    /// <summary>Computes ω from the weights of a GGUF model.</summary>
    /// <param name="path">The path of the model: a GGUF file whose matrices are F32, F16, BF16 or any type ggml dequantizes.</param>
    /// <param name="options">The candidate types and the sampling; null for the defaults.</param>
    /// <param name="progress">Receives the fraction of the work done, from 0 to 1.</param>
    /// <param name="cancellationToken">Stops the work.</param>
    /// <returns>ω for every layer and candidate type.</returns>
    /// <exception cref="ArgumentException">
    /// The options name no type, a type twice, or a type ggml cannot quantize to without an importance matrix; or
    /// <see cref="QualityIndicatorOptions.MaxRowsPerMatrix"/> is less than 1.
    /// </exception>
    /// <exception cref="GgufFormatException">The file is not a valid GGUF file, or has changed while being read.</exception>
    /// <exception cref="NotSupportedException">A matrix is of a type ggml cannot dequantize.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    public static QualityIndicatorTable Compute(
        string path,
        QualityIndicatorOptions? options = null,
        IProgress<double>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new QualityIndicatorOptions();
        var types = CheckTypes(options.Types, nameof(options));
        var refused = types.Where(type => !GgmlQuantizer.CanQuantize(type, GgmlTypes.BlockSize(type))).ToArray();
        if (refused.Length > 0)
        {
            throw new ArgumentException($"ggml cannot quantize to {string.Join(", ", refused)} without an importance matrix.", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRowsPerMatrix, 1, nameof(options));

        var file = GgufReader.Read(path);
        using var data = GgufTensorData.Open(path, file);

        // Largest first, so the matrices measured last, in parallel, are the quick ones.
        var matrices = WeightMatrices.Of(file).OrderByDescending(t => Work(t, options.MaxRowsPerMatrix)).ToArray();
        double total = Math.Max(1, matrices.Sum(t => (double)Work(t, options.MaxRowsPerMatrix)));
        double done = 0;
        var progressLock = new Lock();
        var measured = new MatrixErrors[matrices.Length];
        var parallel = new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = options.MaxDegreeOfParallelism };
        try
        {
            Parallel.For(0, matrices.Length, parallel, i =>
            {
                measured[i] = MatrixErrors.Measure(data, matrices[i], types, options.MaxRowsPerMatrix, cancellationToken);
                lock (progressLock)
                {
                    done += Work(matrices[i], options.MaxRowsPerMatrix);
                    progress?.Report(done / total);
                }
            });
        }
        catch (AggregateException e)
        {
            // One matrix's failure says what is wrong; the wrapper does not.
            ExceptionDispatchInfo.Throw(e.Flatten().InnerExceptions[0]);
        }

        var layers = measured.ToLookup(m => m.Tensor.Layer!.Value);
        var omega = new IReadOnlyList<double?>[WeightMatrices.LayerCount(file)];
        for (int layer = 0; layer < omega.Length; layer++)
        {
            var moments = new InputMoments(layers[layer], ReadNorm(data, layer, "attn_norm"), ReadNorm(data, layer, "ffn_norm"));
            omega[layer] = LayerOmega(layers[layer], moments, types.Length);
        }

        progress?.Report(1);
        return new QualityIndicatorTable { Types = types, Omega = omega, Method = WeightsMethod, MaxRowsPerMatrix = options.MaxRowsPerMatrix };
    }

    /// <summary>Makes ω without weights, for a model known only by its shape: LLM-PQ's constant table scaled by layer size.</summary>
    /// <param name="layerParameters">The number of weights in each layer's matrices.</param>
    /// <param name="types">The candidate types; null for <see cref="CandidateTypes"/>.</param>
    /// <returns>
    /// ω[l, t] = <see cref="FallbackCost"/>(t) · P_l / mean(P), for every type (the shapes that would rule a type out
    /// are not known here); deterministic, where LLM-PQ scales each layer by a random factor.
    /// </returns>
    /// <exception cref="ArgumentException">A count is negative, or the types are empty, repeated or not ggml types.</exception>
    public static QualityIndicatorTable Fallback(IReadOnlyList<long> layerParameters, IReadOnlyList<GgmlType>? types = null)
    {
        ArgumentNullException.ThrowIfNull(layerParameters);
        if (layerParameters.Any(p => p < 0))
        {
            throw new ArgumentException("A layer has a negative number of parameters.", nameof(layerParameters));
        }

        return Fallback(layerParameters, CheckTypes(types ?? CandidateTypes, nameof(types)), fits: null);
    }

    /// <summary>Makes ω without reading weights, from a GGUF file's tensor table (a vocabulary-only or header-only file will do).</summary>
    /// <param name="file">The model's header and tensor table.</param>
    /// <param name="types">The candidate types; null for <see cref="CandidateTypes"/>.</param>
    /// <returns>
    /// As <see cref="Fallback(IReadOnlyList{long}, IReadOnlyList{GgmlType})"/> with each layer's matrices' weights,
    /// and null where a matrix's rows are not whole blocks of the type.
    /// </returns>
    /// <exception cref="ArgumentException">The types are empty, repeated or not ggml types.</exception>
    public static QualityIndicatorTable Fallback(GgufFile file, IReadOnlyList<GgmlType>? types = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        var checkedTypes = CheckTypes(types ?? CandidateTypes, nameof(types));
        var layers = WeightMatrices.Of(file).ToLookup(t => t.Layer!.Value);
        int count = WeightMatrices.LayerCount(file);
        var parameters = Enumerable.Range(0, count).Select(l => layers[l].Sum(t => t.ElementCount)).ToArray();
        return Fallback(parameters, checkedTypes, (layer, type) => layers[layer].All(t => t.Shape[0] % GgmlTypes.BlockSize(type) == 0));
    }

    /// <summary>
    /// Gets the fallback cost of a type: LLM-PQ's constants {2: 6.4, 3: 4.8, 4: 1.6, 8: 0.4, 16: 0.1}, linearly
    /// interpolated at the type's bits per weight (Q4_K's 4.5 gives 1.45), and held flat beyond 2 and 16 bits.
    /// </summary>
    /// <param name="type">A ggml type.</param>
    /// <returns>The cost, from 0.1 to 6.4; smaller for more bits.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a ggml type.</exception>
    public static double FallbackCost(GgmlType type)
    {
        double bits = GgmlTypes.BitsPerWeight(type);
        if (bits <= s_fallbackTable[0].Bits)
        {
            return s_fallbackTable[0].Cost;
        }

        for (int i = 1; i < s_fallbackTable.Length; i++)
        {
            var (lowBits, lowCost) = s_fallbackTable[i - 1];
            var (highBits, highCost) = s_fallbackTable[i];
            if (bits <= highBits)
            {
                return lowCost + ((bits - lowBits) / (highBits - lowBits) * (highCost - lowCost));
            }
        }

        return s_fallbackTable[^1].Cost;
    }

    private static QualityIndicatorTable Fallback(IReadOnlyList<long> parameters, IReadOnlyList<GgmlType> types, Func<int, GgmlType, bool>? fits)
    {
        double mean = parameters.Count == 0 ? 0 : parameters.Average(p => (double)p);
        var omega = new IReadOnlyList<double?>[parameters.Count];
        for (int layer = 0; layer < omega.Length; layer++)
        {
            double scale = mean > 0 ? parameters[layer] / mean : 0;
            omega[layer] = [.. types.Select(type => fits is null || fits(layer, type) ? FallbackCost(type) * scale : (double?)null)];
        }

        return new QualityIndicatorTable { Types = types, Omega = omega, Method = FallbackMethod };
    }

    private static GgmlType[] CheckTypes(IReadOnlyList<GgmlType> types, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(types, parameterName);
        if (types.Count == 0 || types.Distinct().Count() != types.Count || types.Any(t => !GgmlTypes.IsDefined((long)t)))
        {
            throw new ArgumentException("The candidate types are one or more distinct ggml types.", parameterName);
        }

        return [.. types];
    }

    // The weights of one matrix that are read and quantized: its sampled rows.
    private static long Work(GgufTensorInfo tensor, int maxRows) => MatrixErrors.SampleSize(GgufTensorData.RowCount(tensor), maxRows) * tensor.Shape[0];

    private static double?[] LayerOmega(IEnumerable<MatrixErrors> matrices, InputMoments moments, int typeCount)
    {
        var omega = new double?[typeCount];
        Array.Fill(omega, 0);
        foreach (var matrix in matrices)
        {
            var inputs = moments.Of(matrix);
            for (int t = 0; t < typeCount; t++)
            {
                if (matrix.ColumnErrors[t] is not { } errors)
                {
                    // A type one matrix cannot take is not offered to the layer.
                    omega[t] = null;
                    continue;
                }

                double sum = 0;
                for (int i = 0; i < errors.Length; i++)
                {
                    sum += errors[i] * inputs[i];
                }

                omega[t] += sum;
            }
        }

        return omega;
    }

    private static InputMoments.Norm? ReadNorm(GgufTensorData data, int layer, string name)
    {
        var weight = ReadVector(data, $"blk.{layer}.{name}.weight");
        return weight is null ? null : new InputMoments.Norm(weight, ReadVector(data, $"blk.{layer}.{name}.bias"));
    }

    private static float[]? ReadVector(GgufTensorData data, string name)
    {
        if (!data.File.TryGetTensor(name, out var tensor))
        {
            return null;
        }

        var values = new float[tensor.ElementCount];
        GgmlQuantizer.ToFloat(tensor.Type, data.ReadTensor(tensor), values);
        return values;
    }
}
