using System.Diagnostics.Metrics;
using LlmPq;
using LlmPq.Chat;
using LlmPq.Engine;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers LlmPq's <see cref="IChatClient"/>, its engine, and the hosted service that loads and unloads it.</summary>
public static class LlmPqServiceCollectionExtensions
{
    /// <summary>Registers an LlmPq chat client configured in code.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options (at least <see cref="LlmPqOptions.ModelPath"/>).</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddLlmPqChatClient(this IServiceCollection services, Action<LlmPqOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return Add(services, serviceKey: null, b => b.Configure(configure));
    }

    /// <summary>Registers an LlmPq chat client bound to a configuration section (by default the section <c>LlmPq</c>).</summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The section holding the options, for example <c>builder.Configuration.GetSection("LlmPq")</c>.</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddLlmPqChatClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return Add(services, serviceKey: null, b => b.Bind(configuration));
    }

    /// <summary>Registers a keyed LlmPq chat client (one engine per key), resolved with <c>[FromKeyedServices(key)]</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="serviceKey">The key of this client and its engine.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddKeyedLlmPqChatClient(this IServiceCollection services, object serviceKey, Action<LlmPqOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        ArgumentNullException.ThrowIfNull(configure);
        return Add(services, serviceKey, b => b.Configure(configure));
    }

    private static IServiceCollection Add(IServiceCollection services, object? serviceKey, Action<OptionsBuilder<LlmPqOptions>> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        string name = serviceKey is null ? Options.Options.DefaultName : $"LlmPq:{serviceKey}";
        OptionsBuilder<LlmPqOptions> options = services.AddOptions<LlmPqOptions>(name);
        configure(options);
        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LlmPqOptions>, LlmPqOptionsValidator>());

        LlmPqEngine CreateEngine(IServiceProvider sp) => new(
            sp.GetRequiredService<IOptionsMonitor<LlmPqOptions>>().Get(name),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>());

        LlmPqChatClient CreateClient(IServiceProvider sp, LlmPqEngine engine) => new(
            engine,
            sp.GetRequiredService<IOptionsMonitor<LlmPqOptions>>().Get(name),
            sp.GetService<ILogger<LlmPqChatClient>>());

        if (serviceKey is null)
        {
            services.AddSingleton(CreateEngine);
            services.AddSingleton(sp => CreateClient(sp, sp.GetRequiredService<LlmPqEngine>()));
            services.AddSingleton<IChatClient>(sp => sp.GetRequiredService<LlmPqChatClient>());
            services.AddHostedService(sp => new LlmPqEngineService(sp.GetRequiredService<LlmPqEngine>()));
        }
        else
        {
            services.AddKeyedSingleton(serviceKey, (sp, _) => CreateEngine(sp));
            services.AddKeyedSingleton(serviceKey, (sp, key) => CreateClient(sp, sp.GetRequiredKeyedService<LlmPqEngine>(key)));
            services.AddKeyedSingleton<IChatClient>(serviceKey, (sp, key) => sp.GetRequiredKeyedService<LlmPqChatClient>(key));
            services.AddSingleton<IHostedService>(sp => new LlmPqEngineService(sp.GetRequiredKeyedService<LlmPqEngine>(serviceKey)));
        }

        return services;
    }

    /// <summary>Loads the engine when the host starts and unloads it when the host stops.</summary>
    private sealed class LlmPqEngineService(LlmPqEngine engine) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => engine.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => engine.StopAsync(cancellationToken);
    }
}
