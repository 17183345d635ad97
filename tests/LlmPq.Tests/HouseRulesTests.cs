using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests;

/// <summary>Rules of the code base that a reviewer would otherwise have to remember.</summary>
public sealed class HouseRulesTests
{
    [Fact]
    public void Logging_event_ids_are_unique_across_the_library_and_the_host()
    {
        Assembly[] assemblies = [typeof(LlmPqOptions).Assembly, typeof(LlmPq.Host.Commands.Cli).Assembly];
        var messages = assemblies
            .SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .ToList();

        Assert.True(messages.Count > 20, $"only {messages.Count} [LoggerMessage] methods were found");
        string[] collisions = [.. messages
            .GroupBy(x => x.Attribute!.EventId)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(x => $"{x.Method.DeclaringType!.Name}.{x.Method.Name}"))}")];
        Assert.True(collisions.Length == 0, "Event ids used twice:\n" + string.Join('\n', collisions));
    }

    /// <summary>The folders of src/LlmPq.AI and what each may use: the chain of docs/architecture.md.</summary>
    private static readonly Dictionary<string, string[]> s_allowed = new()
    {
        ["Gguf"] = [],
        ["Grammar"] = [],
        ["Scheduling"] = [],
        ["Native"] = ["Gguf"],
        ["Planning"] = ["Gguf", "Native"],
        ["Quantization"] = ["Gguf", "Native", "Planning"],
        ["Evaluation"] = ["Gguf", "Native", "Planning"],
        ["Stages"] = ["Gguf", "Native", "Planning"],
        ["Engine"] = ["Native", "Scheduling", "Stages"],
        ["Chat"] = ["Engine", "Grammar", "Native"],
        ["Runner"] = ["Chat", "Native", "Stages"],
        ["DependencyInjection"] = ["Engine"],
    };

    [Fact]
    public void Each_folder_uses_only_the_folders_before_it_in_the_chain()
    {
        string source = Path.Combine(RepoRoot(), "src", "LlmPq.AI");
        var violations = new List<string>();
        foreach (string folder in Directory.GetDirectories(source).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj"))!)
        {
            Assert.True(s_allowed.TryGetValue(folder!, out string[]? allowed), $"src/LlmPq.AI/{folder} is not in docs/architecture.md's chain (nor in this test)");
            foreach (string file in Directory.EnumerateFiles(Path.Combine(source, folder!), "*.cs", SearchOption.AllDirectories))
            {
                foreach (Match use in Regex.Matches(File.ReadAllText(file), @"^using LlmPq\.(\w+)", RegexOptions.Multiline))
                {
                    string used = use.Groups[1].Value;
                    if (used != folder && !allowed!.Contains(used))
                    {
                        violations.Add($"{Path.GetRelativePath(source, file)} uses LlmPq.{used}");
                    }
                }
            }
        }

        Assert.True(violations.Count == 0, "Reaching back up the chain:\n" + string.Join('\n', violations));
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LlmPq.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("LlmPq.sln is not above the test's folder.");
    }
}
