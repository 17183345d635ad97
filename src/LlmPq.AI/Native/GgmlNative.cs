using System.Runtime.InteropServices;

namespace LlmPq.Native;

#pragma warning disable SA1300, CA1707, IDE1006 // names follow ggml.h so the binding reads against the header

/// <summary>Source-generated binding of the parts of <c>ggml.h</c> LlmPq uses: version and the quantization routines.</summary>
internal static unsafe partial class GgmlNative
{
    /// <summary>The import name the resolver maps to <c>libggml-base.so</c>.</summary>
    public const string Library = "ggml-base";

    static GgmlNative() => NativeLibraryLoader.Register();

    [LibraryImport(Library)] public static partial byte* ggml_version();
    [LibraryImport(Library)] public static partial byte* ggml_commit();
    [LibraryImport(Library)] public static partial GgmlTypeTraits* ggml_get_type_traits(int type);
    [LibraryImport(Library)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool ggml_quantize_requires_imatrix(int type);

    /// <summary>Quantizes <paramref name="nrows"/> rows of <paramref name="nPerRow"/> floats into <paramref name="dst"/>; returns the bytes written.</summary>
    [LibraryImport(Library)]
    public static partial nuint ggml_quantize_chunk(int type, float* src, void* dst, long start, long nrows, long nPerRow, float* imatrix);
}

/// <summary><c>struct ggml_type_traits</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct GgmlTypeTraits
{
    public byte* TypeName;
    public long BlckSize;
    public long BlckSizeInterleave;
    public nuint TypeSize;
    public byte IsQuantized;
    public delegate* unmanaged[Cdecl]<void*, float*, long, void> ToFloat;
    public IntPtr FromFloatRef;
}
