using LlmPq.Host.Emulation;

namespace LlmPq.Tests.Emulation;

/// <summary>A fact that needs root and iproute2 (network namespaces): skipped elsewhere, saying what is missing.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RootFactAttribute : FactAttribute
{
    /// <summary>Initializes a new instance of the <see cref="RootFactAttribute"/> class; skipped when hosts cannot be emulated here.</summary>
    public RootFactAttribute()
    {
        if (EmulatedHosts.Unavailable() is string why)
        {
            Skip = $"Skipped: {why}. CI runs as root and runs it.";
        }
    }
}
