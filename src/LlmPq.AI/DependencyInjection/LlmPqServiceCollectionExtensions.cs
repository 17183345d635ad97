using System.Diagnostics.Metrics;
using LlmPq;
using LlmPq.Engine;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers LlmPq's <see cref="IChatClient"/> the way <c>AddChatClient</c> registers any other: the returned
/// <see cref="ChatClientBuilder"/> adds middleware (<c>UseFunctionInvocation</c>, <c>UseOpenTelemetry</c>,
/// <c>UseLogging</c>, …) and <see cref="IChatClient"/> resolves the built pipeline. <see cref="LlmPqChatClient"/> itself
/// is a singleton that owns the engine (or the stage servers and runner); a hosted service starts and stops it with the
/// host, and without a host (a plain service provider, a Semantic Kernel kernel's services) the first request starts it.
/// </summary>
public static class LlmPqServiceCollectionExtensions
{
    /// <summary>Registers an LlmPq chat client configured in code.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options (at least <see cref="LlmPqOptions.ModelPath"/>).</param>
    /// <param name="lifetime">The lifetime of the built <see cref="IChatClient"/> pipeline (the LlmPq client under it is a singleton).</param>
    /// <returns>A builder for the <see cref="IChatClient"/> pipeline over the LlmPq client.</returns>
    public static ChatClientBuilder AddLlmPqChatClient(this IServiceCollection services, Action<LlmPqOptions> configure, ServiceLifetime lifetime = ServiceLifetime.Singleton)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return Add(services, serviceKey: null, b => b.Configure(configure), lifetime);
    }

    /// <summary>Registers an LlmPq chat client bound to a configuration section (by default the section <c>LlmPq</c>).</summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The section holding the options, for example <c>builder.Configuration.GetSection("LlmPq")</c>.</param>
    /// <param name="lifetime">The lifetime of the built <see cref="IChatClient"/> pipeline (the LlmPq client under it is a singleton).</param>
    /// <returns>A builder for the <see cref="IChatClient"/> pipeline over the LlmPq client.</returns>
    public static ChatClientBuilder AddLlmPqChatClient(this IServiceCollection services, IConfiguration configuration, ServiceLifetime lifetime = ServiceLifetime.Singleton)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return Add(services, serviceKey: null, b => b.Bind(configuration), lifetime);
    }

    /// <summary>Registers a keyed LlmPq chat client (one engine per key), resolved with <c>[FromKeyedServices(key)]</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="serviceKey">The key of this client and its engine.</param>
    /// <param name="configure">Sets the options.</param>
    /// <param name="lifetime">The lifetime of the built <see cref="IChatClient"/> pipeline (the LlmPq client under it is a singleton).</param>
    /// <returns>A builder for the keyed <see cref="IChatClient"/> pipeline over the LlmPq client.</returns>
    public static ChatClientBuilder AddKeyedLlmPqChatClient(this IServiceCollection services, object serviceKey, Action<LlmPqOptions> configure, ServiceLifetime lifetime = ServiceLifetime.Singleton)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        ArgumentNullException.ThrowIfNull(configure);
        return Add(services, serviceKey, b => b.Configure(configure), lifetime);
    }

    private static ChatClientBuilder Add(IServiceCollection services, object? serviceKey, Action<OptionsBuilder<LlmPqOptions>> configure, ServiceLifetime lifetime)
    {
        ArgumentNullException.ThrowIfNull(services);
        string name = serviceKey is null ? Options.Options.DefaultName : $"LlmPq:{serviceKey}";
        OptionsBuilder<LlmPqOptions> options = services.AddOptions<LlmPqOptions>(name);
        configure(options);
        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LlmPqOptions>, LlmPqOptionsValidator>());

        // Options resolved through the monitor are validated there, so a host-less first use fails with the same message.
        LlmPqChatClient Create(IServiceProvider sp) => LlmPqChatClient.Create(
            sp.GetRequiredService<IOptionsMonitor<LlmPqOptions>>().Get(name),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>());

        if (serviceKey is null)
        {
            services.AddSingleton(Create);
            services.AddSingleton(sp => sp.GetRequiredService<LlmPqChatClient>().GetService<LlmPqEngine>() ?? throw NoEngine());
            services.AddSingleton<IHostedService>(sp => new Lifecycle(sp.GetRequiredService<LlmPqChatClient>()));
            return services.AddChatClient(sp => sp.GetRequiredService<LlmPqChatClient>(), lifetime);
        }

        services.AddKeyedSingleton(serviceKey, (sp, _) => Create(sp));
        services.AddKeyedSingleton(serviceKey, (sp, key) => sp.GetRequiredKeyedService<LlmPqChatClient>(key).GetService<LlmPqEngine>() ?? throw NoEngine());
        services.AddSingleton<IHostedService>(sp => new Lifecycle(sp.GetRequiredKeyedService<LlmPqChatClient>(serviceKey)));
        return services.AddKeyedChatClient(serviceKey, sp => sp.GetRequiredKeyedService<LlmPqChatClient>(serviceKey), lifetime);
    }

    private static InvalidOperationException NoEngine() =>
        new("This LlmPq client serves through a pipeline whose engine runs in a process of its own; use LlmPqChatClient or IChatClient.");

    /// <summary>Starts the client's engine or pipeline with the host and stops it with the host.</summary>
    private sealed class Lifecycle(LlmPqChatClient client) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => client.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => client.StopAsync(cancellationToken);
    }
}
