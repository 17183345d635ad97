namespace LlmPq.Tests;

/// <summary>Tests that drive llama.cpp run one at a time: its log hook is process-wide and the machine has two cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeTests
{
    /// <summary>The collection name.</summary>
    public const string Name = "native";
}
