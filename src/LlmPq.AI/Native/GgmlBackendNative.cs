using System.Runtime.InteropServices;

namespace LlmPq.Native;

#pragma warning disable SA1300, CA1707, IDE1006 // names follow ggml-backend.h so the binding reads against the header

/// <summary>
/// Source-generated binding of the device and registry calls of <c>ggml-backend.h</c>. RPC servers are added
/// through the registry (<c>ggml_backend_rpc_add_server</c> is looked up on the "RPC" backend), so the binding
/// does not depend on how the RPC backend was linked.
/// </summary>
internal static unsafe partial class GgmlBackendNative
{
    /// <summary>The import name the resolver maps to <c>libggml.so</c> (the backend registry).</summary>
    public const string Library = "ggml";

    static GgmlBackendNative() => NativeLibraryLoader.Register();

    [LibraryImport(Library)] public static partial nuint ggml_backend_dev_count();
    [LibraryImport(Library)] public static partial IntPtr ggml_backend_dev_get(nuint index);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr ggml_backend_reg_by_name(string name);

    [LibraryImport(GgmlNative.Library)] public static partial byte* ggml_backend_dev_name(IntPtr device);
    [LibraryImport(GgmlNative.Library)] public static partial byte* ggml_backend_dev_description(IntPtr device);
    [LibraryImport(GgmlNative.Library)] public static partial void ggml_backend_dev_memory(IntPtr device, nuint* free, nuint* total);
    [LibraryImport(GgmlNative.Library)] public static partial GgmlBackendDeviceType ggml_backend_dev_type(IntPtr device);
    [LibraryImport(GgmlNative.Library)] public static partial nuint ggml_backend_reg_dev_count(IntPtr reg);
    [LibraryImport(GgmlNative.Library)] public static partial IntPtr ggml_backend_cpu_buffer_type();
    [LibraryImport(GgmlNative.Library)] public static partial IntPtr ggml_backend_reg_dev_get(IntPtr reg, nuint index);
    [LibraryImport(GgmlNative.Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr ggml_backend_reg_get_proc_address(IntPtr reg, string name);
}

/// <summary><c>enum ggml_backend_dev_type</c>.</summary>
internal enum GgmlBackendDeviceType
{
    Cpu = 0,
    Gpu = 1,
    IntegratedGpu = 2,
    Accelerator = 3,
    Meta = 4,
}
