using LlmPq.Gguf;
using LlmPq.Planning;

namespace LlmPq.Host.Profiling;

/// <summary>How far a profile is: steps (one timed grid point, or one cache fill) done of the total, and what runs now.</summary>
/// <param name="Done">Steps done.</param>
/// <param name="Total">Steps in all.</param>
/// <param name="Step">What is measured now.</param>
internal readonly record struct ProfileProgress(int Done, int Total, string Step);

/// <summary>
/// Measures a <see cref="DeviceProfile"/>: for each type, the grid on the short and the long probe model
/// (<see cref="ProbeModels"/>); a layer's time is their difference over the layers between them, fitted per phase by
/// non-negative least squares. A device with an endpoint also gets its hop to this process measured.
/// </summary>
internal static class DeviceProfiler
{
    private const int FloatBytes = sizeof(float);

    /// <summary>Gets the grid steps of a device's profile, for the progress total.</summary>
    public static int Steps(DeviceSpec device, int types, ProfileGrid grid) =>
        (types + (HasHop(device) ? 1 : 0)) * 2 * (grid.Prefill.Count + grid.Decode.Count + 1);

    /// <summary>
    /// Gets whether the pipeline reaches <paramref name="device"/> through ggml RPC, so that its profile has a hop: a
    /// stage server at an endpoint, or a CPU device of this machine, which the pipeline serves from a stage server
    /// of its own (<see cref="LocalStageServer"/>).
    /// </summary>
    public static bool HasHop(DeviceSpec device) => device.Endpoint is not null || device.IsCpu;

    /// <summary>Measures <paramref name="device"/>.</summary>
    /// <param name="model">The profiled model's shape.</param>
    /// <param name="device">The device.</param>
    /// <param name="types">The layer types to measure.</param>
    /// <param name="grid">The points.</param>
    /// <param name="probes">A folder for the probe models (kept between devices).</param>
    /// <param name="localThreads">This process's threads for the local side of a hop measurement (0: every core).</param>
    /// <param name="progress">Told after each step.</param>
    /// <param name="cancellationToken">Checked between points.</param>
    /// <returns>The profile.</returns>
    public static DeviceProfile Measure(ModelSpec model, DeviceSpec device, IReadOnlyList<GgmlType> types, ProfileGrid grid, string probes, int localThreads, IProgress<ProfileProgress>? progress, CancellationToken cancellationToken)
    {
        int total = Steps(device, types.Count, grid);
        int done = 0;
        void Advance(string step) => progress?.Report(new ProfileProgress(++done, total, step));

        (double[] Prefill, double[] Decode) Run(string path, DeviceSpec on, int threads, string label)
        {
            using ProbeTimer timer = ProbeTimer.Open(path, on, grid, threads);
            double[] prefill = [.. grid.Prefill.Select(p =>
            {
                double t = timer.Prefill(p, cancellationToken);
                Advance($"{label} prefill {p.Sequences}×{p.Tokens}");
                return t;
            })];

            // Longest contexts first: each decode point cuts the filled sequences back.
            DecodePoint[] order = [.. grid.Decode.OrderByDescending(d => d.Context)];
            timer.Fill(grid.Decode.Max(d => d.Batch), grid.Decode.Max(d => d.Context), cancellationToken);
            Advance($"{label} fill");
            var decode = new Dictionary<DecodePoint, double>();
            foreach (DecodePoint d in order)
            {
                decode[d] = timer.Decode(d, cancellationToken);
                Advance($"{label} decode {d.Batch}@{d.Context}");
            }

            return (prefill, [.. grid.Decode.Select(d => decode[d])]);
        }

        var measured = new List<TypeProfile>();
        (double[] Prefill, double[] Decode) remoteShortF16 = default, remoteLongF16 = default;
        foreach (GgmlType type in types)
        {
            string name = GgmlTypes.Name(type);
            var shortRun = Run(ProbeModels.Write(model, ProbeModels.Short, type, probes), device, ProbeThreads(device), $"{device.Name} {name} {ProbeModels.Short}L");
            var longRun = Run(ProbeModels.Write(model, ProbeModels.Long, type, probes), device, ProbeThreads(device), $"{device.Name} {name} {ProbeModels.Long}L");
            if (type == GgmlType.F16 || remoteShortF16.Prefill is null)
            {
                (remoteShortF16, remoteLongF16) = (shortRun, longRun);
            }

            measured.Add(new TypeProfile(
                type,
                Fit([.. grid.Prefill.Select(p => PrefillRow(p))], LayerSeconds(shortRun.Prefill, longRun.Prefill)),
                Fit([.. grid.Decode.Select(d => DecodeRow(d))], LayerSeconds(shortRun.Decode, longRun.Decode))));
        }

        HopProfile? hop = null;
        if (device.Endpoint is not null)
        {
            // The same probes in this process: what remains after the layers is the embedding, the head and, remotely, the hop.
            GgmlType first = types.Contains(GgmlType.F16) ? GgmlType.F16 : types[0];
            var local = device with { Endpoint = null, Kind = "CPU", Threads = null, Profile = null };
            var localShort = Run(ProbeModels.Write(model, ProbeModels.Short, first, probes), local, localThreads, $"{device.Name} hop local {ProbeModels.Short}L");
            var localLong = Run(ProbeModels.Write(model, ProbeModels.Long, first, probes), local, localThreads, $"{device.Name} hop local {ProbeModels.Long}L");
            // The probes carry the generated model's vocabulary, not the profiled model's: theirs is the logits that cross.
            long vocabulary = ModelSpec.FromGguf(GgufReader.Read(ProbeModels.Write(model, ProbeModels.Short, first, probes))).VocabularySize;
            hop = FitHop(model.EmbeddingLength, vocabulary, grid, remoteShortF16, remoteLongF16, localShort, localLong);
        }

        return new DeviceProfile(model.Layers[0].MatrixParameters, measured)
        {
            Model = model.Name,
            ModelShape = Planner.ShapeFingerprint(model),
            Measured = DateTimeOffset.UtcNow,
            Hop = hop,
        };
    }

    /// <summary>
    /// This process's threads while it times <paramref name="device"/>: the device's own when it computes here; one when
    /// the layers run on a stage server, as the pipeline's engine then runs (its idle threads would spin on the server's cores).
    /// </summary>
    private static int ProbeThreads(DeviceSpec device) => device.Endpoint is null ? device.Threads ?? 0 : 1;

    /// <summary>Fits a layer time to measured points by non-negative least squares, with its quality.</summary>
    /// <param name="rows">Per point [1, tokens, tokens × context].</param>
    /// <param name="seconds">Per point the layer's seconds.</param>
    /// <returns>The fit.</returns>
    public static LayerTimeFit Fit(IReadOnlyList<double[]> rows, IReadOnlyList<double> seconds)
    {
        LeastSquaresFit fit = LeastSquares.FitNonNegative(rows, seconds);
        return new LayerTimeFit(fit.Coefficients[0], fit.Coefficients[1], fit.Coefficients[2])
        {
            RSquared = Math.Round(fit.RSquared, 4),
            MaxRelativeResidual = Math.Round(fit.MaxRelativeResidual, 4),
            Points = seconds.Count,
        };
    }

    /// <summary>Gets a prefill point's row: the chunk's tokens attend to (tokens + 1) / 2 positions on average.</summary>
    public static double[] PrefillRow(PrefillPoint p) => [1, (double)p.Sequences * p.Tokens, (double)p.Sequences * p.Tokens * (p.Tokens + 1) / 2.0];

    /// <summary>Gets a decode point's row: each new token attends to the context and itself.</summary>
    public static double[] DecodeRow(DecodePoint d) => [1, d.Batch, (double)d.Batch * (d.Context + 1)];

    // (long − short) / the layers between them; the rest of each model cancels.
    private static double[] LayerSeconds(double[] shortTimes, double[] longTimes) =>
        [.. shortTimes.Select((s, i) => (longTimes[i] - s) / (ProbeModels.Long - ProbeModels.Short))];

    // What is not layers: long·T_short − short·T_long over the difference in layers (the models' common part).
    private static double[] Rest(double[] shortTimes, double[] longTimes) =>
        [.. shortTimes.Select((s, i) => ((ProbeModels.Long * s) - (ProbeModels.Short * longTimes[i])) / (ProbeModels.Long - ProbeModels.Short))];

    // Remote rest − local rest per point, against the bytes that crossed: the hidden state and the attention mask in, the logits out.
    private static HopProfile FitHop(long embedding, long vocabulary, ProfileGrid grid, (double[] Prefill, double[] Decode) remoteShort, (double[] Prefill, double[] Decode) remoteLong, (double[] Prefill, double[] Decode) localShort, (double[] Prefill, double[] Decode) localLong)
    {
        long width = embedding * FloatBytes;
        long logits = vocabulary * FloatBytes;
        double[] bytes =
        [
            .. grid.Prefill.Select(p => (double)(p.Sequences * p.Tokens * width) + (p.Sequences * logits) + ModelSpec.AttentionMaskBytes(p.Sequences * p.Tokens, p.Tokens)),
            .. grid.Decode.Select(d => ((double)d.Batch * (width + logits)) + ModelSpec.AttentionMaskBytes(d.Batch, d.Context + 1)),
        ];
        double[] remote = [.. Rest(remoteShort.Prefill, remoteLong.Prefill), .. Rest(remoteShort.Decode, remoteLong.Decode)];
        double[] local = [.. Rest(localShort.Prefill, localLong.Prefill), .. Rest(localShort.Decode, localLong.Decode)];
        double[] hop = [.. remote.Select((r, i) => Math.Max(r - local[i], 1e-7))];
        LeastSquaresFit fit = LeastSquares.FitNonNegative([.. bytes.Select(b => new[] { 1, b })], hop);

        // A hop whose time did not grow with the bytes is faster than the measurement can tell: cap it at 1 Tbit/s.
        double gbps = fit.Coefficients[1] > 0 ? Math.Min(8 / (fit.Coefficients[1] * 1e9), 1000) : 1000;
        return new HopProfile(Math.Round(fit.Coefficients[0] * 1000, 4), Math.Round(gbps, 3))
        {
            RSquared = Math.Round(fit.RSquared, 4),
            MaxRelativeResidual = Math.Round(fit.MaxRelativeResidual, 4),
        };
    }
}
