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

/// <summary>A handle to something that reads its model until freed, so it keeps the model alive until then.</summary>
internal abstract class ModelBoundHandle : SafeHandle
{
    private LlamaModelHandle? _model;

    protected ModelBoundHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Ties the model's lifetime to this handle (the handle must be freed before its model).</summary>
    public void Retain(LlamaModelHandle model)
    {
        bool added = false;
        model.DangerousAddRef(ref added);
        _model = model;
    }

    /// <summary>Frees the native object; the model is released after it.</summary>
    protected abstract void Free(IntPtr native);

    protected override bool ReleaseHandle()
    {
        Free(handle);
        _model?.DangerousRelease();
        return true;
    }
}

/// <summary>Owns a <c>llama_context*</c>; keeps its model alive until the context is freed.</summary>
internal sealed class LlamaContextHandle : ModelBoundHandle
{
    protected override void Free(IntPtr native) => LlamaNative.llama_free(native);
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

/// <summary>Owns the chat templates <c>llmpq_chat_init</c> made; keeps their model alive, as they read its vocabulary.</summary>
internal sealed class ChatTemplatesHandle : ModelBoundHandle
{
    protected override void Free(IntPtr native) => LlmPqChatNative.llmpq_chat_release(native);
}
