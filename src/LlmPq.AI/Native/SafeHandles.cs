using System.Runtime.InteropServices;

namespace LlmPq.Native;

/// <summary>Owns a <c>llama_model*</c>.</summary>
internal sealed class LlamaModelHandle : SafeHandle
{
    public LlamaModelHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        LlamaNative.llama_model_free(handle);
        return true;
    }
}

/// <summary>Owns a <c>llama_context*</c>; keeps its model alive until the context is freed.</summary>
internal sealed class LlamaContextHandle : SafeHandle
{
    private LlamaModelHandle? _model;

    public LlamaContextHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Ties the model's lifetime to this context (a context must be freed before its model).</summary>
    public void Retain(LlamaModelHandle model)
    {
        bool added = false;
        model.DangerousAddRef(ref added);
        _model = model;
    }

    protected override bool ReleaseHandle()
    {
        LlamaNative.llama_free(handle);
        _model?.DangerousRelease();
        return true;
    }
}

/// <summary>Owns a <c>llama_sampler*</c> (a chain owns the samplers added to it).</summary>
internal sealed class LlamaSamplerHandle : SafeHandle
{
    public LlamaSamplerHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        LlamaNative.llama_sampler_free(handle);
        return true;
    }
}
