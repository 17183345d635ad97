using LlmPq.Host.Commands;
using LlmPq.Planning;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmPq.Tests.Cli;

/// <summary>Where <c>serve --cluster</c> and <c>demo</c> keep the model quantized by their plan.</summary>
[Collection(NativeTests.Name)]
public sealed class PlannedModelTests
{
    private const string Cluster = """{"devices":[{"kind":"CPU","name":"a","memoryGiB":1,"threads":1},{"kind":"CPU","name":"b","memoryGiB":1,"threads":1}]}""";

    [Fact]
    public async Task Sources_of_the_same_name_get_their_own_planned_model_and_one_source_reuses_its_own()
    {
        string first = Path.Combine(TestModels.TempPath("a"), "model.gguf");
        string second = Path.Combine(TestModels.TempPath("b"), "model.gguf");
        foreach (string path in (string[])[first, second])
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.Copy(TestModels.Small, path);
        }

        var workload = new Workload(2, 64, 64);
        (Plan plan, string quantized) = await PlannedModel.PlanAndQuantizeAsync(first, ClusterSpec.Parse(Cluster), workload, NullLoggerFactory.Instance, CancellationToken.None);
        try
        {
            Assert.NotEqual(quantized, PlannedModel.OutputPath(second, plan));
            Assert.Equal("model.planned.gguf", Path.GetFileName(quantized));
            DateTime written = File.GetLastWriteTimeUtc(quantized);

            (_, string again) = await PlannedModel.PlanAndQuantizeAsync(first, ClusterSpec.Parse(Cluster), workload, NullLoggerFactory.Instance, CancellationToken.None);

            Assert.Equal(quantized, again);
            Assert.Equal(written, File.GetLastWriteTimeUtc(again));
            Assert.Single(Directory.GetFiles(Path.GetDirectoryName(quantized)!));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(quantized)!, recursive: true);
        }
    }
}
