using System.Reflection;
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
}
