using System.Buffers;
using System.Text;
using LlmPq.Native;

namespace LlmPq.Engine;

/// <summary>
/// Turns one sequence's tokens into text deltas: pieces are decoded as UTF-8 across token boundaries, and text
/// that could be the start of a stop sequence is held back until it is known not to be one, so a stop sequence
/// is never emitted.
/// </summary>
internal sealed class TextStreamer
{
    private readonly LlamaModel _model;
    private readonly IReadOnlyList<string> _stops;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly ArrayBufferWriter<byte> _bytes = new(64);
    private readonly StringBuilder _held = new();
    private char[] _chars = new char[64];

    public TextStreamer(LlamaModel model, IReadOnlyList<string> stopSequences)
    {
        _model = model;
        _stops = [.. stopSequences.Where(s => s.Length > 0)];
    }

    /// <summary>Gets a value indicating whether a stop sequence was produced.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds a token; returns the text that can be emitted now (possibly empty).</summary>
    public string Push(int token)
    {
        _bytes.ResetWrittenCount();
        _model.AppendPiece(token, _bytes);
        return Accept(Decode(_bytes.WrittenSpan, flush: false));
    }

    /// <summary>Ends the stream; returns whatever was held back (nothing after a stop).</summary>
    public string Flush()
    {
        if (Stopped)
        {
            return string.Empty;
        }

        string rest = _held.Append(Decode([], flush: true)).ToString();
        _held.Clear();
        return rest;
    }

    private string Decode(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _decoder.GetCharCount(bytes, flush);
        if (needed > _chars.Length)
        {
            _chars = new char[needed * 2];
        }

        int n = _decoder.GetChars(bytes, _chars, flush);
        return new string(_chars, 0, n);
    }

    private string Accept(string text)
    {
        if (Stopped || text.Length == 0)
        {
            return string.Empty;
        }

        _held.Append(text);
        if (_stops.Count == 0)
        {
            string all = _held.ToString();
            _held.Clear();
            return all;
        }

        string pending = _held.ToString();
        int cut = -1;
        foreach (string stop in _stops)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        if (cut >= 0)
        {
            Stopped = true;
            _held.Clear();
            return pending[..cut];
        }

        // Keep the longest tail that a stop sequence could still begin with.
        int keep = 0;
        foreach (string stop in _stops)
        {
            for (int len = Math.Min(stop.Length - 1, pending.Length); len > keep; len--)
            {
                if (pending.AsSpan(pending.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    keep = len;
                    break;
                }
            }
        }

        _held.Clear().Append(pending, pending.Length - keep, keep);
        return pending[..^keep];
    }
}
