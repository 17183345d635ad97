using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmPq.Gguf;
using LlmPq.Host.Commands;
using LlmPq.Planning;
using LlmPq.Planning.Indicator;
using LlmPq.Quantization;
using LlmPq.Tests.Stages;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Cli;

/// <summary><c>llmpq plan --validate</c>: the plan and its baselines run for real on a small CPU cluster (a smoke test, not a benchmark).</summary>
[Collection(NativeTests.Name)]
public sealed partial class PlanValidationTests
{
    private const string Cluster = """
        { "devices": [ { "kind": "CPU", "name": "a", "memoryGiB": 1, "threads": 1 },
                       { "kind": "CPU", "name": "b", "memoryGiB": 0.5, "threads": 1 } ] }
        """;

    [Fact]
    public void The_plan_and_every_baseline_that_fits_run_and_are_measured_against_their_prediction()
    {
        string folder = TestModels.TempPath("validate");
        Directory.CreateDirectory(folder);
        string cluster = Path.Combine(folder, "cluster.json");
        File.WriteAllText(cluster, Cluster);
        string planFile = Path.Combine(folder, "plan.json");
        string output = Path.Combine(folder, "out");
        try
        {
            CliRunner.Result r = CliRunner.Run(
                "plan", "--model", TestModels.Small, "--cluster", cluster, "--batch", "2", "--prompt", "16", "--generate", "4",
                "--out", planFile, "--validate", "--validate-out", output, "--repeat", "1");

            Assert.True(r.ExitCode == 0, r.StandardOutput + r.StandardError);
            Plan plan = Plan.Load(planFile);
            string[] expected = ["LlmPq", .. plan.Baselines.Where(b => b.Fits).Select(b => b.Name)];
            Assert.True(expected.Length > 1, "no baseline fits the test cluster");
            using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "validation.json")));
            JsonElement[] rows = [.. json.RootElement.GetProperty("rows").EnumerateArray()];
            Assert.Equal(expected, rows.Select(row => row.GetProperty("name").GetString()));
            foreach (JsonElement row in rows)
            {
                string name = row.GetProperty("name").GetString()!;
                Assert.True(row.GetProperty("measured").ValueKind == JsonValueKind.Object, $"{name} did not run: {row.GetProperty("note")}");
                double measured = row.GetProperty("measured").GetProperty("throughputTokensPerSecond").GetDouble();
                double predicted = row.GetProperty("predicted")[0].GetProperty("throughputTokensPerSecond").GetDouble();
                Assert.True(measured > 0, name);
                Assert.Equal(measured / predicted, row.GetProperty("throughputRatios")[0].GetDouble(), 1e-3 * measured / predicted);
            }

            Assert.Equal(expected.Length - 1, json.RootElement.GetProperty("gains").GetArrayLength());
            Assert.Contains("| LlmPq over |", r.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("Cost-model error", r.StandardOutput, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(output, "validation.svg")));
            Assert.True(File.Exists(Path.Combine(output, "validation.md")));
            AssertNoProcessOutlived(r.StandardError);
        }
        finally
        {
            DeleteQuantized(output);
        }
    }

    [Fact]
    public async Task Ctrl_C_stops_the_run_and_every_process_it_started()
    {
        string folder = TestModels.TempPath("validate-cancel");
        Directory.CreateDirectory(folder);
        string cluster = Path.Combine(folder, "cluster.json");
        File.WriteAllText(cluster, Cluster);
        string output = Path.Combine(folder, "out");
        // Through env, which execs dotnet (the same pid) with SIGINT at its default: a child of the test host has once
        // inherited it ignored (this Ctrl+C test and its twin ran on through their SIGINT in the same CI run).
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("--default-signal=INT");
        psi.ArgumentList.Add("dotnet");
        foreach (string a in (string[])[Path.Combine(AppContext.BaseDirectory, "llmpq.dll"), "plan", "--model", TestModels.Small, "--cluster", cluster, "--batch", "2", "--prompt", "16", "--generate", "200", "--validate", "--validate-out", output, "--repeat", "50"])
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        var stderr = new System.Text.StringBuilder();
        var started = new TaskCompletionSource();
        p.ErrorDataReceived += (_, e) =>
        {
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }

            if (e.Data?.Contains("run 1/", StringComparison.Ordinal) == true)
            {
                started.TrySetResult();
            }
        };
        p.BeginErrorReadLine();
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        try
        {
            await started.Task.WaitAsync(TimeSpan.FromMinutes(2));
            using (Process kill = Process.Start("kill", ["-INT", p.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            string Log()
            {
                lock (stderr)
                {
                    return stderr.ToString();
                }
            }

            try
            {
                await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
            }
            catch (TimeoutException)
            {
                // Seen once in CI and never by hand: what the process said last tells where it hung.
                Assert.Fail($"llmpq had not exited a minute after SIGINT; its standard error:\n{Log()}");
            }

            await stdout;
            string log = Log();

            Assert.True(p.ExitCode == 130, $"exit {p.ExitCode}: {log}");
            Assert.Contains("cancelled", log, StringComparison.Ordinal);
            AssertNoProcessOutlived(log);
        }
        finally
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }

            DeleteQuantized(output);
        }
    }

    [Fact]
    public async Task A_baseline_as_a_plan_quantizes_fits_its_model_and_serves_with_its_stages()
    {
        var workload = new Workload(2, 16, 4);
        ModelSpec spec = ModelSpec.FromGguf(GgufReader.Read(TestModels.Small));
        Plan plan = Planner.Create(spec, ClusterSpec.Parse(Cluster), workload, QualityTarget.Default, QualityIndicator.Compute(TestModels.Small));
        string folder = TestModels.TempPath("baseline-plans");
        Directory.CreateDirectory(folder);
        var quantized = new List<string>();
        try
        {
            Assert.Contains(plan.Baselines, b => b.Fits);
            foreach (BaselinePlan baseline in plan.Baselines.Where(b => b.Fits))
            {
                Plan asPlan = plan.ForBaseline(baseline);
                string planFile = Path.Combine(folder, $"{quantized.Count}.json");
                File.WriteAllText(planFile, asPlan.ToJson());

                LlmPqOptions options = await PlannedModel.PipelineOptionsAsync(TestModels.Small, asPlan, planFile, 64, NullLoggerFactory.Instance, CancellationToken.None);
                quantized.Add(options.ModelPath!);

                PlanQuantizer.CheckPlanFits(ModelSpec.FromGguf(GgufReader.Read(options.ModelPath!)), asPlan, options.ModelPath!);
                GgufFile file = GgufReader.Read(options.ModelPath!);
                Assert.All(file.Tensors.Where(t => t.Layer is int && GgufModelReader.IsQuantized(t)), t => Assert.Equal(asPlan.LayerTypes()[t.Layer!.Value], t.Type));
                Assert.Equal(asPlan.Stages.Select(s => s.LayerEnd - s.LayerStart), options.Stages.Select(s => s.Layers));
                Assert.Equal(asPlan.TokenBudget, options.TokenBudget);
                Assert.Equal(workload.BatchSize, options.MaxSequences);
            }
        }
        finally
        {
            foreach (string path in quantized.Distinct())
            {
                Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData("--preset", "opt-13b", "--repeat", "1", "give the model file with --model")]
    [InlineData("--model", "MODEL", "--repeat", "0", "--repeat must be at least 1")]
    public void Bad_validation_input_is_a_clear_error(string source, string value, string option, string count, string message)
    {
        string cluster = TestModels.TempPath("cluster.json");
        File.WriteAllText(cluster, Cluster);

        CliRunner.Result r = CliRunner.Run("plan", source, value == "MODEL" ? TestModels.Small : value, "--cluster", cluster, "--validate", option, count);

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(message, r.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void Validation_options_without_validate_are_refused()
    {
        string cluster = TestModels.TempPath("cluster.json");
        File.WriteAllText(cluster, Cluster);

        CliRunner.Result r = CliRunner.Run("plan", "--model", TestModels.Small, "--cluster", cluster, "--repeat", "5");

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("add --validate", r.StandardError, StringComparison.Ordinal);
    }

    private static void AssertNoProcessOutlived(string log)
    {
        int[] pids = [.. Pid().Matches(log).SelectMany(m => m.Groups[1].Value.Split(", ")).Select(v => int.Parse(v, CultureInfo.InvariantCulture))];
        Assert.NotEmpty(pids);
        Assert.All(pids, pid => Assert.False(ProcessTable.Read(pid) is { Command: "ggml-rpc-server" or "dotnet", State: not 'Z' }, $"process {pid} outlived the run"));
    }

    // The quantized models are kept in the user's cache, keyed by the source: this run's source is gone after it.
    private static void DeleteQuantized(string output)
    {
        string plans = Path.Combine(output, "plans");
        if (!Directory.Exists(plans))
        {
            return;
        }

        foreach (string file in Directory.GetFiles(plans, "*.json"))
        {
            string folder = Path.GetDirectoryName(PlannedModel.OutputPath(TestModels.Small, Plan.Load(file)))!;
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    [GeneratedRegex(@"\(pid ([\d, ]+)\)")]
    private static partial Regex Pid();
}
