using System.CommandLine;
using LlmPq.Host.Commands;
using LlmPq.Scheduling;

namespace LlmPq.Tests.Cli;

/// <summary>The engine's options, declared once for <c>serve</c> and <c>bench</c>: the same names, descriptions and defaults.</summary>
public sealed class EngineOptionsTests
{
    private static readonly string[] s_engineOptions = ["--ctx", "--parallel", "--token-budget", "--threads", "--policy", "--tbt-target-ms"];

    [Fact]
    public void Serve_and_bench_declare_the_engine_options_alike()
    {
        Command serve = ServeCommand.Create(), bench = BenchCommand.Create();
        foreach (string name in s_engineOptions)
        {
            Option a = serve.Options.Single(o => o.Name == name), b = bench.Options.Single(o => o.Name == name);
            Assert.Equal(a.GetType(), b.GetType());
            Assert.Equal(a.Description, b.Description);
            Assert.Equal(a.Aliases.Order(), b.Aliases.Order());
        }
    }

    [Fact]
    public void Serve_and_bench_default_to_LlmPqOptions_own_values()
    {
        ParseResult serve = ServeCommand.Create().Parse(["--model", "m.gguf"]), bench = BenchCommand.Create().Parse([]);
        Assert.Empty(serve.Errors);
        Assert.Empty(bench.Errors);
        var library = new LlmPqOptions();
        foreach (ParseResult parse in new[] { serve, bench })
        {
            Assert.Equal(library.ContextLength, parse.GetValue<int>("--ctx"));
            Assert.Equal(library.MaxSequences, parse.GetValue<int>("--parallel"));
            Assert.Equal(library.TokenBudget, parse.GetValue<int>("--token-budget"));
            Assert.Equal(library.Threads, parse.GetValue<int>("--threads"));
            Assert.Equal([library.SchedulingPolicy], Host.Commands.Cli.ParsePolicies(parse.GetValue<string[]>("--policy")!));
            Assert.Null(parse.GetValue<double?>("--tbt-target-ms"));
        }
    }

    [Fact]
    public void The_command_line_fills_every_engine_option()
    {
        var engine = new EngineCommandOptions(severalPolicies: false);
        ParseResult parse = Root(engine).Parse(["--ctx", "512", "--parallel", "3", "--token-budget", "64", "-t", "2", "--policy", "prefill-first", "--tbt-target-ms", "40"]);
        Assert.Empty(parse.Errors);
        var options = new LlmPqOptions();
        engine.Read(parse).Fill(options);
        Assert.Equal((512, 3, 64, 2, SchedulingPolicy.PrefillFirst, TimeSpan.FromMilliseconds(40)), (options.ContextLength, options.MaxSequences, options.TokenBudget, options.Threads, options.SchedulingPolicy, options.TbtTarget));
    }

    [Theory]
    [InlineData(false, "sarathi,prefill-first", "--policy takes one policy here")]
    [InlineData(true, "fastest", "--policy 'fastest' is none of")]
    [InlineData(false, "fastest", "--policy 'fastest' is none of")]
    public void A_policy_the_command_cannot_run_is_a_parse_error_naming_the_flag(bool severalPolicies, string policy, string error)
    {
        ParseResult parse = Root(new EngineCommandOptions(severalPolicies)).Parse(["--policy", policy]);
        Assert.Contains(parse.Errors, e => e.Message.Contains(error, StringComparison.Ordinal));
    }

    [Fact]
    public void Bench_compares_several_policies()
    {
        var engine = new EngineCommandOptions(severalPolicies: true);
        ParseResult parse = Root(engine).Parse(["--policy", "sarathi,prefill-first"]);
        Assert.Empty(parse.Errors);
        Assert.Equal([SchedulingPolicy.Sarathi, SchedulingPolicy.PrefillFirst], engine.Read(parse).Policies);
    }

    private static RootCommand Root(EngineCommandOptions engine)
    {
        var root = new RootCommand();
        foreach (Option option in engine.All)
        {
            root.Options.Add(option);
        }

        return root;
    }
}
