namespace LlmPq.Stages;

/// <summary>A stage and the endpoint its server answers on.</summary>
/// <param name="Name">The stage's name.</param>
/// <param name="Endpoint">The server's <c>host:port</c>.</param>
internal sealed record StageEndpoint(string Name, string Endpoint);

/// <summary>
/// One lifetime of the local stage servers: all of them up, each on its endpoint, until one of them exits. What the
/// engine loads onto a generation is lost with it (ggml's RPC client aborts on a dead server, so the engine must stop
/// using these endpoints when <see cref="Lost"/> fires, and load again on the next generation).
/// </summary>
/// <param name="Number">The generation's number, from 1 up; each restart of a stage makes a new one.</param>
/// <param name="Stages">The stages and their endpoints, in pipeline order.</param>
/// <param name="Lost">Cancelled when a stage of this generation exits or the supervisor stops.</param>
internal sealed record StageGeneration(int Number, IReadOnlyList<StageEndpoint> Stages, CancellationToken Lost);

/// <summary>What a stage is doing.</summary>
internal enum StageState
{
    /// <summary>Its server is starting (or waiting to restart).</summary>
    Starting,

    /// <summary>Its server answers on its endpoint.</summary>
    Up,

    /// <summary>Its server failed fast too many times in a row; restarts go on.</summary>
    Unhealthy,

    /// <summary>The supervisor stopped it.</summary>
    Stopped,
}

/// <summary>A snapshot of one stage, for health reports and tests.</summary>
/// <param name="Name">The stage's name.</param>
/// <param name="State">What it is doing.</param>
/// <param name="Endpoint">Its endpoint while <see cref="StageState.Up"/>.</param>
/// <param name="ProcessId">Its server's process id while one runs.</param>
/// <param name="Restarts">How often its server was restarted.</param>
/// <param name="LastFailure">Why its server last failed, with its last output lines.</param>
internal sealed record StageStatus(string Name, StageState State, string? Endpoint, int? ProcessId, int Restarts, string? LastFailure);
