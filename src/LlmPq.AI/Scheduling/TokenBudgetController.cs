namespace LlmPq.Scheduling;

/// <summary>A linear model of one iteration's time: a fixed part, a part per token and a part per decode.</summary>
internal readonly record struct IterationCost(double FixedSeconds, double SecondsPerToken, double SecondsPerDecode)
{
    /// <summary>Predicts the time of an iteration of <paramref name="tokens"/> tokens, <paramref name="decodes"/> of them decodes.</summary>
    public double Predict(int tokens, int decodes) => FixedSeconds + (SecondsPerToken * tokens) + (SecondsPerDecode * decodes);
}

/// <summary>
/// Chooses the token budget from a time-between-tokens (TBT) target, as Sarathi-Serve prescribes: the largest budget
/// whose predicted iteration time at the current decode batch fits the target. The prediction is a least-squares fit
/// of the measured iterations (time against tokens and decodes) that forgets old iterations geometrically, so it
/// follows the running pipeline as contexts grow; a prior (for example the planner's cost model) can seed it.
/// </summary>
/// <remarks>
/// Budgets are multiples of <see cref="Quantum"/>: llama.cpp's matrix kernels work on tiles of 8 to 128 rows
/// (tensor cores, quantized mat-mul) or blocks of 4 to 16 (CPU), and a batch just past a tile boundary costs a whole
/// tile more (Sarathi-Serve measured +32% going from 256 to 257 tokens). 32 is a multiple of the small tiles, the step
/// Sarathi-Serve's own code rounds chunk sizes to, and fine enough to leave several choices under a budget of 256;
/// it also keeps the budget from moving with every measurement. Below 32 tokens the fixed cost of an iteration dominates.
/// Single-threaded; the engine's loop thread owns it.
/// </remarks>
internal sealed class TokenBudgetController
{
    /// <summary>The step between candidate budgets, and the smallest one.</summary>
    public const int Quantum = 32;

    /// <summary>The weight an observation keeps per later one: about the last 50 iterations count.</summary>
    private const double Forgetting = 0.98;

    /// <summary>The (weighted) observations the fit needs before it is trusted.</summary>
    private const double MinObservations = 8;

    /// <summary>A feature whose variance left after the earlier features is below this share of its scale is not identified.</summary>
    private const double Collinear = 1e-9;

    private const int Features = 3; // 1, tokens, decodes

    private readonly double[,] _xx = new double[Features, Features];
    private readonly double[] _xy = new double[Features];
    private double _weight;

    /// <summary>Creates a controller.</summary>
    /// <param name="target">The TBT target: the most one iteration should take.</param>
    /// <param name="maxBudget">The largest budget (the engine's <c>n_batch</c>); at least <see cref="Quantum"/>.</param>
    public TokenBudgetController(TimeSpan target, int maxBudget)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(target, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBudget, Quantum);
        Target = target;
        MaxBudget = maxBudget;
    }

    /// <summary>Gets the TBT target.</summary>
    public TimeSpan Target { get; }

    /// <summary>Gets the largest budget.</summary>
    public int MaxBudget { get; }

    /// <summary>
    /// Seeds the fit with a predicted cost, as if <see cref="MinObservations"/> iterations of each of three shapes (a
    /// one-token prompt chunk, a full prompt chunk, a full chunk with a decode) had taken the predicted times; measured
    /// iterations then take over as the seed is forgotten.
    /// </summary>
    public void Seed(IterationCost prior)
    {
        foreach ((int tokens, int decodes) in new[] { (1, 0), (MaxBudget, 0), (MaxBudget, 1) })
        {
            Add(tokens, decodes, prior.Predict(tokens, decodes), MinObservations);
        }
    }

    /// <summary>Records a measured iteration.</summary>
    /// <param name="tokens">The tokens in the iteration.</param>
    /// <param name="decodes">How many of them were decodes.</param>
    /// <param name="elapsed">How long the iteration took.</param>
    public void Observe(int tokens, int decodes, TimeSpan elapsed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(decodes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(decodes, tokens);
        for (int i = 0; i < Features; i++)
        {
            _xy[i] *= Forgetting;
            for (int j = 0; j < Features; j++)
            {
                _xx[i, j] *= Forgetting;
            }
        }

        _weight *= Forgetting;
        Add(tokens, decodes, elapsed.TotalSeconds, 1);
    }

    /// <summary>
    /// Fits the cost to what was observed; null while there are too few observations or they do not tell how time
    /// grows with tokens (all of one size). When decodes are not told apart from tokens, they cost nothing extra.
    /// </summary>
    public IterationCost? Fit()
    {
        if (_weight < MinObservations)
        {
            return null;
        }

        // Least squares by an LDLᵀ factorization of the normal equations in the order 1, tokens, decodes, dropping a
        // feature that the earlier ones already explain (its pivot, the variance left of it, is ~0).
        var l = new double[Features, Features];
        var d = new double[Features];
        var kept = new bool[Features];
        for (int k = 0; k < Features; k++)
        {
            for (int j = 0; j < k; j++)
            {
                if (kept[j])
                {
                    double sum = _xx[k, j];
                    for (int i = 0; i < j; i++)
                    {
                        sum -= kept[i] ? l[k, i] * l[j, i] * d[i] : 0;
                    }

                    l[k, j] = sum / d[j];
                }
            }

            d[k] = _xx[k, k];
            for (int j = 0; j < k; j++)
            {
                d[k] -= kept[j] ? l[k, j] * l[k, j] * d[j] : 0;
            }

            kept[k] = _xx[k, k] > 0 && d[k] > Collinear * _xx[k, k];
        }

        if (!kept[0] || !kept[1])
        {
            return null;
        }

        var beta = new double[Features];
        for (int k = 0; k < Features; k++)
        {
            if (kept[k])
            {
                beta[k] = _xy[k];
                for (int j = 0; j < k; j++)
                {
                    beta[k] -= kept[j] ? l[k, j] * beta[j] : 0;
                }
            }
        }

        for (int k = Features - 1; k >= 0; k--)
        {
            if (kept[k])
            {
                beta[k] /= d[k];
                for (int j = k + 1; j < Features; j++)
                {
                    beta[k] -= kept[j] ? l[j, k] * beta[j] : 0;
                }
            }
        }

        return new IterationCost(beta[0], beta[1], beta[2]);
    }

    /// <summary>
    /// Chooses the budget for the next iteration: the largest multiple of <see cref="Quantum"/> up to
    /// <see cref="MaxBudget"/> whose predicted time with <paramref name="decodes"/> running decodes fits the target,
    /// or <see cref="Quantum"/> when none does. Null while the fit is not trusted (the caller keeps its budget).
    /// </summary>
    /// <param name="decodes">The running decodes, which every iteration of a full budget carries too.</param>
    /// <param name="predicted">The predicted time of an iteration at the chosen budget.</param>
    public int? Choose(int decodes, out TimeSpan predicted)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(decodes);
        predicted = TimeSpan.Zero;
        if (Fit() is not { } cost)
        {
            return null;
        }

        int budget = MaxBudget / Quantum * Quantum;
        while (budget > Quantum && cost.Predict(Math.Max(budget, decodes), decodes) > Target.TotalSeconds)
        {
            budget -= Quantum;
        }

        predicted = TimeSpan.FromSeconds(cost.Predict(Math.Max(budget, decodes), decodes));
        return budget;
    }

    private void Add(int tokens, int decodes, double seconds, double weight)
    {
        ReadOnlySpan<double> x = [1, tokens, decodes];
        for (int i = 0; i < Features; i++)
        {
            _xy[i] += weight * x[i] * seconds;
            for (int j = 0; j < Features; j++)
            {
                _xx[i, j] += weight * x[i] * x[j];
            }
        }

        _weight += weight;
    }
}
