using System.Numerics;
using LlmPq.Gguf;
using LlmPq.Native;

namespace LlmPq.Planning.Indicator;

/// <summary>
/// What quantizing one weight matrix to each candidate type does to it, column by column (input channel by input
/// channel), measured on a deterministic sample of its rows with ggml's own quantize and dequantize routines.
/// </summary>
internal sealed class MatrixErrors
{
    // Rows are quantized this many weights at a time, so the buffers stay in cache.
    private const int ChunkElements = 1 << 16;

    // A row is buffered whole; no model has rows near this long.
    private const int MaxRowLength = 1 << 26;

    private MatrixErrors(GgufTensorInfo tensor, long rows, double[]?[] columnErrors, double[] columnSquares)
    {
        Tensor = tensor;
        Rows = rows;
        ColumnErrors = columnErrors;
        ColumnSquares = columnSquares;
    }

    /// <summary>Gets the matrix.</summary>
    public GgufTensorInfo Tensor { get; }

    /// <summary>Gets the number of rows (outputs) of the matrix, all of them, not only the sampled ones.</summary>
    public long Rows { get; }

    /// <summary>
    /// Gets, per candidate type, Σ over all rows j of (dequantized − original)² in each column i, estimated as the sum
    /// over the sampled rows times rows / sampled; null for a type whose blocks do not tile the rows.
    /// </summary>
    public double[]?[] ColumnErrors { get; }

    /// <summary>Gets Σ over all rows j of W[j, i]² in each column i, estimated the same way.</summary>
    public double[] ColumnSquares { get; }

    /// <summary>Gets how many rows of a matrix of <paramref name="rows"/> rows are sampled.</summary>
    public static int SampleSize(long rows, int maxRows) => (int)Math.Min(rows, maxRows);

    /// <summary>
    /// Gets the k-th sampled row: all rows when there are at most <paramref name="sampled"/>, else the middle rows of
    /// <paramref name="sampled"/> equal stripes, ⌊(2k + 1)·rows / (2·sampled)⌋, so every part of the matrix is seen.
    /// </summary>
    public static long SampledRow(int k, long rows, int sampled) =>
        sampled == rows ? k : (long)((Int128)((2L * k) + 1) * rows / (2L * sampled));

    /// <summary>Measures one matrix.</summary>
    /// <param name="data">The file's tensor data.</param>
    /// <param name="tensor">The matrix: rows of <c>Shape[0]</c> weights.</param>
    /// <param name="types">The candidate types.</param>
    /// <param name="maxRows">The most rows to quantize.</param>
    /// <param name="cancellationToken">Stops the work between chunks of rows.</param>
    public static MatrixErrors Measure(GgufTensorData data, GgufTensorInfo tensor, IReadOnlyList<GgmlType> types, int maxRows, CancellationToken cancellationToken)
    {
        if (tensor.Shape[0] > MaxRowLength)
        {
            throw new NotSupportedException($"Tensor '{tensor.Name}' has rows of {tensor.Shape[0]} weights; at most {MaxRowLength} are supported.");
        }

        int rowLength = (int)tensor.Shape[0];
        long rows = GgufTensorData.RowCount(tensor);
        int sampled = SampleSize(rows, maxRows);
        var columnErrors = types.Select(type => GgmlQuantizer.CanQuantize(type, rowLength) ? new double[rowLength] : null).ToArray();
        var columnSquares = new double[rowLength];
        if (sampled == 0)
        {
            return new MatrixErrors(tensor, rows, columnErrors, columnSquares);
        }

        int chunkRows = Math.Min(sampled, Math.Max(1, ChunkElements / rowLength));
        int sourceRowBytes = (int)GgufTensorData.RowBytes(tensor);
        long quantizedRowBytes = types.Where((_, t) => columnErrors[t] is not null).Select(type => GgmlTypes.RowBytes(type, rowLength)).DefaultIfEmpty(0).Max();
        var raw = new byte[chunkRows * sourceRowBytes];
        var quantized = new byte[chunkRows * quantizedRowBytes];
        var original = new float[chunkRows * rowLength];
        var restored = new float[chunkRows * rowLength];
        var chunkSums = new float[rowLength];

        for (int first = 0; first < sampled; first += chunkRows)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(chunkRows, sampled - first);
            for (int k = 0; k < count; k++)
            {
                data.ReadRows(tensor, SampledRow(first + k, rows, sampled), raw.AsSpan(k * sourceRowBytes, sourceRowBytes));
            }

            var source = original.AsSpan(0, count * rowLength);
            GgmlQuantizer.ToFloat(tensor.Type, raw.AsSpan(0, count * sourceRowBytes), source);
            AddColumnSquares(source, [], rowLength, chunkSums, columnSquares);
            for (int t = 0; t < types.Count; t++)
            {
                if (columnErrors[t] is { } errors)
                {
                    int bytes = GgmlQuantizer.Quantize(types[t], source, rowLength, quantized);
                    GgmlQuantizer.ToFloat(types[t], quantized.AsSpan(0, bytes), restored);
                    AddColumnSquares(source, restored.AsSpan(0, source.Length), rowLength, chunkSums, errors);
                }
            }
        }

        double scale = (double)rows / sampled;
        foreach (var sums in columnErrors.Append(columnSquares))
        {
            if (sums is not null)
            {
                for (int i = 0; i < sums.Length; i++)
                {
                    sums[i] *= scale;
                }
            }
        }

        return new MatrixErrors(tensor, rows, columnErrors, columnSquares);
    }

    // Adds Σ over the rows of (a − b)² (of a² when b is empty) to each column of `totals`, through float sums per chunk
    // (at most a few hundred terms each), which vectorize.
    private static void AddColumnSquares(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int rowLength, Span<float> chunkSums, Span<double> totals)
    {
        chunkSums.Clear();
        int width = Vector<float>.Count;
        for (int row = 0; row < a.Length; row += rowLength)
        {
            var x = a.Slice(row, rowLength);
            var y = b.IsEmpty ? default : b.Slice(row, rowLength);
            int i = 0;
            for (; i <= rowLength - width; i += width)
            {
                var d = b.IsEmpty ? new Vector<float>(x[i..]) : new Vector<float>(x[i..]) - new Vector<float>(y[i..]);
                (new Vector<float>(chunkSums[i..]) + (d * d)).CopyTo(chunkSums[i..]);
            }

            for (; i < rowLength; i++)
            {
                float d = b.IsEmpty ? x[i] : x[i] - y[i];
                chunkSums[i] += d * d;
            }
        }

        for (int i = 0; i < rowLength; i++)
        {
            totals[i] += chunkSums[i];
        }
    }
}
