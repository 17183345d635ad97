using LlmPq.Engine;
using LlmPq.Stages;

namespace LlmPq.Tests.Engine;

/// <summary>How many CPU threads the engine's own llama.cpp context gets.</summary>
public sealed class ContextThreadsTests
{
    [Fact]
    public void Alone_the_engine_takes_every_core_unless_told()
    {
        Assert.Equal(Environment.ProcessorCount, LlmPqEngine.ContextThreads(new LlmPqOptions { ModelPath = "m.gguf" }));
        Assert.Equal(3, LlmPqEngine.ContextThreads(new LlmPqOptions { ModelPath = "m.gguf", Threads = 3 }));
    }

    [Fact]
    public void With_every_layer_on_stage_servers_it_takes_one_thread_unless_told()
    {
        var options = new LlmPqOptions { ModelPath = "m.gguf" };
        options.Stages.Add(new LlmPqStageOptions { Layers = 2, Device = "CPU" });
        options.Stages.Add(new LlmPqStageOptions { Layers = 2, Endpoint = "10.0.0.2:50052" });
        Assert.Equal(1, LlmPqEngine.ContextThreads(options));

        options.Threads = 2;
        Assert.Equal(2, LlmPqEngine.ContextThreads(options));
    }

    [Fact]
    public void With_a_first_stage_in_this_process_it_takes_every_core()
    {
        var options = new LlmPqOptions { ModelPath = "m.gguf" };
        options.Stages.Add(new LlmPqStageOptions { Layers = 2, InProcess = true });
        options.Stages.Add(new LlmPqStageOptions { Layers = 2, Endpoint = "10.0.0.2:50052" });
        Assert.Equal(Environment.ProcessorCount, LlmPqEngine.ContextThreads(options));
    }
}
