// llmpq-chat: LlmPq's C ABI over llama.cpp's chat layer (common/chat.h), bound by src/LlmPq.AI/Native/LlmPqChatNative.cs.
//
// All strings are UTF-8. Requests and results are JSON; every char* returned is malloc'ed and freed with
// llmpq_chat_free. No C++ exception crosses this ABI: apply and parse return {"error": "<llama.cpp's message>"} on
// failure (an object with that single member; results never have it), init returns NULL and sets *error.
//
// llmpq_chat_apply request (OpenAI chat-completions shape; only "messages" is required):
//   {"messages": [{"role", "content": string|null|[{"type":"text","text"}], "tool_calls": [{"id", "type":"function",
//                  "function": {"name", "arguments": string|object}}], "tool_call_id", "name", "reasoning_content"}],
//    "tools": [{"type":"function", "function": {"name", "description", "parameters": <JSON schema>}}],
//    "tool_choice": "auto"|"none"|"required"|{"type":"function","function":{"name"}}   (default "auto"; a named
//                   function narrows the tools to it and requires a call),
//    "parallel_tool_calls": bool (default: what the template supports), "json_schema": <schema>, "grammar": string,
//    "enable_thinking": bool (true), "add_generation_prompt": bool (true),
//    "reasoning_format": "none"|"auto"|"deepseek"|"deepseek-legacy" (default "deepseek", as llama-server),
//    "chat_template_kwargs": {name: value}}
// result:
//   {"prompt", "format" (llama.cpp's format name), "grammar" ("" when none), "grammar_lazy",
//    "grammar_triggers": [{"type": "token"|"word"|"pattern"|"pattern_full", "value", "token"?}],
//    "trigger_patterns": [regex], "trigger_tokens": [id]   (as llama_sampler_init_grammar_lazy_patterns takes them),
//    "preserved_token_ids": [id], "grammar_prefill": [id]   (tokens a non-lazy grammar accepts before sampling),
//    "grammar_error" ("" when llama.cpp's grammar sampler builds and takes the prefill, else its message),
//    "preserved_tokens": [string], "additional_stops": [string], "generation_prompt",
//    "supports_thinking", "thinking_start_tag", "thinking_end_tags": [string],
//    "syntax": {opaque: pass it to llmpq_chat_parse unchanged}}
//
// llmpq_chat_parse result: {"content", "reasoning_content", "tool_calls": [{"name", "id", "arguments": JSON text}]}.
// A partial parse (is_partial != 0) accepts output cut anywhere; a final one fails on output the format cannot read.

#pragma once

#ifdef __cplusplus
extern "C" {
#endif

struct llama_model;

#define LLMPQ_CHAT_API __attribute__((visibility("default")))

// Loads the model's chat templates, or template_override (Jinja source) when not NULL; a model without a template
// gets ChatML. The model must outlive the result. On failure returns NULL and, when error is not NULL, sets *error
// to the message (free it with llmpq_chat_free).
LLMPQ_CHAT_API void * llmpq_chat_init(const struct llama_model * model, const char * template_override, char ** error);

LLMPQ_CHAT_API void llmpq_chat_release(void * templates);

// Renders a request: prompt, grammar, triggers, and the syntax for llmpq_chat_parse.
LLMPQ_CHAT_API char * llmpq_chat_apply(void * templates, const char * request_json);

// Splits model output (the text after the prompt) into content, reasoning and tool calls.
LLMPQ_CHAT_API char * llmpq_chat_parse(const char * text, int is_partial, const char * syntax_json);

LLMPQ_CHAT_API void llmpq_chat_free(char * text);

#ifdef __cplusplus
}
#endif
