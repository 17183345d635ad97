using System.CommandLine;
using LlmPq.Host.Commands;

var root = new RootCommand("LlmPq: serve an LLM on a heterogeneous cluster through a planned, mixed-precision llama.cpp pipeline.")
{
    MakeModelCommand.Create(),
    InfoCommand.Create(),
    GenerateCommand.Create(),
    BenchCommand.Create(),
    ServeCommand.Create(),
    StageCommand.Create(),
    HostsCheckCommand.Create(),
    DemoCommand.Create(),
    PlanCommand.Create(),
    ProfileCommand.Create(),
    PlanTableCommand.Create(),
    PlanBenchCommand.Create(),
    QuantizeCommand.Create(),
    PlannedModelCache.Create(),
    EvalCommand.Create(),
    IndicatorStudyCommand.Create(),
    ToolCheckCommand.Create(),
    RunnerCommand.Create(),
    Cli.Verbose,
};

ParseResult parse = root.Parse(args);
return await parse.InvokeAsync(Cli.Invocation(parse)).ConfigureAwait(false);
