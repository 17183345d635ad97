using System.Diagnostics;
using LlmPq.Native;
using LlmPq.Planning;
using LlmPq.Stages;

namespace LlmPq.Host.Profiling;

/// <summary>
/// Times <c>llama_decode</c> of one probe model on one device, loaded the way the pipeline loads a stage: in this
/// process's CPU backend at the device's threads, or on the device's stage server through ggml RPC
/// (<see cref="LayerPlacement"/>, every layer and the output on the server, as the engine places a one-stage plan).
/// </summary>
/// <remarks>The cache is per sequence, as the engine's is by default. One owner thread.</remarks>
internal sealed class ProbeTimer : IDisposable
{
    private readonly LlamaModel _model;
    private readonly LlamaContext _context;
    private readonly TokenBatch _batch;
    // A decode step takes milliseconds, a stage server's round trip varies by a fraction of one: more tries find the
    // step's own time (the layers' difference between the probes is about that size).
    private const int DecodeRepeats = 4;
    private const int DecodeSteps = 4;

    private readonly int _repeats;

    private ProbeTimer(LlamaModel model, ProfileGrid grid, int threads)
    {
        _model = model;
        _repeats = grid.Repeats;
        int sequences = grid.MaxSequences;
        _context = new LlamaContext(model, new LlamaContextOptions
        {
            ContextLength = (uint)(sequences * grid.MaxSequenceTokens),
            SequenceCount = (uint)sequences,
            BatchSize = (uint)grid.MaxBatchTokens,
            MicroBatchSize = (uint)grid.MaxBatchTokens,
            Threads = threads,
        });
        _batch = new TokenBatch(grid.MaxBatchTokens);
    }

    /// <summary>Loads <paramref name="path"/> on <paramref name="device"/>.</summary>
    /// <param name="path">The probe model.</param>
    /// <param name="device">The device: in this process (its threads; a GPU kind offloads every layer), or its <see cref="DeviceSpec.Endpoint"/>.</param>
    /// <param name="grid">The points to be timed, which size the context.</param>
    /// <param name="threads">This process's threads (for a device in this process, its own).</param>
    /// <returns>The timer.</returns>
    public static ProbeTimer Open(string path, DeviceSpec device, ProfileGrid grid, int threads)
    {
        LlamaModel model = device.Endpoint is { } endpoint
            ? LayerPlacement.Load(path, [new LlmPqStageOptions { Endpoint = endpoint, Layers = ProbeModelLayers(path) }]).Model
            : LlamaModel.Load(path, new LlamaModelLoadOptions { GpuLayers = device.IsCpu ? 0 : -1 });
        try
        {
            var timer = new ProbeTimer(model, grid, threads);
            timer.PrefillOnce(grid.Prefill[^1]); // untimed: caches, the thread pool, the RPC server's buffers
            return timer;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Times a prefill: every sequence's prompt in one call, the last token of each asking for logits, as the engine does.</summary>
    /// <param name="point">The point.</param>
    /// <param name="cancellationToken">Checked between repetitions.</param>
    /// <returns>The fastest time in seconds.</returns>
    public double Prefill(PrefillPoint point, CancellationToken cancellationToken) => Fastest(() => PrefillOnce(point), _repeats, cancellationToken);

    /// <summary>Fills the first <paramref name="sequences"/> sequences with <paramref name="tokens"/> tokens each, one call per sequence.</summary>
    /// <param name="sequences">The sequences.</param>
    /// <param name="tokens">The tokens of each.</param>
    /// <param name="cancellationToken">Checked between sequences.</param>
    public void Fill(int sequences, int tokens, CancellationToken cancellationToken)
    {
        _context.ClearMemory();
        for (int s = 0; s < sequences; s++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _batch.Clear();
            for (int i = 0; i < tokens; i++)
            {
                _batch.Add(Token(i), i, s, wantLogits: i == tokens - 1);
            }

            Time();
        }
    }

    /// <summary>Times one decode step of the first <see cref="DecodePoint.Batch"/> sequences, cut back to <see cref="DecodePoint.Context"/> tokens (filled by <see cref="Fill"/>).</summary>
    /// <param name="point">The point.</param>
    /// <param name="cancellationToken">Checked between repetitions.</param>
    /// <returns>The fastest time in seconds.</returns>
    public double Decode(DecodePoint point, CancellationToken cancellationToken) => Fastest(() =>
    {
        // The mean of a few steps: a stage server's round trip jitters by about a layer's decode time.
        double total = 0;
        for (int step = 0; step < DecodeSteps; step++)
        {
            _batch.Clear();
            for (int s = 0; s < point.Batch; s++)
            {
                _context.RemoveSequence(s, point.Context);
                _batch.Add(Token(point.Context + step), point.Context, s, wantLogits: true);
            }

            total += Time();
        }

        return total / DecodeSteps;
    }, _repeats * DecodeRepeats, cancellationToken);

    /// <inheritdoc/>
    public void Dispose()
    {
        _batch.Dispose();
        _context.Dispose();
        _model.Dispose();
    }

    private static int ProbeModelLayers(string path) => ModelSpec.FromGguf(Gguf.GgufReader.Read(path)).LayerCount;

    private double PrefillOnce(PrefillPoint point)
    {
        _context.ClearMemory();
        _batch.Clear();
        for (int s = 0; s < point.Sequences; s++)
        {
            for (int i = 0; i < point.Tokens; i++)
            {
                _batch.Add(Token(i), i, s, wantLogits: i == point.Tokens - 1);
            }
        }

        return Time();
    }

    // Ordinary vocabulary entries, varied so no kernel sees one repeated row.
    private static int Token(int i) => 1000 + (i * 37 % 20000);

    private double Time()
    {
        long start = Stopwatch.GetTimestamp();
        if (!_context.Decode(_batch))
        {
            throw new LlamaException($"llama_decode found no room for {_batch.Count} tokens in the profile's cache.");
        }

        // Reading logits waits for the backend (an RPC server included) to finish the graph.
        _ = _context.Logits(_batch.Count - 1);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    // The fastest of the repetitions: other work on the machine only ever adds time, so the minimum is the device's own.
    private static double Fastest(Func<double> measure, int repeats, CancellationToken cancellationToken)
    {
        double fastest = double.PositiveInfinity;
        for (int i = 0; i < repeats; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            fastest = Math.Min(fastest, measure());
        }

        return fastest;
    }
}
