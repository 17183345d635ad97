using System.Text;
using LlmPq.Host.Serving;
using LlmPq.Stages;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace LlmPq.Tests.Serving;

/// <summary>The server over a pipeline: the engine runs in the runner process, and its GenAI metrics still reach <c>/metrics</c>.</summary>
[Collection(NativeTests.Name)]
public sealed class PipelineMetricsTests
{
    [Fact]
    public async Task Metrics_hold_the_engines_genai_server_metrics_in_pipeline_mode()
    {
        WebApplication app = OpenAIServer.Build(new OpenAIServerOptions { Port = 0 }, services => services.AddLlmPqChatClient(o =>
        {
            o.ModelPath = TestModels.Small;
            o.ContextLength = 256;
            o.Threads = 2;
            o.Stages.Add(new LlmPqStageOptions { Layers = 2, Threads = 1 });
            o.Stages.Add(new LlmPqStageOptions { Layers = 2, Threads = 1 });
        }));
        await using (app)
        {
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = OpenAIServer.GetListenUri(app), Timeout = TimeSpan.FromSeconds(120) };
            using (HttpResponseMessage chat = await http.PostAsync(
                new Uri("/v1/chat/completions", UriKind.Relative),
                new StringContent("""{"messages":[{"role":"user","content":"Hello"}],"max_tokens":4}""", Encoding.UTF8, "application/json")))
            {
                Assert.Equal(200, (int)chat.StatusCode);
            }

            // The runner's measurements come with its next heartbeat; wait for it (a guard against a hang, not a timing check).
            string text = string.Empty;
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (!guard.IsCancellationRequested && !text.Contains("gen_ai_server_time_to_first_token", StringComparison.Ordinal))
            {
                await Task.Delay(250, CancellationToken.None);
                text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            }

            Assert.Contains("gen_ai_server_time_to_first_token", text, StringComparison.Ordinal);
            Assert.Contains("gen_ai_server_request_duration", text, StringComparison.Ordinal);
            Assert.Contains("llmpq_engine_iteration_duration", text, StringComparison.Ordinal);
            Assert.Contains("llmpq_engine_kv_capacity", text, StringComparison.Ordinal);
            Assert.Contains("gen_ai_request_model=\"", text, StringComparison.Ordinal);
        }
    }
}
