using System.CommandLine;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using LlmPq.Engine;
using LlmPq.Gguf;
using Microsoft.Extensions.AI;

namespace LlmPq.Host.Commands;

/// <summary>
/// <c>llmpq tool-check</c>: forced tool calls on generated models with each tool-call template, seeded: how many are a
/// valid call (a known function, arguments that parse and follow its schema), and what the tool grammar costs per
/// output token against plain sampling of the same model in the same run.
/// </summary>
internal static class ToolCheckCommand
{
    private static readonly string[] s_cities = ["Oslo", "Lima", "Kyoto"];

    public static Command Create()
    {
        var runs = new Option<int>("--runs", "-n") { Description = "Seeded forced calls per template.", DefaultValueFactory = _ => 100 };
        var tokens = new Option<int>("--max-tokens") { Description = "Output limit of a call.", DefaultValueFactory = _ => 96 };
        var layers = new Option<int>("--layers") { Description = "Layers of the generated models.", DefaultValueFactory = _ => 4 };
        var command = new Command("tool-check", "Forced tool calls on generated models with real tool-call templates: validity over seeded runs and the tool grammar's cost per token.")
        {
            runs, tokens, layers,
        };
        command.SetAction((parse, ct) => Cli.RunAsync(async () =>
        {
            int n = parse.GetValue(runs);
            if (n < 1 || parse.GetValue(tokens) < 16)
            {
                throw new ArgumentException("--runs must be 1 or more and --max-tokens 16 or more.");
            }

            Console.WriteLine("template  valid calls  parallel off: one call  ms/token plain  ms/token required grammar  ratio");
            foreach (string template in (string[])[ChatTemplateLibrary.HermesName, ChatTemplateLibrary.Llama31Name])
            {
                string path = Path.Combine(Path.GetTempPath(), "llmpq-tool-check", $"{template}-{parse.GetValue(layers)}.gguf");
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                TinyLlamaModel.Write(path, new TinyLlamaModelOptions { Layers = parse.GetValue(layers), ChatTemplate = ChatTemplateLibrary.Resolve(template) });
                await using LlmPqChatClient client = LlmPqChatClient.Create(new LlmPqOptions { ModelPath = path, ContextLength = 1024, MaxSequences = 1, PrefixReuse = false });
                await client.StartAsync(ct).ConfigureAwait(false);
                Result r = await CheckAsync(client, n, parse.GetValue(tokens), ct).ConfigureAwait(false);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{template,-9} {r.Valid,4}/{n,-6} {r.Single,4}/{n,-18} {r.PlainMs,14:F2} {r.GrammarMs,26:F2} {r.GrammarMs / r.PlainMs,6:F2}"));
            }

            return 0;
        }));
        return command;
    }

    private static async Task<Result> CheckAsync(IChatClient client, int runs, int maxTokens, CancellationToken ct)
    {
        AITool[] tools =
        [
            AIFunctionFactory.CreateDeclaration("get_weather", "The weather of a city.", JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string","enum":["Oslo","Lima","Kyoto"]}},"required":["city"]}""").RootElement),
            AIFunctionFactory.CreateDeclaration("get_time", "The time now.", JsonDocument.Parse("""{"type":"object","properties":{"utc":{"type":"boolean"}},"required":["utc"]}""").RootElement),
        ];
        int valid = 0, single = 0;
        var plain = new List<double>();
        var grammar = new List<double>();
        for (int seed = 0; seed < runs; seed++)
        {
            var forced = new ChatOptions { Tools = tools, ToolMode = ChatToolMode.RequireAny, Seed = seed, MaxOutputTokens = maxTokens };
            (ChatResponse response, double perToken) = await TimedAsync(client, forced, ct).ConfigureAwait(false);
            List<FunctionCallContent> calls = [.. response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>()];
            valid += calls.Count > 0 && calls.All(IsValid) ? 1 : 0;
            ChatResponse one = await client.GetResponseAsync("Weather?", new ChatOptions { Tools = tools, ToolMode = ChatToolMode.RequireAny, AllowMultipleToolCalls = false, Seed = seed, MaxOutputTokens = maxTokens }, ct).ConfigureAwait(false);
            single += one.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().Count(IsValid) == 1 ? 1 : 0;

            // The same seed without tools, right after: plain sampling's time per token on the same model and load.
            (_, double plainPerToken) = await TimedAsync(client, new ChatOptions { Seed = seed, MaxOutputTokens = maxTokens }, ct).ConfigureAwait(false);
            // An answer of one token has no time between tokens.
            if (double.IsFinite(perToken) && double.IsFinite(plainPerToken))
            {
                grammar.Add(perToken);
                plain.Add(plainPerToken);
            }
        }

        return new Result(valid, single, plain.Count > 0 ? plain.Average() : double.NaN, grammar.Count > 0 ? grammar.Average() : double.NaN);
    }

    /// <summary>Runs one answer; returns it and the engine's own time per output token for it (decode, sampling included).</summary>
    private static async Task<(ChatResponse Response, double MsPerToken)> TimedAsync(IChatClient client, ChatOptions options, CancellationToken ct)
    {
        double seconds = double.NaN;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == EngineMetrics.MeterName && instrument.Name == "gen_ai.server.time_per_output_token")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) => seconds = value);
        listener.Start();
        ChatResponse response = await client.GetResponseAsync("What is the weather in Oslo, and what time is it?", options, ct).ConfigureAwait(false);
        return (response, seconds * 1000);
    }

    private static bool IsValid(FunctionCallContent call) => call.Exception is null && call.Arguments is { } args && call.Name switch
    {
        "get_weather" => args.Count == 1 && args.TryGetValue("city", out object? city) && city is JsonElement { ValueKind: JsonValueKind.String } c && s_cities.Contains(c.GetString()),
        "get_time" => args.Count == 1 && args.TryGetValue("utc", out object? utc) && utc is JsonElement { ValueKind: JsonValueKind.True or JsonValueKind.False },
        _ => false,
    };

    private sealed record Result(int Valid, int Single, double PlainMs, double GrammarMs);
}
