using System.Runtime.InteropServices;

namespace LlmPq.Native;

#pragma warning disable SA1300, CA1707, IDE1006 // names follow stdlib.h

/// <summary>The one libc call LlmPq needs: <c>setenv</c>, because .NET's environment changes never reach native <c>getenv</c>.</summary>
internal static partial class LibcNative
{
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int setenv(string name, string value, int overwrite);
}
