using System.Diagnostics.Metrics;
using LlmPq;
using LlmPq.Chat;
using LlmPq.Engine;
using LlmPq.Runner;
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

        Backend Create(IServiceProvider sp) => new(
            sp.GetRequiredService<IOptionsMonitor<LlmPqOptions>>().Get(name),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>(),
            sp.GetService<ILogger<LlmPqChatClient>>());

        if (serviceKey is null)
        {
            services.AddSingleton(Create);
            services.AddSingleton(sp => sp.GetRequiredService<Backend>().Client);
            services.AddSingleton<IChatClient>(sp => sp.GetRequiredService<LlmPqChatClient>());
            services.AddSingleton(sp => sp.GetRequiredService<Backend>().Engine);
            services.AddHostedService(sp => sp.GetRequiredService<Backend>());
        }
        else
        {
            services.AddKeyedSingleton(serviceKey, (sp, _) => Create(sp));
            services.AddKeyedSingleton(serviceKey, (sp, key) => sp.GetRequiredKeyedService<Backend>(key).Client);
            services.AddKeyedSingleton<IChatClient>(serviceKey, (sp, key) => sp.GetRequiredKeyedService<LlmPqChatClient>(key));
            services.AddKeyedSingleton(serviceKey, (sp, key) => sp.GetRequiredKeyedService<Backend>(key).Engine);
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredKeyedService<Backend>(serviceKey));
        }

        return services;
    }

    /// <summary>Loads the engine when the host starts and unloads it when the host stops.</summary>
    /// <summary>
    /// What serves the client: the engine in this process, or, when stages run as separate processes, a pipeline whose
    /// engine runs in a child process (so a stage's death cannot take this process down). Started with the host.
    /// </summary>
    private sealed class Backend : IHostedService, IAsyncDisposable
    {
        private readonly LlmPqEngine? _engine;
        private readonly LlmPqPipeline? _pipeline;

        public Backend(LlmPqOptions options, ILoggerFactory? loggerFactory, IMeterFactory? meterFactory, ILogger<LlmPqChatClient>? logger)
        {
            if (options.Stages.Any(s => !s.InProcess))
            {
                _pipeline = new LlmPqPipeline(options, loggerFactory, meterFactory);
                Client = new LlmPqChatClient(_pipeline, options, logger);
            }
            else
            {
                _engine = new LlmPqEngine(options, loggerFactory, meterFactory);
                Client = new LlmPqChatClient(_engine, options, logger);
            }
        }

        public LlmPqChatClient Client { get; }

        /// <summary>Gets the in-process engine; a pipeline's engine runs in its runner process and is not reachable here.</summary>
        public LlmPqEngine Engine => _engine ?? throw new InvalidOperationException("This LlmPq client serves through a pipeline whose engine runs in a process of its own; use LlmPqChatClient or IChatClient.");

        public Task StartAsync(CancellationToken cancellationToken) => _engine?.StartAsync(cancellationToken) ?? _pipeline!.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => _engine?.StopAsync(cancellationToken) ?? _pipeline!.StopAsync(cancellationToken);

        public async ValueTask DisposeAsync()
        {
            if (_engine is not null)
            {
                await _engine.DisposeAsync().ConfigureAwait(false);
            }

            if (_pipeline is not null)
            {
                await _pipeline.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
