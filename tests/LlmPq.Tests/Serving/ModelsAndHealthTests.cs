using System.Text.Json;
using LlmPq.Host.Serving;

namespace LlmPq.Tests.Serving;

public sealed class ModelsAndHealthTests
{
    [Fact]
    public async Task Models_lists_the_default_model_of_the_chat_client()
    {
        await using var server = await RunningServer.StartAsync();

        using HttpResponseMessage response = await server.Http.GetAsync(new Uri("/v1/models", UriKind.Relative));
        JsonElement list = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("list", list.GetProperty("object").GetString());
        JsonElement model = Assert.Single(list.GetProperty("data").EnumerateArray());
        Assert.Equal(FakeChatClient.Model, model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal("llmpq", model.GetProperty("owned_by").GetString());
        Assert.True(model.GetProperty("created").GetInt64() > 0);
    }

    [Fact]
    public async Task Health_is_ok_without_a_readiness_source()
    {
        await using var server = await RunningServer.StartAsync();

        (int status, string state) = await GetHealthAsync(server);

        Assert.Equal(200, status);
        Assert.Equal("ok", state);
    }

    [Fact]
    public async Task Health_follows_the_readiness_source()
    {
        var readiness = new Readiness();
        await using var server = await RunningServer.StartAsync(readiness: readiness);

        (int notReadyStatus, string notReadyState) = await GetHealthAsync(server);
        readiness.IsReady = true;
        (int readyStatus, string readyState) = await GetHealthAsync(server);

        Assert.Equal(503, notReadyStatus);
        Assert.NotEqual("ok", notReadyState);
        Assert.Equal(200, readyStatus);
        Assert.Equal("ok", readyState);
    }

    private static async Task<(int Status, string State)> GetHealthAsync(RunningServer server)
    {
        using HttpResponseMessage response = await server.Http.GetAsync(new Uri("/health", UriKind.Relative));
        string status = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString()!;
        return ((int)response.StatusCode, status);
    }

    private sealed class Readiness : IServerReadiness
    {
        public bool IsReady { get; set; }
    }
}
