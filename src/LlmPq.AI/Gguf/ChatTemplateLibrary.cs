namespace LlmPq.Gguf;

/// <summary>
/// Jinja chat templates for generated models (<see cref="TinyLlamaModelOptions.ChatTemplate"/>), written for LlmPq in
/// the shapes of real model families so llama.cpp's chat layer treats a tiny model like one of them: it analyzes a
/// template by rendering it with and without tool calls, and derives the tool-call format, grammar and parser.
/// </summary>
public static class ChatTemplateLibrary
{
    /// <summary>The name of <see cref="ChatML"/>.</summary>
    public const string ChatMLName = "chatml";

    /// <summary>The name of <see cref="Hermes"/>.</summary>
    public const string HermesName = "hermes";

    /// <summary>The name of <see cref="Llama31"/>.</summary>
    public const string Llama31Name = "llama3.1";

    /// <summary>ChatML without tools; llama.cpp's <c>llama_chat_apply_template</c> recognizes it by <c>&lt;|im_start|&gt;</c>.</summary>
    public const string ChatML =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>
    /// Hermes 2 Pro / Qwen 2.5 style: ChatML turns, the tools as JSON lines inside <c>&lt;tools&gt;</c> in the system
    /// prompt, each call a JSON object inside <c>&lt;tool_call&gt;</c> tags, results inside <c>&lt;tool_response&gt;</c>
    /// in a user turn. The <c>&lt;tool_call&gt;</c> tag is what triggers the lazy grammar.
    /// </summary>
    public const string Hermes = """
        {%- if messages and messages[0].role == 'system' -%}
            {%- set system_text = messages[0].content -%}
            {%- set turns = messages[1:] -%}
        {%- else -%}
            {%- set system_text = 'You are a helpful assistant.' -%}
            {%- set turns = messages -%}
        {%- endif -%}
        {{- '<|im_start|>system\n' + system_text -}}
        {%- if tools -%}
            {{- '\n\n# Tools\n\nYou may call functions to answer. Their signatures are inside <tools></tools>:\n<tools>' -}}
            {%- for tool in tools -%}
                {{- '\n' + (tool | tojson) -}}
            {%- endfor -%}
            {{- '\n</tools>\n\nTo call a function, answer with a JSON object of its name and arguments inside <tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' -}}
        {%- endif -%}
        {{- '<|im_end|>\n' -}}
        {%- for message in turns -%}
            {%- if message.role == 'assistant' -%}
                {{- '<|im_start|>assistant' -}}
                {%- if message.content -%}
                    {{- '\n' + message.content -}}
                {%- endif -%}
                {%- for call in message.tool_calls or [] -%}
                    {{- '\n<tool_call>\n{"name": "' + call.function.name + '", "arguments": ' + (call.function.arguments | tojson) + '}\n</tool_call>' -}}
                {%- endfor -%}
                {{- '<|im_end|>\n' -}}
            {%- elif message.role == 'tool' -%}
                {%- if loop.first or turns[loop.index0 - 1].role != 'tool' -%}
                    {{- '<|im_start|>user' -}}
                {%- endif -%}
                {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' -}}
                {%- if loop.last or turns[loop.index0 + 1].role != 'tool' -%}
                    {{- '<|im_end|>\n' -}}
                {%- endif -%}
            {%- else -%}
                {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}
            {%- endif -%}
        {%- endfor -%}
        {%- if add_generation_prompt -%}
            {{- '<|im_start|>assistant\n' -}}
        {%- endif -%}
        """;

    /// <summary>
    /// Llama 3.1 style: header-delimited turns, the tools as indented JSON in the system turn, one call per turn as a
    /// bare <c>{"name": ..., "parameters": ...}</c> object, results in an <c>ipython</c> turn. llama.cpp knows the
    /// family by its instruction ("Respond in the format {"name": function name" ... "Do not use variables."), after
    /// which its grammar also lets a call come in the OpenAI wrapper the real models sometimes write. The BOS token is
    /// left to the tokenizer (the generated models add it), so it is not doubled.
    /// </summary>
    public const string Llama31 = """
        {%- if messages and messages[0].role == 'system' -%}
            {%- set system_text = messages[0].content | trim -%}
            {%- set turns = messages[1:] -%}
        {%- else -%}
            {%- set system_text = '' -%}
            {%- set turns = messages -%}
        {%- endif -%}
        {{- '<|start_header_id|>system<|end_header_id|>\n\n' -}}
        {%- if tools -%}
            {{- 'Environment: ipython\n\nYou may call the functions below. To call one, answer with JSON only. Respond in the format {"name": function name, "parameters": dictionary of argument names and values}. Do not use variables.\n\n' -}}
            {%- for tool in tools -%}
                {{- (tool | tojson(indent=4)) + '\n\n' -}}
            {%- endfor -%}
        {%- endif -%}
        {{- system_text + '<|eot_id|>' -}}
        {%- for message in turns -%}
            {%- if message.role == 'assistant' and message.tool_calls -%}
                {%- if message.tool_calls | length != 1 -%}
                    {{- raise_exception('This template renders one tool call per assistant turn.') -}}
                {%- endif -%}
                {%- set call = message.tool_calls[0].function -%}
                {{- '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "' + call.name + '", "parameters": ' + (call.arguments | tojson) + '}<|eot_id|>' -}}
            {%- elif message.role == 'tool' -%}
                {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + message.content + '<|eot_id|>' -}}
            {%- else -%}
                {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + (message.content | trim) + '<|eot_id|>' -}}
            {%- endif -%}
        {%- endfor -%}
        {%- if add_generation_prompt -%}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {%- endif -%}
        """;

    /// <summary>Gets the names <see cref="Resolve"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = [ChatMLName, HermesName, Llama31Name];

    /// <summary>Gets a template by name (<see cref="Names"/>), or reads it from a file.</summary>
    /// <param name="nameOrPath">A template name or the path of a Jinja template file.</param>
    /// <returns>The template source.</returns>
    /// <exception cref="ArgumentException">Neither a known name nor an existing file.</exception>
    public static string Resolve(string nameOrPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(nameOrPath);
        return nameOrPath switch
        {
            ChatMLName => ChatML,
            HermesName => Hermes,
            Llama31Name => Llama31,
            _ when File.Exists(nameOrPath) => File.ReadAllText(nameOrPath),
            _ => throw new ArgumentException(
                $"'{nameOrPath}' is neither a chat template name ({string.Join(", ", Names)}) nor a template file.", nameOrPath),
        };
    }
}
