using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using LlmPq.Native;

namespace LlmPq.Tests.Native;

/// <summary>
/// Compiles layout_probe.c against the headers of the llama.cpp build in use and checks that every mirrored
/// struct has the same size, field order, field offsets and field sizes as C sees them.
/// </summary>
public sealed class StructLayoutTests
{
    private static readonly Dictionary<string, Type> s_mirrors = new()
    {
        ["llama_model_params"] = typeof(LlamaModelParams),
        ["llama_context_params"] = typeof(LlamaContextParams),
        ["llama_batch"] = typeof(LlamaBatch),
        ["llama_model_quantize_params"] = typeof(LlamaModelQuantizeParams),
        ["llama_model_tensor_override"] = typeof(LlamaModelTensorOverride),
        ["llama_sampler_chain_params"] = typeof(LlamaSamplerChainParams),
        ["llama_chat_message"] = typeof(LlamaChatMessage),
        ["llama_perf_context_data"] = typeof(LlamaPerfContextData),
        ["ggml_type_traits"] = typeof(GgmlTypeTraits),
        ["llama_token_data"] = typeof(LlamaTokenData),
        ["llama_token_data_array"] = typeof(LlamaTokenDataArray),
    };

    private static readonly Lazy<Dictionary<string, (long Offset, long Size)>> s_probe = new(RunProbe);

    public static TheoryData<string> Structs() => [.. s_mirrors.Keys];

    [Theory]
    [MemberData(nameof(Structs))]
    public void Struct_matches_the_pinned_header(string cName)
    {
        Dictionary<string, (long Offset, long Size)> probe = s_probe.Value;
        Type mirror = s_mirrors[cName];
        Assert.True(probe.ContainsKey(cName), $"the probe printed nothing for {cName}");
        Assert.Equal(probe[cName].Offset, Marshal.SizeOf(mirror));

        string[] cFields = [.. probe.Keys.Where(k => k.StartsWith(cName + ".", StringComparison.Ordinal))];
        FieldInfo[] fields = mirror.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        Assert.Equal(cFields.Length, fields.Length);
        for (int i = 0; i < fields.Length; i++)
        {
            string cField = cFields[i][(cName.Length + 1)..];
            Assert.Equal(cField.Replace("_", string.Empty, StringComparison.Ordinal), fields[i].Name, ignoreCase: true);
            (long offset, long size) = probe[cFields[i]];
            Assert.True(offset == (long)Marshal.OffsetOf(mirror, fields[i].Name), $"{cName}.{cField}: C offset {offset}, C# offset {Marshal.OffsetOf(mirror, fields[i].Name)}");
            Assert.True(size == SizeOf(fields[i].FieldType), $"{cName}.{cField}: C size {size}, C# size {SizeOf(fields[i].FieldType)}");
        }
    }

    private static long SizeOf(Type t) =>
        t.IsPointer || t.IsFunctionPointer || t == typeof(IntPtr) || t == typeof(UIntPtr) ? IntPtr.Size
        : t.IsEnum ? Marshal.SizeOf(Enum.GetUnderlyingType(t))
        : Marshal.SizeOf(t);

    private static Dictionary<string, (long Offset, long Size)> RunProbe()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "Native", "layout_probe.c");
        string exe = Path.Combine(Path.GetTempPath(), $"llmpq-layout-probe-{Environment.ProcessId}");
        string include = Path.Combine(NativeLibraryLoader.Directory, "include");
        Run("cc", ["-I", include, source, "-o", exe]);
        try
        {
            var result = new Dictionary<string, (long, long)>();
            foreach (string line in Run(exe, []).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                string[] parts = line.Split(' ');
                result[parts[0]] = (long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), parts.Length > 2 ? long.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture) : 0);
            }

            return result;
        }
        finally
        {
            File.Delete(exe);
        }
    }

    private static string Run(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} failed ({p.ExitCode}): {stderr}");
        return stdout;
    }
}
