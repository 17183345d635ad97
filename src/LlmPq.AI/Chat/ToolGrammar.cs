using System.Text.RegularExpressions;

namespace LlmPq.Chat;

/// <summary>
/// Tightens the GBNF grammar llama.cpp derives for a required tool call. Its root lets any text come before the first
/// call (<c>root ::= "&lt;generation prompt&gt;" space until-N? tool-calls</c>), which a weak or random model fills
/// until the output limit; OpenAI's <c>required</c> means a call, so the call starts at once here. And its calls
/// repeat (<c>(tool-call space)+</c>) even when parallel calls are off, so they are made one.
/// </summary>
/// <remarks>The rules' names are those of llama.cpp's grammar builder in the pinned version; a grammar of another shape is left as it is.</remarks>
internal static partial class ToolGrammar
{
    /// <summary>Gets the grammar of a required call: no text before it, and one call when <paramref name="parallel"/> is false.</summary>
    public static string Required(string grammar, bool? parallel)
    {
        grammar = LeadingText().Replace(grammar, "$1", 1);
        return parallel == false ? RepeatedCalls().Replace(grammar, "$1tool-call space", 1) : grammar;
    }

    [GeneratedRegex(@"^(root ::= .*?) until-\d+\?(?= )", RegexOptions.Multiline)]
    private static partial Regex LeadingText();

    [GeneratedRegex(@"^(tool-calls ::= )\(tool-call space\)\+$", RegexOptions.Multiline)]
    private static partial Regex RepeatedCalls();
}
