using System.Diagnostics;
using LlmPq.Engine;
using LlmPq.Native;
using Microsoft.Extensions.Logging;

namespace LlmPq.Tests.Native;

/// <summary>Load a generated model on the CPU, tokenize, decode, sample, detokenize.</summary>
[Collection(NativeTests.Name)]
public sealed class FirstTokensTests
{
    [Fact]
    public void Greedy_generation_is_deterministic_and_produces_tokens()
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        int[] prompt = model.Tokenize("The quick brown fox", addSpecial: true, parseSpecial: false);

        GenerationResult first = Generate(model, prompt);
        GenerationResult second = Generate(model, prompt);

        Assert.True(first.Tokens.Count > 0 || first.EndedByModel);
        Assert.Equal(first.Tokens, second.Tokens);
        Assert.All(first.Tokens, t => Assert.InRange(t, 0, model.VocabularySize - 1));
    }

    [Fact]
    public void Greedy_tokens_follow_the_argmax_of_the_logits()
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 256, Threads = 2 });
        using var batch = new TokenBatch(64);
        int[] prompt = model.Tokenize("Hello there", addSpecial: true, parseSpecial: false);
        int last = 0;
        for (int i = 0; i < prompt.Length; i++)
        {
            last = batch.Add(prompt[i], i, 0, wantLogits: i == prompt.Length - 1);
        }

        Assert.True(context.Decode(batch));
        ReadOnlySpan<float> logits = context.Logits(last);
        int argmax = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[argmax])
            {
                argmax = i;
            }
        }

        using var sampler = new LlamaSampler(model, new SamplingSettings());
        Assert.Equal(argmax, sampler.Sample(context, last));
    }

    [Theory]
    [InlineData("Hello world, this is LlmPq.")]
    [InlineData("Ünïcödé — 日本語 and emoji 🙂 too")]
    [InlineData("  leading spaces\nand\ttabs")]
    public void Tokenization_round_trips_text(string text)
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        int[] tokens = model.Tokenize(text, addSpecial: false, parseSpecial: false);
        Assert.NotEmpty(tokens);
        string back = model.Detokenize(tokens);

        // SentencePiece adds one space in front of a text; llama.cpp removes it again on detokenize.
        Assert.Equal(text, back);
    }

    [Fact]
    public void The_model_chat_template_is_applied()
    {
        using LlamaModel model = LlamaModel.Load(TestModels.Small);
        string? prompt = model.ApplyChatTemplate([("system", "Be brief."), ("user", "Hi!")], addAssistantPrefix: true);
        Assert.NotNull(prompt);
        Assert.Contains("Be brief.", prompt, StringComparison.Ordinal);
        Assert.Contains("Hi!", prompt, StringComparison.Ordinal);
        Assert.EndsWith("assistant\n", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_a_model_gives_a_managed_error()
    {
        string path = TestModels.TempPath("garbage.gguf");
        File.WriteAllText(path, "this is not a GGUF file at all");
        LlamaException ex = Assert.Throws<LlamaException>(() => LlamaModel.Load(path));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_truncated_model_gives_a_managed_error()
    {
        string path = TestModels.TempPath("truncated.gguf");
        File.Copy(TestModels.Small, path);
        using (FileStream f = File.OpenWrite(path))
        {
            f.SetLength(f.Length / 2);
        }

        LlamaException ex = Assert.Throws<LlamaException>(() => LlamaModel.Load(path));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_model_gives_file_not_found()
    {
        Assert.Throws<FileNotFoundException>(() => LlamaModel.Load(TestModels.TempPath("missing.gguf")));
    }

    [Fact]
    public void The_loaded_library_is_the_pinned_version()
    {
        LlamaBackend.EnsureInitialized();
        Assert.Equal(NativeLibraryLoader.PinnedGgmlVersion, LlamaBackend.GgmlVersion);
        Assert.Contains(BackendDevice.All(), d => d.Type == GgmlBackendDeviceType.Cpu);
    }

    [Fact]
    public void A_library_of_another_version_is_refused_with_both_versions_named()
    {
        string dir = TestModels.TempPath("fake-llama");
        Directory.CreateDirectory(dir);
        string source = Path.Combine(dir, "fake.c");
        File.WriteAllText(source, "const char * ggml_version(void) { return \"0.0.1\"; }\n");
        using (Process cc = Process.Start("cc", ["-shared", "-fPIC", source, "-o", Path.Combine(dir, "libggml-base.so")]))
        {
            cc.WaitForExit();
            Assert.Equal(0, cc.ExitCode);
        }

        LlamaException ex = Assert.Throws<LlamaException>(() => NativeLibraryLoader.LoadCheckedGgmlBase(dir));
        Assert.Contains("0.0.1", ex.Message, StringComparison.Ordinal);
        Assert.Contains(NativeLibraryLoader.PinnedGgmlVersion, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Llama_cpp_logs_reach_the_logger()
    {
        var sink = new ListLoggerProvider();
        using (var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink)))
        {
            LlamaBackend.EnsureInitialized(factory);
            using LlamaModel model = LlamaModel.Load(TestModels.Small);
            LlamaBackend.EnsureInitialized(Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        }

        Assert.Contains(sink.Lines, l => l.Category == "LlmPq.Native.LlamaCpp" && l.Message.Contains("llama", StringComparison.Ordinal));
    }

    private static GenerationResult Generate(LlamaModel model, int[] prompt)
    {
        using var context = new LlamaContext(model, new LlamaContextOptions { ContextLength = 256, Threads = 2 });
        using var sampler = new LlamaSampler(model, new SamplingSettings());
        return SingleSequenceGenerator.Generate(context, sampler, prompt, maxTokens: 24);
    }
}
