namespace LlmPq.Host.Profiling;

/// <summary>A non-negative least-squares fit and how well it explains the points.</summary>
/// <param name="Coefficients">One coefficient per column, none negative.</param>
/// <param name="RSquared">1 − residual sum of squares / total sum of squares (1 when every point is equal and matched).</param>
/// <param name="MaxRelativeResidual">The largest |fit − measured| / measured.</param>
internal sealed record LeastSquaresFit(double[] Coefficients, double RSquared, double MaxRelativeResidual);

/// <summary>
/// Non-negative least squares for the few columns a profile fits (at most a handful): every subset of columns is
/// solved by its normal equations and the best fit with no negative coefficient wins, which is the exact NNLS
/// optimum (the optimum is the unconstrained optimum of its own support).
/// </summary>
internal static class LeastSquares
{
    /// <summary>Fits <paramref name="y"/> ≈ Σ c_j × <paramref name="x"/>[i][j] with every c_j ≥ 0.</summary>
    /// <param name="x">One row per point, one column per coefficient.</param>
    /// <param name="y">The measured values, positive.</param>
    /// <returns>The fit.</returns>
    /// <exception cref="ArgumentException">The rows and values differ in number, or there are fewer points than columns.</exception>
    public static LeastSquaresFit FitNonNegative(IReadOnlyList<double[]> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        int columns = x.Count > 0 ? x[0].Length : 0;
        if (x.Count != y.Count || columns == 0 || x.Count < columns || columns > 16 || x.Any(r => r.Length != columns))
        {
            throw new ArgumentException($"A fit of {columns} coefficients needs rows of {columns} values and at least as many points; got {x.Count} rows and {y.Count} values.", nameof(x));
        }

        // Columns of unit length, so the singularity test means the same whatever the units (1, tokens, tokens × context).
        double[] norm = [.. Enumerable.Range(0, columns).Select(j => Math.Sqrt(x.Sum(r => r[j] * r[j])) is var n && n > 0 ? n : 1)];
        double[][] scaled = [.. x.Select(r => r.Select((v, j) => v / norm[j]).ToArray())];
        double[] best = new double[columns];
        double bestError = Error(scaled, y, best);
        for (int mask = 1; mask < 1 << columns; mask++)
        {
            int[] support = [.. Enumerable.Range(0, columns).Where(j => (mask & (1 << j)) != 0)];
            if (Solve(scaled, y, support) is not { } c || c.Any(v => v < 0))
            {
                continue;
            }

            double[] full = new double[columns];
            for (int k = 0; k < support.Length; k++)
            {
                full[support[k]] = c[k];
            }

            double error = Error(scaled, y, full);
            if (error < bestError)
            {
                (best, bestError) = (full, error);
            }
        }

        best = [.. best.Select((c, j) => c / norm[j])];
        double mean = y.Average();
        double total = y.Sum(v => (v - mean) * (v - mean));
        double maxRelative = Enumerable.Range(0, y.Count).Max(i => Math.Abs(Predict(x[i], best) - y[i]) / Math.Abs(y[i]));
        return new LeastSquaresFit(best, total > 0 ? 1 - (bestError / total) : bestError == 0 ? 1 : 0, maxRelative);
    }

    private static double Predict(double[] row, double[] c) => row.Select((v, j) => v * c[j]).Sum();

    private static double Error(double[][] x, IReadOnlyList<double> y, double[] c) =>
        Enumerable.Range(0, y.Count).Sum(i => Math.Pow(Predict(x[i], c) - y[i], 2));

    // The normal equations of the columns in `support`, by Gaussian elimination with partial pivoting; null when singular.
    private static double[]? Solve(double[][] x, IReadOnlyList<double> y, int[] support)
    {
        int n = support.Length;
        var a = new double[n, n + 1];
        for (int p = 0; p < n; p++)
        {
            for (int q = 0; q < n; q++)
            {
                a[p, q] = Enumerable.Range(0, y.Count).Sum(i => x[i][support[p]] * x[i][support[q]]);
            }

            a[p, n] = Enumerable.Range(0, y.Count).Sum(i => x[i][support[p]] * y[i]);
        }

        for (int col = 0; col < n; col++)
        {
            int pivot = Enumerable.Range(col, n - col).MaxBy(r => Math.Abs(a[r, col]));
            if (Math.Abs(a[pivot, col]) < 1e-12)
            {
                return null;
            }

            for (int k = 0; k <= n; k++)
            {
                (a[col, k], a[pivot, k]) = (a[pivot, k], a[col, k]);
            }

            for (int r = 0; r < n; r++)
            {
                if (r != col)
                {
                    double f = a[r, col] / a[col, col];
                    for (int k = col; k <= n; k++)
                    {
                        a[r, k] -= f * a[col, k];
                    }
                }
            }
        }

        return [.. Enumerable.Range(0, n).Select(r => a[r, n] / a[r, r])];
    }
}
