// llmpq-chat: a C ABI over llama.cpp's chat layer (common/chat.h); the ABI and its JSON shapes are in llmpq-chat.h.
// JSON keeps the binding free of C++ types and stable while chat.h changes between llama.cpp versions.
// Built by eng/native/build-chat.sh against the llama.cpp build's libllama-common.so.

#include "llmpq-chat.h"

#include "chat.h"
#include "common.h"
#include "llama.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

struct llmpq_chat_templates {
    const llama_model *       model;  // for tokenizing triggers and the grammar prefill, as llama-server does
    common_chat_templates_ptr templates;
};

char * dup(const std::string & s) {
    char * out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out != nullptr) {
        std::memcpy(out, s.c_str(), s.size() + 1);
    }
    return out;
}

char * error_json(const char * message) {
    try {
        return dup(common_json::object({ { "error", message } }).dump_safe());
    } catch (...) {
        return dup("{\"error\":\"llmpq-chat: out of memory\"}");
    }
}

const char * trigger_type_name(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:        return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:         return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:      return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
    }
    return "unknown";
}

// A named tool choice ({"type":"function","function":{"name":...}}) is not in chat.h (llama-server refuses it): it
// becomes "required" over that one tool, which forces a call of it through the same grammar.
void apply_tool_choice(const common_json & request, common_chat_templates_inputs & inputs) {
    if (!request.contains("tool_choice") || request.at("tool_choice").is_null()) {
        return;
    }
    const common_json & choice = request.at("tool_choice");
    if (choice.is_string()) {
        inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(choice.get<std::string>());
        return;
    }
    const std::string name = choice.at("function").at("name").get<std::string>();
    std::vector<common_chat_tool> named;
    for (const auto & tool : inputs.tools) {
        if (tool.name == name) {
            named.push_back(tool);
        }
    }
    if (named.empty()) {
        throw std::invalid_argument("tool_choice names the function '" + name + "', which is not among the tools");
    }
    inputs.tools       = std::move(named);
    inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED;
}

common_chat_templates_inputs parse_request(const common_chat_templates * tmpls, const common_json & request) {
    common_chat_templates_inputs inputs;
    inputs.messages = common_chat_msgs_parse_oaicompat(request.at("messages"));
    inputs.tools    = common_chat_tools_parse_oaicompat(request.value("tools", common_json()));
    apply_tool_choice(request, inputs);
    if (request.contains("json_schema") && !request.at("json_schema").is_null()) {
        inputs.json_schema = request.at("json_schema").dump();
    }
    inputs.grammar = request.value("grammar", std::string());
    // llama-server's defaults: parallel calls when the template can render them, reasoning extracted "deepseek"-style
    inputs.parallel_tool_calls =
        request.value("parallel_tool_calls", common_chat_templates_get_caps(tmpls)["supports_parallel_tool_calls"]);
    inputs.add_generation_prompt = request.value("add_generation_prompt", true);
    inputs.enable_thinking       = request.value("enable_thinking", true);
    inputs.reasoning_format = common_reasoning_format_from_name(request.value("reasoning_format", std::string("deepseek")));
    if (request.contains("chat_template_kwargs")) {
        for (const auto & [key, value] : request.at("chat_template_kwargs").items()) {
            inputs.chat_template_kwargs[key] = value.dump();
        }
    }
    return inputs;
}

// Trigger words that are one preserved token become token triggers, as llama-server does (server-schema.cpp); the
// patterns and tokens are then what llama_sampler_init_grammar_lazy_patterns takes, as common/sampling.cpp builds them.
void add_triggers(const llama_vocab * vocab, const common_chat_params & params, common_json & out) {
    std::vector<llama_token> preserved;
    for (const auto & word : params.preserved_tokens) {
        auto ids = common_tokenize(vocab, word, false, true);
        if (ids.size() == 1) {
            preserved.push_back(ids[0]);
        }
    }
    common_json triggers = common_json::array();
    common_json patterns = common_json::array();
    common_json tokens   = common_json::array();
    for (auto trigger : params.grammar_triggers) {
        if (trigger.type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD) {
            auto ids = common_tokenize(vocab, trigger.value, false, true);
            if (ids.size() == 1 && std::find(preserved.begin(), preserved.end(), ids[0]) != preserved.end()) {
                trigger.type  = COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN;
                trigger.token = ids[0];
            }
        }
        common_json item = common_json::object({ { "type", trigger_type_name(trigger.type) }, { "value", trigger.value } });
        switch (trigger.type) {
            case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
                item["token"] = trigger.token;
                tokens.push_back(trigger.token);
                break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
                patterns.push_back(regex_escape(trigger.value));
                break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
                patterns.push_back(trigger.value);
                break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL:
                {
                    const auto & p = trigger.value;
                    patterns.push_back(p.empty() ? std::string("^$") :
                                                   (p.front() != '^' ? "^" : "") + p + (p.back() != '$' ? "$" : ""));
                }
                break;
        }
        triggers.push_back(item);
    }
    out["grammar_triggers"] = triggers;
    out["trigger_patterns"] = patterns;
    out["trigger_tokens"]   = tokens;
    out["preserved_token_ids"] = preserved;
}

// A token spelling exactly `text`, or LLAMA_TOKEN_NULL. Tokenizing the text would not do: the tokenizer may prefix it
// with a space again.
llama_token token_spelling(const llama_vocab * vocab, const std::string & text) {
    const int32_t n = llama_vocab_n_tokens(vocab);
    for (llama_token token = 0; token < n; token++) {
        if (common_token_to_piece(vocab, token, true) == text) {
            return token;
        }
    }
    return LLAMA_TOKEN_NULL;
}

// The tokens a non-lazy tool or schema grammar must accept before sampling: its root starts with the generation
// prompt, which the template already put at the end of the prompt (these tokens only advance the grammar; the model
// read the prompt's own). common/sampling.cpp tokenizes the generation prompt and drops a first token the tokenizer
// prefixed with a space. With a SentencePiece vocabulary that adds a space prefix and has no special token for the
// prompt's opening (the generated tiny models: "<|im_start|>" is no token there) that drops the '<' of "▁<", the
// grammar then rejects '|', and llama-server answers "Failed to initialize samplers". Here that first token is
// replaced by one spelling the same text without the space, so the grammar gets the whole generation prompt.
std::vector<llama_token> grammar_prefill(const llama_vocab * vocab, const std::string & generation_prompt) {
    std::vector<llama_token> out;
    if (generation_prompt.empty()) {
        return out;
    }
    auto tokens = common_tokenize(vocab, generation_prompt, false, true);
    for (size_t i = 0; i < tokens.size(); i++) {
        std::string piece = common_token_to_piece(vocab, tokens[i], true);
        if (i == 0 && !piece.empty() && std::isspace((unsigned char) piece[0]) &&
            !std::isspace((unsigned char) generation_prompt[0])) {
            llama_token unspaced = token_spelling(vocab, piece.substr(1));
            if (unspaced != LLAMA_TOKEN_NULL) {
                out.push_back(unspaced);
            }
            continue;
        }
        out.push_back(tokens[i]);
    }
    return out;
}

// Builds the grammar sampler as a caller would (lazy with the triggers, or strict and fed the prefill) and returns
// llama.cpp's complaint, or an empty string when it works. A rejected token throws out of llama_sampler_accept, which
// must never reach managed code, so the check runs here, where the exception can be caught.
std::string check_grammar(const llama_vocab * vocab, const common_chat_params & params, const common_json & out) {
    if (params.grammar.empty()) {
        return "";
    }
    std::vector<std::string>  patterns;
    std::vector<const char *> pattern_ptrs;
    std::vector<llama_token>  tokens;
    for (const auto & p : out.at("trigger_patterns")) {
        patterns.push_back(p.get<std::string>());
    }
    for (const auto & p : patterns) {
        pattern_ptrs.push_back(p.c_str());
    }
    for (const auto & t : out.at("trigger_tokens")) {
        tokens.push_back(t.get<int>());
    }
    llama_sampler * grammar = params.grammar_lazy ?
        llama_sampler_init_grammar_lazy_patterns(vocab, params.grammar.c_str(), "root", pattern_ptrs.data(),
                                                 pattern_ptrs.size(), tokens.data(), tokens.size()) :
        llama_sampler_init_grammar(vocab, params.grammar.c_str(), "root");
    if (grammar == nullptr) {
        return "llama.cpp could not parse the grammar (its log says where)";
    }
    std::string error;
    try {
        for (const auto & token : out.at("grammar_prefill")) {
            llama_sampler_accept(grammar, token.get<int>());
        }
    } catch (const std::exception & e) {
        error = std::string("the grammar rejects the generation prompt: ") + e.what();
    }
    llama_sampler_free(grammar);
    return error;
}

common_json apply(const llmpq_chat_templates & handle, const common_json & request) {
    const auto inputs = parse_request(handle.templates.get(), request);
    const auto params = common_chat_templates_apply(handle.templates.get(), inputs);
    const common_chat_parser_params parser_params(params);
    const llama_vocab * vocab = llama_model_get_vocab(handle.model);

    common_json out = common_json::object();
    out["prompt"]            = params.prompt;
    out["format"]            = common_chat_format_name(params.format);
    out["grammar"]           = params.grammar;
    out["grammar_lazy"]      = params.grammar_lazy;
    add_triggers(vocab, params, out);
    out["grammar_prefill"]   = params.grammar.empty() || params.grammar_lazy ?
                                   std::vector<llama_token>() :
                                   grammar_prefill(vocab, params.generation_prompt);
    out["grammar_error"]     = check_grammar(vocab, params, out);
    out["preserved_tokens"]  = params.preserved_tokens;
    out["additional_stops"]  = params.additional_stops;
    out["generation_prompt"] = params.generation_prompt;
    out["supports_thinking"] = params.supports_thinking;
    out["thinking_start_tag"] = params.thinking_start_tag;
    out["thinking_end_tags"]  = params.thinking_end_tags;
    // What llmpq_chat_parse needs, as llama-server carries it from the request to its parser (server-schema.cpp).
    out["syntax"] = common_json::object({
        { "format", (int) parser_params.format },
        { "reasoning_format", common_reasoning_format_name(inputs.reasoning_format) },
        { "generation_prompt", parser_params.generation_prompt },
        { "parse_tool_calls", !inputs.tools.empty() && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE },
        { "parser", params.parser },
    });
    return out;
}

common_json parse(const std::string & text, bool is_partial, const common_json & syntax) {
    common_chat_parser_params params;
    params.format           = static_cast<common_chat_format>(syntax.at("format").get<int>());
    params.reasoning_format = common_reasoning_format_from_name(syntax.value("reasoning_format", std::string("deepseek")));
    params.generation_prompt = syntax.value("generation_prompt", std::string());
    params.parse_tool_calls  = syntax.value("parse_tool_calls", true);
    const std::string parser = syntax.value("parser", std::string());
    if (!parser.empty()) {
        params.parser.load(parser);
    }
    const common_chat_msg msg = common_chat_parse(text, is_partial, params);

    common_json calls = common_json::array();
    for (const auto & call : msg.tool_calls) {
        calls.push_back({ { "name", call.name }, { "id", call.id }, { "arguments", call.arguments } });
    }
    return common_json::object({
        { "content", msg.content },
        { "reasoning_content", msg.reasoning_content },
        { "tool_calls", calls },
    });
}

}  // namespace

extern "C" void * llmpq_chat_init(const llama_model * model, const char * template_override, char ** error) {
    if (error != nullptr) {
        *error = nullptr;
    }
    try {
        if (model == nullptr) {
            throw std::invalid_argument("llmpq_chat_init: model is null");
        }
        const std::string override_src = template_override == nullptr ? "" : template_override;
        try {
            return new llmpq_chat_templates{ model, common_chat_templates_init(model, override_src) };
        } catch (const std::exception &) {
            // common_chat_templates_init rethrows a sliced copy ("throw e;") that lost the Jinja error; parsing the
            // source again here throws the original one.
            const char * builtin = llama_model_chat_template(model, nullptr);
            const std::string src = !override_src.empty() ? override_src : builtin != nullptr ? builtin : "";
            common_chat_template probe(src, "", "");
            throw;
        }
    } catch (const std::exception & e) {
        if (error != nullptr) {
            *error = dup(e.what());
        }
    } catch (...) {
        if (error != nullptr) {
            *error = dup("llmpq_chat_init: unknown error");
        }
    }
    return nullptr;
}

extern "C" void llmpq_chat_release(void * templates) {
    delete static_cast<llmpq_chat_templates *>(templates);
}

extern "C" char * llmpq_chat_apply(void * templates, const char * request_json) {
    try {
        if (templates == nullptr || request_json == nullptr) {
            throw std::invalid_argument("llmpq_chat_apply: templates and request are required");
        }
        return dup(apply(*static_cast<llmpq_chat_templates *>(templates), common_json::parse(request_json)).dump_safe());
    } catch (const std::exception & e) {
        return error_json(e.what());
    } catch (...) {
        return error_json("llmpq_chat_apply: unknown error");
    }
}

extern "C" char * llmpq_chat_parse(const char * text, int is_partial, const char * syntax_json) {
    try {
        if (text == nullptr || syntax_json == nullptr) {
            throw std::invalid_argument("llmpq_chat_parse: text and syntax are required");
        }
        return dup(parse(text, is_partial != 0, common_json::parse(syntax_json)).dump_safe());
    } catch (const std::exception & e) {
        return error_json(e.what());
    } catch (...) {
        return error_json("llmpq_chat_parse: unknown error");
    }
}

extern "C" void llmpq_chat_free(char * text) {
    std::free(text);
}
