using LlmPq.Chat;

namespace LlmPq.Tests.Chat;

public sealed class ToolGrammarTests
{
    // The shapes llama.cpp v0.5.0 derives for the Hermes and Llama 3.1 templates with tool_choice "required".
    private const string Hermes = """
        root ::= "<|im_start|>assistant\n" space until-161? tool-calls
        tool-call ::= "<tool_call>\n" space (tool-get-weather) space "</tool_call>"
        tool-calls ::= (tool-call space)+
        until-161 ::= | [<] until-161-01 | [^<] until-161
        """;

    private const string Llama31 = """
        root ::= "<|start_header_id|>assistant<|end_header_id|>\n\n" space until-172? tool-call
        until-172 ::= | [^{] until-172
        """;

    [Fact]
    public void A_required_call_starts_at_once()
    {
        Assert.Contains("root ::= \"<|im_start|>assistant\\n\" space tool-calls\n", ToolGrammar.Required(Hermes, parallel: null), StringComparison.Ordinal);
        Assert.StartsWith("root ::= \"<|start_header_id|>assistant<|end_header_id|>\\n\\n\" space tool-call\n", ToolGrammar.Required(Llama31, parallel: null), StringComparison.Ordinal);
    }

    [Fact]
    public void Parallel_calls_off_makes_the_calls_one()
    {
        Assert.Contains("tool-calls ::= tool-call space\n", ToolGrammar.Required(Hermes, parallel: false), StringComparison.Ordinal);
        Assert.Contains("tool-calls ::= (tool-call space)+\n", ToolGrammar.Required(Hermes, parallel: true), StringComparison.Ordinal);
    }

    [Fact]
    public void A_grammar_of_another_shape_is_left_as_it_is()
    {
        const string other = "root ::= \"{\" space members \"}\"\nmembers ::= until-3? x\n";
        Assert.Equal(other, ToolGrammar.Required(other, parallel: false));
    }
}
