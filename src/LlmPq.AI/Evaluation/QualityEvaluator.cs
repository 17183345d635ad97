using System.Globalization;
using System.Runtime.InteropServices;
using LlmPq.Gguf;
using LlmPq.Native;
using Microsoft.Extensions.Logging;

namespace LlmPq.Evaluation;

/// <summary>Settings of <see cref="QualityEvaluator"/>.</summary>
public sealed record QualityEvaluationOptions
{
    /// <summary>Gets the window length in tokens (llama-perplexity's <c>-c</c>); the second half of each window is scored.</summary>
    public int ContextLength { get; init; } = 256;

    /// <summary>Gets the most windows to score; 0 scores every whole window of the text.</summary>
    public int MaxChunks { get; init; }

    /// <summary>Gets the CPU threads; 0 uses every core.</summary>
    public int Threads { get; init; }
}

/// <summary>How far <see cref="QualityEvaluator"/> has come.</summary>
/// <param name="Model">The model being run: <c>base</c> or <c>model</c>.</param>
/// <param name="Chunk">Windows done.</param>
/// <param name="Chunks">Windows in all.</param>
public readonly record struct QualityEvaluationProgress(string Model, int Chunk, int Chunks);

/// <summary>What a quantized model kept of its base, over the same token windows.</summary>
/// <param name="BasePerplexity">The base model's perplexity.</param>
/// <param name="ModelPerplexity">The evaluated model's perplexity.</param>
/// <param name="KldMean">The mean KL divergence of the model's next-token distribution from the base's, in nats.</param>
/// <param name="KldMedian">Its median.</param>
/// <param name="KldP99">Its 99th percentile.</param>
/// <param name="KldMax">Its maximum.</param>
/// <param name="SameTopToken">The share of scored tokens whose most likely next token is the same in both models.</param>
/// <param name="Tokens">The scored tokens.</param>
/// <param name="Chunks">The windows.</param>
/// <param name="ContextLength">The window length.</param>
public sealed record QualityEvaluation(
    double BasePerplexity,
    double ModelPerplexity,
    double KldMean,
    double KldMedian,
    double KldP99,
    double KldMax,
    double SameTopToken,
    int Tokens,
    int Chunks,
    int ContextLength);

/// <summary>
/// Measures the quality a quantized model kept the way llama.cpp's community does (llama-perplexity, and its
/// <c>--kl-divergence</c> mode), through the project's own bindings: the text is tokenized with a BOS, cut into windows
/// of <see cref="QualityEvaluationOptions.ContextLength"/> tokens whose first token is set to BOS, and the second half of
/// each window is scored: perplexity of both models, and per token the KL divergence of the model from the base and
/// whether their top tokens agree.
/// </summary>
/// <remarks>
/// The models run one after the other, never both in memory: the base's log-probabilities go to a temporary file
/// (a float per vocabulary entry per scored token) that the second pass reads back.
/// </remarks>
public static class QualityEvaluator
{
    /// <summary>Evaluates <paramref name="modelPath"/> against <paramref name="basePath"/> on <paramref name="text"/>.</summary>
    /// <param name="basePath">The reference model (the F16/F32 source).</param>
    /// <param name="modelPath">The model to evaluate (a quantized one).</param>
    /// <param name="text">The evaluation text.</param>
    /// <param name="options">Window length, windows and threads; defaults when null.</param>
    /// <param name="progress">Told after each window.</param>
    /// <param name="loggerFactory">Receives llama.cpp's log.</param>
    /// <param name="cancellationToken">Stops between windows.</param>
    /// <returns>The measures.</returns>
    /// <exception cref="ArgumentException">The text is too short for one window, or the options are out of range.</exception>
    /// <exception cref="InvalidDataException">The models do not share a vocabulary.</exception>
    public static Task<QualityEvaluation> EvaluateAsync(
        string basePath,
        string modelPath,
        string text,
        QualityEvaluationOptions? options = null,
        IProgress<QualityEvaluationProgress>? progress = null,
        ILoggerFactory? loggerFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(basePath);
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ArgumentNullException.ThrowIfNull(text);
        options ??= new QualityEvaluationOptions();
        if (options.ContextLength < 16)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"The window length must be at least 16 tokens; it is {options.ContextLength}."), nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxChunks);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Threads);

        // Malformed files fail here with the reader's precise message, before llama.cpp sees them.
        GgufReader.Read(basePath);
        GgufReader.Read(modelPath);
        LlamaBackend.EnsureInitialized(loggerFactory);

        // One thread owns each context from creation to disposal.
        return Task.Factory.StartNew(
            () => Evaluate(basePath, modelPath, text, options, progress, cancellationToken),
            cancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
    }

    private static QualityEvaluation Evaluate(string basePath, string modelPath, string text, QualityEvaluationOptions options, IProgress<QualityEvaluationProgress>? progress, CancellationToken cancellationToken)
    {
        int n = options.ContextLength;
        int first = n / 2;
        int scoredPerChunk = n - 1 - first;
        // Deleted when closed, whatever happens.
        using var scratch = new FileStream(
            Path.Combine(Path.GetTempPath(), $"llmpq-eval-{Guid.NewGuid():N}.logprobs"),
            FileMode.CreateNew,
            FileAccess.ReadWrite,
            FileShare.None,
            1 << 16,
            FileOptions.DeleteOnClose);
        int[] tokens;
        int vocabulary;
        int chunks;
        int[] baseTop;
        double baseNll = 0;
        using (var model = LlamaModel.Load(basePath))
        {
            tokens = model.Tokenize(text, addSpecial: true, parseSpecial: false);
            int available = tokens.Length / n;
            if (available == 0)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"The text has {tokens.Length} tokens; one window needs {n}. Give a longer text or a shorter window."), nameof(text));
            }

            chunks = options.MaxChunks > 0 ? Math.Min(options.MaxChunks, available) : available;
            vocabulary = model.VocabularySize;
            baseTop = new int[chunks * scoredPerChunk];
            var logProbs = new float[vocabulary];
            RunWindows(model, tokens, chunks, options, "base", progress, (index, target, logits) =>
            {
                baseNll -= LogSoftmax(logits, logProbs)[target];
                baseTop[index] = ArgMax(logits);
                scratch.Write(MemoryMarshal.AsBytes(logProbs.AsSpan()));
            }, cancellationToken);
        }

        scratch.Position = 0;
        var kld = new double[chunks * scoredPerChunk];
        double modelNll = 0;
        int sameTop = 0;
        using (var model = LlamaModel.Load(modelPath))
        {
            if (model.VocabularySize != vocabulary)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{modelPath} has {model.VocabularySize} tokens in its vocabulary and {basePath} {vocabulary}; KL divergence needs the same vocabulary (a quantized copy of the base)."));
            }

            var baseLogProbs = new float[vocabulary];
            var logProbs = new float[vocabulary];
            RunWindows(model, tokens, chunks, options, "model", progress, (index, target, logits) =>
            {
                scratch.ReadExactly(MemoryMarshal.AsBytes(baseLogProbs.AsSpan()));
                modelNll -= LogSoftmax(logits, logProbs)[target];
                kld[index] = Divergence(baseLogProbs, logProbs);
                sameTop += ArgMax(logits) == baseTop[index] ? 1 : 0;
            }, cancellationToken);
        }

        int count = kld.Length;
        Array.Sort(kld);
        return new QualityEvaluation(
            Math.Exp(baseNll / count),
            Math.Exp(modelNll / count),
            kld.Average(),
            Quantile(kld, 0.5),
            Quantile(kld, 0.99),
            kld[^1],
            (double)sameTop / count,
            count,
            chunks,
            n);
    }

    /// <summary>Runs every window through <paramref name="model"/> and hands each scored position to <paramref name="score"/>.</summary>
    private static void RunWindows(
        LlamaModel model,
        int[] tokens,
        int chunks,
        QualityEvaluationOptions options,
        string name,
        IProgress<QualityEvaluationProgress>? progress,
        Action<int, int, ReadOnlySpan<float>> score,
        CancellationToken cancellationToken)
    {
        int n = options.ContextLength;
        int first = n / 2;
        using var context = new LlamaContext(model, new LlamaContextOptions
        {
            ContextLength = (uint)n,
            BatchSize = (uint)n,
            MicroBatchSize = (uint)Math.Min(n, 512),
            Threads = options.Threads,
        });
        using var batch = new TokenBatch(n);
        int index = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            context.ClearMemory();
            batch.Clear();
            int start = chunk * n;
            for (int j = 0; j < n; j++)
            {
                int token = j == 0 && model.AddBos ? model.BosToken : tokens[start + j];
                batch.Add(token, j, 0, wantLogits: j >= first && j < n - 1);
            }

            if (!context.Decode(batch))
            {
                throw new LlamaException(string.Create(CultureInfo.InvariantCulture, $"llama.cpp had no room for a window of {n} tokens in {model.Path}."));
            }

            for (int j = first; j < n - 1; j++)
            {
                score(index++, tokens[start + j + 1], context.Logits(j));
            }

            progress?.Report(new QualityEvaluationProgress(name, chunk + 1, chunks));
        }
    }

    /// <summary>Writes log softmax of <paramref name="logits"/> into <paramref name="destination"/>, in double precision.</summary>
    private static float[] LogSoftmax(ReadOnlySpan<float> logits, float[] destination)
    {
        double logSum = LogitMath.LogSumExp(logits);
        for (int i = 0; i < logits.Length; i++)
        {
            destination[i] = (float)(logits[i] - logSum);
        }

        return destination;
    }

    // KL(P_base || P_model) = Σ p_base (log p_base − log p_model).
    private static double Divergence(float[] baseLogProbs, float[] logProbs)
    {
        double kld = 0;
        for (int i = 0; i < baseLogProbs.Length; i++)
        {
            kld += Math.Exp(baseLogProbs[i]) * (baseLogProbs[i] - logProbs[i]);
        }

        return Math.Max(kld, 0);
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }

    // Linear interpolation between closest ranks, on sorted values.
    private static double Quantile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int lower = (int)position;
        int upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + ((position - lower) * (sorted[upper] - sorted[lower]));
    }
}
