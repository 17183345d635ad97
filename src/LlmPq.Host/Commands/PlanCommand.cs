using System.CommandLine;
using System.Globalization;
using LlmPq.Gguf;
using LlmPq.Host.Benchmarking;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq plan</c>: LLM-PQ's plan of a model on a heterogeneous cluster, with the baselines beside it.</summary>
internal static class PlanCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo?>("--model", "-m") { Description = "GGUF model: its shape, and the quality indicator from its weights." };
        var preset = new Option<string?>("--preset") { Description = $"A named shape instead of a file ({string.Join(", ", ModelPresets.Names)}); the indicator is the documented fallback." };
        var cluster = new Option<FileInfo>("--cluster", "-c") { Description = "Cluster file (JSON: devices, links).", Required = true };
        var batch = new Option<int>("--batch") { Description = "Global batch B (sequences served together).", DefaultValueFactory = _ => 32 };
        var prompt = new Option<int>("--prompt") { Description = "Prompt length s in tokens.", DefaultValueFactory = _ => 512 };
        var generate = new Option<int>("--generate") { Description = "Generated tokens n per sequence.", DefaultValueFactory = _ => 100 };
        var gamma = new Option<double>("--gamma") { Description = "Expected fraction of n actually generated.", DefaultValueFactory = _ => 1.0 };
        var theta = new Option<double>("--theta") { Description = "Weight θ of the quality indicator against latency in seconds.", DefaultValueFactory = _ => QualityTarget.DefaultTheta };
        var quality = new Option<string>("--quality") { Description = "Hard bound: no worse than uniform TYPE by the indicator (q8_0, q6_k, q5_k, q4_k, q3_k), or 'none'.", DefaultValueFactory = _ => "q4_K" };
        var output = new Option<FileInfo?>("--out", "-o") { Description = "Write the plan (JSON) here." };
        var json = new Option<bool>("--json") { Description = "Print the plan as JSON instead of the table." };
        var validate = new Option<bool>("--validate") { Description = "Then run the plan and every baseline that fits on the cluster (each quantized and served as 'serve --plan' does, the workload's B requests at once) and print measured against predicted; needs --model." };
        var validateOut = new Option<DirectoryInfo>("--validate-out") { Description = "With --validate: write validation.md, validation.json, validation.svg and each plan run (plans/) here.", DefaultValueFactory = _ => new DirectoryInfo("plan-validation") };
        var repeat = new Option<int>("--repeat") { Description = "With --validate: runs of the workload per plan; the table shows their medians.", DefaultValueFactory = _ => 3 };
        var command = new Command("plan", "Plan device order, layer ranges, per-layer GGUF types and micro-batches for a model on a cluster (LLM-PQ).")
        {
            model, preset, cluster, batch, prompt, generate, gamma, theta, quality, output, json, validate, validateOut, repeat,
        };
        repeat.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError($"--repeat must be at least 1; it is {r.GetValueOrDefault<int>()}.");
            }
        });
        command.Validators.Add(r =>
        {
            if ((r.GetValue(model) is null) == (r.GetValue(preset) is null))
            {
                r.AddError("Give exactly one of --model PATH or --preset NAME.");
            }

            if (r.GetValue(validate) && r.GetValue(model) is null)
            {
                r.AddError("--validate runs the plan: give the model file with --model PATH (a --preset has no weights to run).");
            }

            if (!r.GetValue(validate) && (r.GetResult(repeat) is { Implicit: false } || r.GetResult(validateOut) is { Implicit: false }))
            {
                r.AddError("--repeat and --validate-out go with --validate; add --validate to run the plan.");
            }
        });

        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            string q = parse.GetValue(quality)!;
            GgmlType? bound = q.Equals("none", StringComparison.OrdinalIgnoreCase) ? null
                : GgmlTypes.TryParse(q, out GgmlType t) ? t
                : throw new ArgumentException($"--quality '{q}' is not a GGUF type; use one of q8_0, q6_K, q5_K, q4_K, q3_K, or none.");
            var workload = new Workload(parse.GetValue(batch), parse.GetValue(prompt), parse.GetValue(generate), parse.GetValue(gamma));
            var target = new QualityTarget(parse.GetValue(theta), bound);
            ClusterSpec devices = ClusterSpec.Load(parse.GetValue(cluster)!.FullName);

            ModelSpec spec;
            QualityIndicatorTable indicator;
            if (parse.GetValue(model) is { } file)
            {
                GgufFile gguf = GgufReader.Read(file.FullName);
                spec = ModelSpec.FromGguf(gguf);
                IProgress<double>? progress = Cli.StatusLine<double>(p => string.Create(CultureInfo.InvariantCulture, $"quality indicator from the weights: {p:P0}"));
                indicator = QualityIndicator.Compute(file.FullName, progress: progress, cancellationToken: ct);
                Cli.EndStatusLine();
            }
            else
            {
                spec = ModelSpec.Preset(parse.GetValue(preset)!);
                indicator = QualityIndicator.Fallback([.. spec.Layers.Select(l => l.Parameters)]);
            }

            devices.CheckProfiles(spec);
            Plan plan = Planner.Create(spec, devices, workload, target, indicator, cancellationToken: ct);
            if (parse.GetValue(output) is { } path)
            {
                File.WriteAllText(path.FullName, plan.ToJson());
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(plan.ToJson());
            }
            else
            {
                PlanTable.Print(Console.Out, plan);
                Console.WriteLine(PlanTable.CostModels(devices));
            }

            if (parse.GetValue(validate))
            {
                var settings = new PlanValidationSettings(parse.GetValue(model)!.FullName, spec, indicator, parse.GetValue(cluster)!.FullName, devices, parse.GetValue(repeat), parse.GetValue(validateOut)!.FullName);
                await ValidateAsync(parse, plan, settings, ct).ConfigureAwait(false);
            }

            return 0;
        }));
        return command;
    }

    /// <summary>Runs the plan and its baselines (<c>--validate</c>), prints the table and writes the report.</summary>
    private static async Task ValidateAsync(ParseResult parse, Plan plan, PlanValidationSettings settings, CancellationToken ct)
    {
        using var loggers = Cli.CreateLoggerFactory(parse);

        // Every sequence holds its prompt and its answer, as the planner's memory model counts them; a little more for the template's rounding.
        int contextLength = plan.Workload.PromptTokens + plan.Workload.GeneratedTokens + 16;
        Console.WriteLine();
        PlanValidationReport report = await PlanValidation.RunAsync(
            settings,
            plan,
            (candidate, planFile, token) => PlannedModel.PipelineOptionsAsync(settings.Model, candidate, planFile, contextLength, loggers, token),
            loggers,
            Console.Error,
            ct).ConfigureAwait(false);
        Console.WriteLine();
        Console.Write(report.ToMarkdown());
        foreach (string file in report.Save(settings.Folder))
        {
            Console.Error.WriteLine($"llmpq: wrote {file}");
        }
    }
}

/// <summary>The readable form of a plan: a row per stage, then the baselines with throughput ratios.</summary>
internal static class PlanTable
{
    /// <summary>Layer types as counts in order of first appearance: <c>f16×2 q4_K×6</c>.</summary>
    public static string TypeCounts(IEnumerable<GgmlType> types) =>
        string.Join(" ", types.GroupBy(t => t).Select(g => $"{GgmlTypes.Name(g.Key)}×{g.Count()}"));

    /// <summary>
    /// Which devices were priced from their measured profile (and for which types) and which from the catalog's
    /// roofline, as <see cref="ProfiledCostModel"/> chooses: <c>cost model: profiled cpu (q4_K); roofline T4-0, T4-1</c>.
    /// </summary>
    public static string CostModels(ClusterSpec cluster)
    {
        string[] profiled = [.. cluster.Devices.Where(d => d.Profile is not null).Select(d => $"{d.Name} ({string.Join(", ", d.Profile!.Types.Select(t => GgmlTypes.Name(t.Type)))})")];
        string[] roofline = [.. cluster.Devices.Where(d => d.Profile is null).Select(d => d.Name)];
        string layers = (profiled.Length, roofline.Length) switch
        {
            (0, _) => "cost model: roofline for every device (no measured profile in the cluster file)",
            (_, 0) => $"cost model: profiled {string.Join(", ", profiled)}; roofline only for the types a profile lacks",
            _ => $"cost model: profiled {string.Join(", ", profiled)}; roofline {string.Join(", ", roofline)} and the types a profile lacks",
        };
        string coordinator = cluster.CoordinatorProfile is not { } step ? "; coordinator not profiled"
            : cluster.PipelineStep is { } pipeline
                ? string.Create(CultureInfo.InvariantCulture, $"; coordinator {step.FixedMs:G3} ms + {step.PerSequenceMs:G3} ms a sequence per prefill iteration; a decode step through the {pipeline.Stages} stages measured at {pipeline.FixedMs:G3} ms + {pipeline.PerSequenceMs:G3} ms a sequence besides the layers")
                : string.Create(CultureInfo.InvariantCulture, $"; coordinator {step.FixedMs:G3} ms + {step.PerSequenceMs:G3} ms a sequence per iteration")
                    + (cluster.SharesCompute && step.Pipeline is { } other ? $"; the decode step was measured through {other.Stages} stages, not {cluster.Devices.Count}, so it is not used: rerun llmpq profile" : string.Empty);
        return layers + coordinator + (cluster.SharesCompute ? "; the stages share this machine's cores, so their times add up" : string.Empty);
    }

    public static void Print(TextWriter w, Plan plan)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(string.Create(c, $"{plan.Model}: {plan.LayerCount} layers; B={plan.Workload.BatchSize}, s={plan.Workload.PromptTokens}, n={plan.Workload.GeneratedTokens}; θ={plan.Theta}, bound {(plan.QualityBound is GgmlType b ? "uniform " + GgmlTypes.Name(b) : "none")}; indicator: {plan.IndicatorMethod}"));
        w.WriteLine();
        w.WriteLine(string.Create(c, $"{"stage",-5} {"device",-18} {"layers",-9} {"types",-28} {"memory",-21} {"prefill ms",11} {"decode ms",10}"));
        for (int i = 0; i < plan.Stages.Count; i++)
        {
            StagePlan s = plan.Stages[i];
            string types = TypeCounts(s.LayerTypes);
            w.WriteLine(string.Create(c, $"{i,-5} {s.Device.Name + " (" + s.Device.Kind + ")",-18} {s.LayerStart + "-" + (s.LayerEnd - 1),-9} {types,-28} {ByteSize.Format(s.MemoryBytes) + " / " + ByteSize.Format(s.Device.MemoryBytes),-21} {s.PrefillSeconds * 1000,11:F2} {s.DecodeSeconds * 1000,10:F3}"));
        }

        w.WriteLine();
        w.WriteLine(string.Create(c, $"micro-batches: prefill {plan.PrefillMicroBatch}, decode {plan.DecodeMicroBatch} sequences; token budget {plan.TokenBudget}; embedding {GgmlTypes.Name(plan.EmbeddingType)}, output {GgmlTypes.Name(plan.OutputType)}"));
        w.WriteLine(string.Create(c, $"predicted: {plan.Predicted.ThroughputTokensPerSecond:F2} tokens/s (prefill {plan.Predicted.PrefillSeconds:F2} s + decode {plan.Predicted.DecodeSeconds:F2} s); indicator Σω = {plan.Indicator:G4}; solved in {plan.SolveMilliseconds:F1} ms"));
        w.WriteLine();
        w.WriteLine(string.Create(c, $"{"baseline",-18} {"tokens/s",10} {"ours ×",8} {"Σω",12}  note"));
        foreach (BaselinePlan baseline in plan.Baselines)
        {
            if (baseline is not { Predicted: { } p, Indicator: double omega })
            {
                w.WriteLine(string.Create(c, $"{baseline.Name,-18} {"does not fit",-32}  {baseline.Note}"));
                continue;
            }

            double ratio = plan.Predicted.ThroughputTokensPerSecond / p.ThroughputTokensPerSecond;
            w.WriteLine(string.Create(c, $"{baseline.Name,-18} {p.ThroughputTokensPerSecond,10:F2} {ratio,8:F2} {omega,12:G4}  {baseline.Note}"));
        }
    }
}
