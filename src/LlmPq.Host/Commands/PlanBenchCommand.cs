using System.CommandLine;
using LlmPq.Planning.Optimizer;

namespace LlmPq.Host.Commands;

/// <summary><c>llmpq plan-bench</c>: the optimizer's solve time on an 80-layer model, 8 devices of 4 kinds, 6 types.</summary>
internal static class PlanBenchCommand
{
    public static Command Create()
    {
        var repetitions = new Option<int>("--repetitions", "-r") { Description = "Solves per case (the first includes JIT).", DefaultValueFactory = _ => 5 };
        var command = new Command("plan-bench", "Time the exact optimizer on an 80-layer model over 8 devices of 4 kinds with 6 types.") { repetitions };
        command.SetAction((parse, ct) => Cli.RunAsync(() =>
        {
            OptimizerBenchmark.Run(Console.Out, parse.GetValue(repetitions), ct);
            return Task.FromResult(0);
        }));
        return command;
    }
}
