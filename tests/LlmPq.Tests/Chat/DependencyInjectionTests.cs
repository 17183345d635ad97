using LlmPq.Engine;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LlmPq.Tests.Chat;

/// <summary>AddLlmPqChatClient in a generic host: options validated at start, the engine loaded and unloaded by the host.</summary>
[Collection(NativeTests.Name)]
public sealed class DependencyInjectionTests
{
    [Fact]
    public async Task The_host_loads_the_engine_and_the_chat_client_answers()
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = TestModels.Small;
            o.ContextLength = 512;
            o.Threads = 2;
        });
        using IHost host = builder.Build();
        await host.StartAsync();

        IChatClient client = host.Services.GetRequiredService<IChatClient>();
        LlmPqEngine engine = client.GetRequiredService<LlmPqEngine>();
        Assert.True(engine.IsReady);
        ChatResponse response = await client.GetResponseAsync("Hello", new ChatOptions { Temperature = 0, MaxOutputTokens = 4 });
        Assert.NotNull(response.Usage);

        await host.StopAsync();
        Assert.False(engine.IsReady);
        await Assert.ThrowsAsync<LlmPqUnavailableException>(() => client.GetResponseAsync("Hello again"));
    }

    [Fact]
    public async Task Options_bind_from_the_llmpq_configuration_section()
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LlmPq:ModelPath"] = TestModels.Small,
            ["LlmPq:ModelId"] = "tiny",
            ["LlmPq:ContextLength"] = "512",
            ["LlmPq:Threads"] = "2",
        });
        builder.Services.AddLlmPqChatClient(builder.Configuration.GetSection(LlmPqOptions.SectionName));
        using IHost host = builder.Build();
        await host.StartAsync();
        LlmPqEngine engine = host.Services.GetRequiredService<LlmPqEngine>();
        Assert.Equal("tiny", engine.ModelId);
        Assert.Equal(512, engine.ContextLength);
        await host.StopAsync();
    }

    [Fact]
    public async Task Configured_local_stages_make_the_host_serve_through_an_isolated_pipeline()
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LlmPq:ModelPath"] = TestModels.Small,
            ["LlmPq:ContextLength"] = "256",
            ["LlmPq:Stages:0:Layers"] = "3",
            ["LlmPq:Stages:0:Threads"] = "1",
            ["LlmPq:Stages:1:Layers"] = "1",
            ["LlmPq:Stages:1:Threads"] = "1",
        });
        builder.Services.AddLlmPqChatClient(builder.Configuration.GetSection(LlmPqOptions.SectionName));
        using IHost host = builder.Build();
        await host.StartAsync();

        IChatClient chat = host.Services.GetRequiredService<IChatClient>();
        ChatResponse response = await chat.GetResponseAsync("Hello stages", new ChatOptions { Temperature = 0, MaxOutputTokens = 6 });

        Assert.NotEmpty(response.Text);
        Assert.NotNull(chat.GetService<LlmPq.Runner.LlmPqPipeline>());
        Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredService<LlmPqEngine>());
        await host.StopAsync();
    }

    [Fact]
    public async Task Keyed_clients_get_their_own_engines()
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddKeyedLlmPqChatClient("a", o => { o.ModelPath = TestModels.Small; o.ModelId = "model-a"; o.ContextLength = 256; o.Threads = 1; });
        builder.Services.AddKeyedLlmPqChatClient("b", o => { o.ModelPath = TestModels.Small; o.ModelId = "model-b"; o.ContextLength = 256; o.Threads = 1; });
        using IHost host = builder.Build();
        await host.StartAsync();
        IChatClient a = host.Services.GetRequiredKeyedService<IChatClient>("a");
        IChatClient b = host.Services.GetRequiredKeyedService<IChatClient>("b");
        Assert.Equal("model-a", a.GetRequiredService<ChatClientMetadata>().DefaultModelId);
        Assert.Equal("model-b", b.GetRequiredService<ChatClientMetadata>().DefaultModelId);
        Assert.NotSame(a.GetService<LlmPqEngine>(), b.GetService<LlmPqEngine>());
        Assert.Equal("model-b", (await b.GetResponseAsync("Hi", new ChatOptions { MaxOutputTokens = 2 })).ModelId);
        await host.StopAsync();
    }

    [Theory]
    [InlineData("", "ModelPath is required")]
    [InlineData("/nonexistent/model.gguf", "does not exist")]
    public async Task Start_up_fails_clearly_on_a_bad_model_path(string path, string expected)
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddLlmPqChatClient(o => o.ModelPath = path);
        using IHost host = builder.Build();
        OptionsValidationException ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_up_fails_clearly_on_bad_numbers()
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = TestModels.Small;
            o.ContextLength = 0;
            o.TokenBudget = 16;
            o.MicroBatchSize = 64;
        });
        using IHost host = builder.Build();
        OptionsValidationException ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("ContextLength must be positive", ex.Message, StringComparison.Ordinal);
        Assert.Contains("MicroBatchSize", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_llama_cpp_cannot_load_fails_the_start()
    {
        string path = TestModels.TempPath("broken.gguf");
        await File.WriteAllTextAsync(path, "GGUF but not really");
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddLlmPqChatClient(o => o.ModelPath = path);
        using IHost host = builder.Build();
        await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
    }

    [Fact]
    public async Task Without_a_host_the_first_request_starts_the_engine_and_disposal_stops_it()
    {
        var services = new ServiceCollection();
        services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = TestModels.Small;
            o.ContextLength = 512;
            o.Threads = 2;
        });
        LlmPqEngine engine;
        await using (ServiceProvider provider = services.BuildServiceProvider())
        {
            IChatClient client = provider.GetRequiredService<IChatClient>();
            engine = provider.GetRequiredService<LlmPqEngine>();
            Assert.False(engine.IsReady);
            ChatResponse response = await client.GetResponseAsync("Hello", new ChatOptions { Temperature = 0, MaxOutputTokens = 3 });
            Assert.Equal(3, response.Usage?.OutputTokenCount);
            Assert.True(engine.IsReady);
        }

        Assert.False(engine.IsReady);
    }

    [Fact]
    public async Task The_returned_builder_adds_middleware_that_iChatClient_resolves()
    {
        var services = new ServiceCollection();
        var seen = new List<string>();
        services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = TestModels.Small;
            o.ContextLength = 512;
        })
            .Use((messages, options, next, ct) =>
            {
                seen.Add(messages.Last().Text);
                return next(messages, options, ct);
            })
            .UseFunctionInvocation();
        await using ServiceProvider provider = services.BuildServiceProvider();

        IChatClient client = provider.GetRequiredService<IChatClient>();
        Assert.NotSame(provider.GetRequiredService<LlmPqChatClient>(), client);
        Assert.NotNull(client.GetService<FunctionInvokingChatClient>());
        Assert.Same(provider.GetRequiredService<LlmPqChatClient>(), client.GetService<LlmPqChatClient>());
        await client.GetResponseAsync("through the middleware", new ChatOptions { Temperature = 0, MaxOutputTokens = 2 });
        Assert.Equal(["through the middleware"], seen);
    }

    [Fact]
    public async Task Without_a_host_invalid_options_fail_the_first_resolution_with_what_to_fix()
    {
        var services = new ServiceCollection();
        services.AddLlmPqChatClient(o => o.ModelPath = TestModels.TempPath("missing.gguf"));
        await using ServiceProvider provider = services.BuildServiceProvider();
        OptionsValidationException ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IChatClient>());
        Assert.Contains("missing.gguf", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stopped_client_does_not_start_again_on_a_request()
    {
        await using var client = LlmPqChatClient.Create(new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = 512 });
        await client.StartAsync();
        Assert.True(client.IsReady);
        await client.StopAsync();
        await Assert.ThrowsAsync<LlmPqUnavailableException>(() => client.GetResponseAsync("Hello"));
        await Assert.ThrowsAsync<LlmPqUnavailableException>(() => client.StartAsync());
    }

    [Fact]
    public void Create_refuses_invalid_options_naming_the_problem()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => LlmPqChatClient.Create(new LlmPqOptions { ModelPath = TestModels.Small, ContextLength = -1 }));
        Assert.Contains("ContextLength must be positive", ex.Message, StringComparison.Ordinal);
    }
}
