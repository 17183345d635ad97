using System.Runtime.InteropServices;

namespace LlmPq.Native;

#pragma warning disable SA1300, CA1707, IDE1006 // names follow llama.h so the binding reads against the header

/// <summary>Source-generated binding of the parts of <c>llama.h</c> LlmPq uses (pinned llama.cpp, see <see cref="NativeLibraryLoader"/>).</summary>
internal static unsafe partial class LlamaNative
{
    /// <summary>The import name the resolver maps to <c>libllama.so</c>.</summary>
    public const string Library = "llama";

    static LlamaNative() => NativeLibraryLoader.Register();

    // Backend and defaults.
    [LibraryImport(Library)] public static partial void llama_backend_init();
    [LibraryImport(Library)] public static partial LlamaModelParams llama_model_default_params();
    [LibraryImport(Library)] public static partial LlamaContextParams llama_context_default_params();
    [LibraryImport(Library)] public static partial LlamaSamplerChainParams llama_sampler_chain_default_params();
    [LibraryImport(Library)] public static partial LlamaModelQuantizeParams llama_model_quantize_default_params();
    [LibraryImport(Library)] public static partial nuint llama_max_devices();
    [LibraryImport(Library)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_supports_gpu_offload();
    [LibraryImport(Library)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_supports_rpc();
    [LibraryImport(Library)] public static partial byte* llama_print_system_info();
    [LibraryImport(Library)] public static partial void llama_log_set(delegate* unmanaged[Cdecl]<int, byte*, void*, void> callback, void* userData);

    // Model.
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial LlamaModelHandle llama_model_load_from_file(string path, LlamaModelParams parameters);
    [LibraryImport(Library)] public static partial void llama_model_free(IntPtr model);
    [LibraryImport(Library)] public static partial IntPtr llama_model_get_vocab(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_n_ctx_train(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_n_embd(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_n_layer(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_n_head(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_n_head_kv(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial ulong llama_model_size(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial ulong llama_model_n_params(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_desc(LlamaModelHandle model, byte* buf, nuint bufSize);
    [LibraryImport(Library)] public static partial int llama_model_meta_count(LlamaModelHandle model);
    [LibraryImport(Library)] public static partial int llama_model_meta_key_by_index(LlamaModelHandle model, int i, byte* buf, nuint bufSize);
    [LibraryImport(Library)] public static partial int llama_model_meta_val_str_by_index(LlamaModelHandle model, int i, byte* buf, nuint bufSize);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int llama_model_meta_val_str(LlamaModelHandle model, string key, byte* buf, nuint bufSize);
    [LibraryImport(Library)] public static partial byte* llama_model_chat_template(LlamaModelHandle model, byte* name);

    // Vocabulary (the vocab pointer lives as long as its model).
    [LibraryImport(Library)] public static partial int llama_vocab_n_tokens(IntPtr vocab);
    [LibraryImport(Library)] public static partial int llama_vocab_bos(IntPtr vocab);
    [LibraryImport(Library)] public static partial int llama_vocab_eos(IntPtr vocab);
    [LibraryImport(Library)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_vocab_is_eog(IntPtr vocab, int token);
    [LibraryImport(Library)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_vocab_get_add_bos(IntPtr vocab);
    [LibraryImport(Library)]
    public static partial int llama_tokenize(IntPtr vocab, byte* text, int textLen, int* tokens, int maxTokens, [MarshalAs(UnmanagedType.U1)] bool addSpecial, [MarshalAs(UnmanagedType.U1)] bool parseSpecial);
    [LibraryImport(Library)]
    public static partial int llama_token_to_piece(IntPtr vocab, int token, byte* buf, int length, int lstrip, [MarshalAs(UnmanagedType.U1)] bool special);
    [LibraryImport(Library)]
    public static partial int llama_detokenize(IntPtr vocab, int* tokens, int nTokens, byte* text, int textLenMax, [MarshalAs(UnmanagedType.U1)] bool removeSpecial, [MarshalAs(UnmanagedType.U1)] bool unparseSpecial);
    [LibraryImport(Library)]
    public static partial int llama_chat_apply_template(byte* template, LlamaChatMessage* chat, nuint nMsg, [MarshalAs(UnmanagedType.U1)] bool addAssistant, byte* buf, int length);

    // Context.
    [LibraryImport(Library)] public static partial LlamaContextHandle llama_init_from_model(LlamaModelHandle model, LlamaContextParams parameters);
    [LibraryImport(Library)] public static partial void llama_free(IntPtr context);
    [LibraryImport(Library)] public static partial uint llama_n_ctx(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial uint llama_n_ctx_seq(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial uint llama_n_batch(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial uint llama_n_ubatch(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial uint llama_n_seq_max(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial int llama_decode(LlamaContextHandle context, LlamaBatch batch);
    [LibraryImport(Library)] public static partial float* llama_get_logits_ith(LlamaContextHandle context, int i);
    [LibraryImport(Library)] public static partial void llama_set_n_threads(LlamaContextHandle context, int nThreads, int nThreadsBatch);
    [LibraryImport(Library)] public static partial void llama_synchronize(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial LlamaPerfContextData llama_perf_context(LlamaContextHandle context);

    // Batch.
    [LibraryImport(Library)] public static partial LlamaBatch llama_batch_init(int nTokens, int embd, int nSeqMax);
    [LibraryImport(Library)] public static partial void llama_batch_free(LlamaBatch batch);

    // Memory (KV cache) of a context.
    [LibraryImport(Library)] public static partial IntPtr llama_get_memory(LlamaContextHandle context);
    [LibraryImport(Library)] public static partial void llama_memory_clear(IntPtr memory, [MarshalAs(UnmanagedType.U1)] bool data);
    [LibraryImport(Library)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_memory_seq_rm(IntPtr memory, int seqId, int p0, int p1);
    [LibraryImport(Library)] public static partial void llama_memory_seq_cp(IntPtr memory, int seqIdSrc, int seqIdDst, int p0, int p1);
    [LibraryImport(Library)] public static partial void llama_memory_seq_keep(IntPtr memory, int seqId);
    [LibraryImport(Library)] public static partial int llama_memory_seq_pos_min(IntPtr memory, int seqId);
    [LibraryImport(Library)] public static partial int llama_memory_seq_pos_max(IntPtr memory, int seqId);

    // Samplers.
    [LibraryImport(Library)] public static partial LlamaSamplerHandle llama_sampler_chain_init(LlamaSamplerChainParams parameters);
    [LibraryImport(Library)] public static partial void llama_sampler_chain_add(LlamaSamplerHandle chain, IntPtr sampler);
    [LibraryImport(Library)] public static partial void llama_sampler_free(IntPtr sampler);
    [LibraryImport(Library)] public static partial void llama_sampler_accept(LlamaSamplerHandle sampler, int token);
    [LibraryImport(Library)] public static partial int llama_sampler_sample(LlamaSamplerHandle sampler, LlamaContextHandle context, int idx);
    [LibraryImport(Library)] public static partial void llama_sampler_apply(LlamaSamplerHandle sampler, LlamaTokenDataArray* candidates);
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_greedy();
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_dist(uint seed);
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_top_k(int k);
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_top_p(float p, nuint minKeep);
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_min_p(float p, nuint minKeep);
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_temp(float t);
    [LibraryImport(Library)] public static partial IntPtr llama_sampler_init_penalties(int lastN, float repeat, float frequency, float presence);
    [LibraryImport(Library, EntryPoint = "llama_sampler_init_grammar", StringMarshalling = StringMarshalling.Utf8)]
    public static partial LlamaSamplerHandle llama_sampler_init_grammar_handle(IntPtr vocab, string grammar, string root);
    [LibraryImport(Library, EntryPoint = "llama_sampler_init_grammar_lazy_patterns", StringMarshalling = StringMarshalling.Utf8)]
    public static partial LlamaSamplerHandle llama_sampler_init_grammar_lazy_patterns_handle(IntPtr vocab, string grammar, string root, IntPtr* triggerPatterns, nuint numTriggerPatterns, int* triggerTokens, nuint numTriggerTokens);

    // Quantization.
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint llama_model_quantize(string input, string output, LlamaModelQuantizeParams* parameters);
}

/// <summary><c>enum llama_split_mode</c>.</summary>
internal enum LlamaSplitMode
{
    None = 0,
    Layer = 1,
    Row = 2,
    Tensor = 3,
}

// The structs mirror llama.h field by field (C bool as byte, pointers as nint); a test compiles a probe
// against the pinned header and compares every offset and size.

/// <summary><c>struct llama_model_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaModelParams
{
    public IntPtr Devices;
    public IntPtr TensorBuftOverrides;
    public int NGpuLayers;
    public LlamaSplitMode SplitMode;
    public int LoadMode;
    public int LazyMode;
    public int MainGpu;
    public IntPtr TensorSplit;
    public IntPtr ProgressCallback;
    public IntPtr ProgressCallbackUserData;
    public IntPtr KvOverrides;
    public byte VocabOnly;
    public byte CheckTensors;
    public byte UseExtraBufts;
    public byte NoHost;
    public byte NoAlloc;
    public byte LoadMtp;
}

/// <summary><c>struct llama_context_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaContextParams
{
    public uint NCtx;
    public uint NBatch;
    public uint NUbatch;
    public uint NSeqMax;
    public uint NRsSeq;
    public uint NOutputsMax;
    public uint NOutputsMaxPerSeq;
    public int NThreads;
    public int NThreadsBatch;
    public int CtxType;
    public int RopeScalingType;
    public int PoolingType;
    public int AttentionType;
    public int FlashAttnType;
    public float RopeFreqBase;
    public float RopeFreqScale;
    public float YarnExtFactor;
    public float YarnAttnFactor;
    public float YarnBetaFast;
    public float YarnBetaSlow;
    public uint YarnOrigCtx;
    public float DefragThold;
    public IntPtr CbEval;
    public IntPtr CbEvalUserData;
    public int TypeK;
    public int TypeV;
    public IntPtr AbortCallback;
    public IntPtr AbortCallbackData;
    public byte Embeddings;
    public byte OffloadKqv;
    public byte NoPerf;
    public byte OpOffload;
    public byte SwaFull;
    public byte KvUnified;
    public IntPtr Samplers;
    public nuint NSamplers;
    public IntPtr CtxOther;
}

/// <summary><c>struct llama_batch</c>; its arrays are owned by llama.cpp (<c>llama_batch_init</c>/<c>llama_batch_free</c>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LlamaBatch
{
    public int NTokens;
    public int* Token;
    public float* Embd;
    public int* Pos;
    public int* NSeqId;
    public int** SeqId;
    public sbyte* Logits;
}

/// <summary><c>struct llama_model_quantize_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaModelQuantizeParams
{
    public int Nthread;
    public int Ftype;
    public int OutputTensorType;
    public int TokenEmbeddingType;
    public byte AllowRequantize;
    public byte QuantizeOutputTensor;
    public byte OnlyCopy;
    public byte Pure;
    public byte KeepSplit;
    public byte DryRun;
    public IntPtr Imatrix;
    public IntPtr KvOverrides;
    public IntPtr TtOverrides;
    public IntPtr PruneLayers;
    public nuint MaxBufSize;
}

/// <summary><c>struct llama_model_tensor_buft_override</c>: a tensor-name regex and the buffer type its tensors go to.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaModelTensorBuftOverride
{
    public IntPtr Pattern;
    public IntPtr Buft;
}

/// <summary><c>struct llama_model_tensor_override</c>: a tensor-name regex and the type it gets.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaModelTensorOverride
{
    public IntPtr Pattern;
    public int Type;
}

/// <summary><c>struct llama_sampler_chain_params</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaSamplerChainParams
{
    public byte NoPerf;
}

/// <summary><c>struct llama_chat_message</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaChatMessage
{
    public IntPtr Role;
    public IntPtr Content;
}

/// <summary><c>struct llama_token_data</c>: a candidate token with its logit and probability.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaTokenData
{
    public int Id;
    public float Logit;
    public float P;
}

/// <summary><c>struct llama_token_data_array</c>: the candidates a sampler works on.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LlamaTokenDataArray
{
    public LlamaTokenData* Data;
    public nuint Size;
    public long Selected;
    public byte Sorted;
}

/// <summary><c>struct llama_perf_context_data</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaPerfContextData
{
    public double TStartMs;
    public double TLoadMs;
    public double TPEvalMs;
    public double TEvalMs;
    public int NPEval;
    public int NEval;
    public int NReused;
}
