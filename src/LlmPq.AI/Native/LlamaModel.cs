using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;

namespace LlmPq.Native;

/// <summary>How to load a model: which devices, how many layers on them, and how layers split across them.</summary>
internal sealed record LlamaModelLoadOptions
{
    /// <summary>Gets the layers to offload to the devices; -1 offloads all (the default), 0 keeps everything on the CPU.</summary>
    public int GpuLayers { get; init; } = -1;

    /// <summary>Gets the devices, in pipeline order; empty means every device llama.cpp finds.</summary>
    public IReadOnlyList<BackendDevice> Devices { get; init; } = [];

    /// <summary>Gets how layers are split across the devices.</summary>
    public LlamaSplitMode SplitMode { get; init; } = LlamaSplitMode.Layer;

    /// <summary>Gets each device's share of the layers (llama.cpp's <c>tensor_split</c>); empty means by free memory.</summary>
    public IReadOnlyList<float> TensorSplit { get; init; } = [];

    /// <summary>Gets a value indicating whether only the vocabulary is loaded (no weights).</summary>
    public bool VocabularyOnly { get; init; }

    /// <summary>
    /// Gets a value indicating whether llama.cpp may pipeline micro-batches across several devices (its default). It
    /// has no switch for it; it turns it off for a model with tensor-buffer overrides, so false passes one that
    /// matches no tensor.
    /// </summary>
    public bool PipelineParallelism { get; init; } = true;
}

/// <summary>A loaded llama.cpp model and its vocabulary. Thread-safe for reads; contexts are created from it.</summary>
internal sealed unsafe class LlamaModel : IDisposable
{
    private readonly IntPtr _vocab;

    private LlamaModel(LlamaModelHandle handle, string path)
    {
        Handle = handle;
        Path = path;
        _vocab = LlamaNative.llama_model_get_vocab(handle);
        LayerCount = LlamaNative.llama_model_n_layer(handle);
        EmbeddingLength = LlamaNative.llama_model_n_embd(handle);
        TrainingContextLength = LlamaNative.llama_model_n_ctx_train(handle);
        VocabularySize = LlamaNative.llama_vocab_n_tokens(_vocab);
        BosToken = LlamaNative.llama_vocab_bos(_vocab);
        EosToken = LlamaNative.llama_vocab_eos(_vocab);
        AddBos = LlamaNative.llama_vocab_get_add_bos(_vocab);
    }

    /// <summary>Gets the native handle.</summary>
    public LlamaModelHandle Handle { get; }

    /// <summary>Gets the file the model came from.</summary>
    public string Path { get; }

    /// <summary>Gets the number of repeating layers.</summary>
    public int LayerCount { get; }

    /// <summary>Gets the embedding width.</summary>
    public int EmbeddingLength { get; }

    /// <summary>Gets the context length the model was trained with.</summary>
    public int TrainingContextLength { get; }

    /// <summary>Gets the number of tokens in the vocabulary.</summary>
    public int VocabularySize { get; }

    /// <summary>Gets the beginning-of-sequence token.</summary>
    public int BosToken { get; }

    /// <summary>Gets the end-of-sequence token.</summary>
    public int EosToken { get; }

    /// <summary>Gets a value indicating whether the tokenizer adds BOS at the start of a text.</summary>
    public bool AddBos { get; }

    /// <summary>Gets the model's size in bytes as llama.cpp counts it.</summary>
    public ulong SizeBytes => LlamaNative.llama_model_size(Handle);

    /// <summary>Gets the parameter count.</summary>
    public ulong ParameterCount => LlamaNative.llama_model_n_params(Handle);

    /// <summary>Gets llama.cpp's one-line description (architecture, size, type).</summary>
    public string Description
    {
        get
        {
            byte* buf = stackalloc byte[256];
            int n = LlamaNative.llama_model_desc(Handle, buf, 256);
            return n > 0 ? Encoding.UTF8.GetString(buf, Math.Min(n, 255)) : string.Empty;
        }
    }

    /// <summary>Gets the model's default chat template, or null when it has none.</summary>
    public string? ChatTemplate => Marshal.PtrToStringUTF8((IntPtr)LlamaNative.llama_model_chat_template(Handle, null));

    /// <summary>Loads a GGUF model; a file llama.cpp refuses gives a <see cref="LlamaException"/> with llama.cpp's reason.</summary>
    public static LlamaModel Load(string path, LlamaModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Model file '{full}' does not exist.", full);
        }

        options ??= new LlamaModelLoadOptions();
        LlamaBackend.EnsureInitialized();
        LlamaModelParams p = LlamaNative.llama_model_default_params();
        p.NGpuLayers = options.GpuLayers;
        p.SplitMode = options.SplitMode;
        p.VocabOnly = options.VocabularyOnly ? (byte)1 : (byte)0;

        // llama.cpp copies both lists during the load; they only need to outlive the call.
        IntPtr[] devices = [.. options.Devices.Select(d => d.Pointer), IntPtr.Zero];
        float[] split = new float[Math.Max((int)LlamaNative.llama_max_devices(), options.TensorSplit.Count)];
        for (int i = 0; i < options.TensorSplit.Count; i++)
        {
            split[i] = options.TensorSplit[i];
        }

        IntPtr noTensor = options.PipelineParallelism ? IntPtr.Zero : Marshal.StringToCoTaskMemUTF8("^llmpq-matches-no-tensor$");
        LlamaModelTensorBuftOverride[] overrides =
            [new() { Pattern = noTensor, Buft = options.PipelineParallelism ? IntPtr.Zero : GgmlBackendNative.ggml_backend_cpu_buffer_type() }, default];
        using LlamaBackend.ErrorCapture errors = LlamaBackend.CaptureErrors();
        try
        {
            fixed (IntPtr* devicePtr = devices)
            fixed (float* splitPtr = split)
            fixed (LlamaModelTensorBuftOverride* overridePtr = overrides)
            {
                if (!options.PipelineParallelism)
                {
                    p.TensorBuftOverrides = (IntPtr)overridePtr;
                }

                if (options.Devices.Count > 0)
                {
                    p.Devices = (IntPtr)devicePtr;
                }

                if (options.TensorSplit.Count > 0)
                {
                    p.TensorSplit = (IntPtr)splitPtr;
                }

                LlamaModelHandle handle = LlamaNative.llama_model_load_from_file(full, p);
                if (handle.IsInvalid)
                {
                    handle.Dispose();
                    throw new LlamaException($"llama.cpp could not load the model '{full}': {errors.Summary}");
                }

                return new LlamaModel(handle, full);
            }
        }
        finally
        {
            Marshal.FreeCoTaskMem(noTensor);
        }
    }

    /// <summary>Gets a metadata value as text, or null when the key is absent.</summary>
    public string? GetMetadata(string key)
    {
        int n = LlamaNative.llama_model_meta_val_str(Handle, key, null, 0);
        if (n < 0)
        {
            return null;
        }

        byte[] buf = new byte[n + 1];
        fixed (byte* b = buf)
        {
            LlamaNative.llama_model_meta_val_str(Handle, key, b, (nuint)buf.Length);
        }

        return Encoding.UTF8.GetString(buf, 0, n);
    }

    /// <summary>Converts text to tokens.</summary>
    /// <param name="text">The text.</param>
    /// <param name="addSpecial">Whether to add BOS/EOS as the model's tokenizer asks.</param>
    /// <param name="parseSpecial">Whether control-token text (such as <c>&lt;|im_start|&gt;</c>) becomes the control token.</param>
    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        using HandleLease lease = Lease();
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        int capacity = utf8.Length + 8;
        while (true)
        {
            int[] tokens = new int[capacity];
            int n;
            fixed (byte* t = utf8)
            fixed (int* tok = tokens)
            {
                n = LlamaNative.llama_tokenize(_vocab, t, utf8.Length, tok, capacity, addSpecial, parseSpecial);
            }

            if (n >= 0)
            {
                return n == capacity ? tokens : tokens[..n];
            }

            if (n == int.MinValue)
            {
                throw new LlamaException("llama.cpp could not tokenize the text: it is longer than the tokenizer accepts.");
            }

            capacity = -n; // a negative result is the size needed
        }
    }

    /// <summary>Appends the UTF-8 bytes of one token to <paramref name="destination"/>; the bytes may end mid-character.</summary>
    public void AppendPiece(int token, ArrayBufferWriter<byte> destination, bool special = false)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using HandleLease lease = Lease();
        Span<byte> span = destination.GetSpan(64);
        int n;
        fixed (byte* b = span)
        {
            n = LlamaNative.llama_token_to_piece(_vocab, token, b, span.Length, 0, special);
        }

        if (n < 0)
        {
            span = destination.GetSpan(-n);
            fixed (byte* b = span)
            {
                n = LlamaNative.llama_token_to_piece(_vocab, token, b, span.Length, 0, special);
            }
        }

        destination.Advance(Math.Max(n, 0));
    }

    /// <summary>Converts tokens back to text.</summary>
    public string Detokenize(ReadOnlySpan<int> tokens, bool removeSpecial = false, bool unparseSpecial = false)
    {
        using HandleLease lease = Lease();
        int capacity = (tokens.Length * 8) + 16;
        while (true)
        {
            byte[] buf = ArrayPool<byte>.Shared.Rent(capacity);
            try
            {
                int n;
                fixed (int* t = tokens)
                fixed (byte* b = buf)
                {
                    n = LlamaNative.llama_detokenize(_vocab, t, tokens.Length, b, buf.Length, removeSpecial, unparseSpecial);
                }

                if (n >= 0)
                {
                    return Encoding.UTF8.GetString(buf, 0, n);
                }

                capacity = -n;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buf);
            }
        }
    }

    /// <summary>Gets a value indicating whether the token ends a generation (EOS, EOT, …).</summary>
    public bool IsEndOfGeneration(int token)
    {
        using HandleLease lease = Lease();
        return LlamaNative.llama_vocab_is_eog(_vocab, token);
    }

    /// <summary>
    /// Formats messages with a chat template (the model's own when <paramref name="template"/> is null).
    /// Returns null when llama.cpp does not recognize the template.
    /// </summary>
    public string? ApplyChatTemplate(IReadOnlyList<(string Role, string Content)> messages, bool addAssistantPrefix, string? template = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        template ??= ChatTemplate;
        if (template is null)
        {
            return null;
        }

        var pinned = new List<GCHandle>(messages.Count * 2 + 1);
        try
        {
            IntPtr Utf8(string s)
            {
                byte[] bytes = Encoding.UTF8.GetBytes(s + '\0');
                GCHandle h = GCHandle.Alloc(bytes, GCHandleType.Pinned);
                pinned.Add(h);
                return h.AddrOfPinnedObject();
            }

            var chat = new LlamaChatMessage[messages.Count];
            int total = 0;
            for (int i = 0; i < messages.Count; i++)
            {
                chat[i] = new LlamaChatMessage { Role = Utf8(messages[i].Role), Content = Utf8(messages[i].Content) };
                total += messages[i].Content.Length + messages[i].Role.Length;
            }

            byte* tmpl = (byte*)Utf8(template);
            int capacity = (total * 2) + 256;
            while (true)
            {
                byte[] buf = new byte[capacity];
                int n;
                fixed (LlamaChatMessage* c = chat)
                fixed (byte* b = buf)
                {
                    n = LlamaNative.llama_chat_apply_template(tmpl, c, (nuint)chat.Length, addAssistantPrefix, b, buf.Length);
                }

                if (n < 0)
                {
                    return null;
                }

                if (n <= capacity)
                {
                    return Encoding.UTF8.GetString(buf, 0, n);
                }

                capacity = n;
            }
        }
        finally
        {
            foreach (GCHandle h in pinned)
            {
                h.Free();
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => Handle.Dispose();

    // Vocabulary calls take a raw pointer the marshaller does not guard; holding a reference on the handle keeps
    // a concurrent Dispose from freeing the model under them (it then fails with ObjectDisposedException instead).
    private HandleLease Lease() => new(Handle);

    private readonly struct HandleLease : IDisposable
    {
        private readonly SafeHandle _handle;

        public HandleLease(SafeHandle handle)
        {
            bool added = false;
            handle.DangerousAddRef(ref added);
            _handle = handle;
        }

        public void Dispose() => _handle.DangerousRelease();
    }
}
