"""Turn a model's Markdown answer into Slack messages: size-safe pieces, mrkdwn and Block Kit.

Slack limits (docs.slack.dev): a `markdown` block holds 12,000 characters, and a payload whose
markdown blocks add up to more is rejected (`msg_blocks_too_long`), so each block from
`markdown_blocks` goes in its own message (reference/block-kit/blocks/markdown-block). A
section block's text holds 3,000 characters. mrkdwn needs `&`, `<`, `>` sent as `&amp;`,
`&lt;`, `&gt;` everywhere, code included, and nothing else encoded
(messaging/formatting-message-text). Sizes are UTF-8 bytes, never fewer than characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

STREAM_CHUNK_BYTES = 3500  # one streamed update
MESSAGE_BYTES = 11000  # one `markdown` block (Slack: 12,000 characters)
MRKDWN_SECTION_BYTES = 2900  # one section block's mrkdwn text (Slack: 3,000 characters)
FALLBACK_CHARS = 3000  # the notification/fallback `text` of a message
_MIN_BYTES = 64

_FENCE_OPEN = re.compile(r"([ \t]*)```+[ \t]*([^`\s]{0,20})[^`\n]*$")
_FENCE_CLOSE = re.compile(r"[ \t]*```+[ \t]*$")
_CLOSE = "\n```"
# Cut preferences below paragraphs and lines: after a sentence end, then between words.
_SENTENCE = re.compile(r"[.!?][\"')\]]*[ \t]+|[。！？][」』）)]*")
_SPACE = re.compile(r"(?<=\S)[ \t]+|(?<=[、，])")
# Spans a mid-line cut should not fall inside: links, Slack tokens, code, emphasis, entities.
_ATOMIC = re.compile(
    r"!?\[[^\]\n]*\]\([^)\n]*\)|<[^<>\n]*>|`[^`\n]+`|(\*\*|__|~~)\S(?:[^\n]*?\S)?\1|&\w+;"
)
_JOINERS = "\u200d\ufe0e\ufe0f"


def split_text(text: str, *, max_bytes: int) -> list[str]:
    """Split text into pieces of at most max_bytes UTF-8 bytes at natural boundaries (see _split)."""
    return _split(text, max_bytes, by_bytes=True)


def _split(text: str, limit: int, *, by_bytes: bool) -> list[str]:
    """Split text into pieces no larger than limit (bytes or characters).

    Invariant: text == w0 + p0 + w1 + p1 + ... + pn + w(n+1) where every w is whitespace
    and p is a piece with the fence markers this function adds removed. A cut inside a
    ``` block ends the piece with a closing fence and starts the next one with the same
    opening fence (language tag included). Cuts prefer, in order: blank lines and fence
    edges, line ends, sentence ends, spaces; a word is cut only when it alone is too long,
    and never inside a character or an emoji sequence. The last piece is left as it is.
    """
    if limit < _MIN_BYTES:
        raise ValueError(f"size limit must be at least {_MIN_BYTES}, got {limit}")

    def size(s: str) -> int:
        return len(s.encode()) if by_bytes else len(s)

    pieces: list[str] = []
    rest = text[_skip_gap(text, 0) :].rstrip()
    lang: str | None = None  # the language of the ``` block the rest starts inside
    while rest:
        prefix = "" if lang is None else f"```{lang}\n"
        if len(rest) <= limit and size(prefix + rest) <= limit:
            pieces.append(prefix + rest)
            break
        budget = limit - size(prefix) - len(_CLOSE)
        cut = len(rest[:budget].encode()[:budget].decode(errors="ignore")) if by_bytes else budget
        p = _choose_cut(rest, cut, lang)
        head = rest[:p].rstrip()
        nl = head.rfind("\n") + 1
        if nl and _FENCE_OPEN.match(head[nl:]) and _fence_after(head, lang) is not None:
            p, head = nl, head[:nl].rstrip()  # a fence opened on the last line: move it on
        lang = _fence_after(head, lang)
        suffix = "" if lang is None else _CLOSE
        p = _skip_gap(rest, p)
        eol = len(rest) if (e := rest.find("\n", p)) < 0 else e
        closer = "\n" + rest[p:eol].rstrip()
        fits = size(prefix + head + closer) <= limit
        if lang is not None and fits and _FENCE_CLOSE.match(closer[1:]):
            lang, suffix, p = None, closer, _skip_gap(rest, eol)  # the real closer fits instead
        pieces.append(prefix + head + suffix)
        rest = rest[p:]
    return pieces


def _skip_gap(s: str, p: int) -> int:
    """Where the text after a cut at p resumes: past the gap, keeping a new line's indent."""
    j = len(s) - len(s[p:].lstrip())
    nl = s.rfind("\n", p, j)
    return nl + 1 if nl >= 0 else p if p == 0 or s[p - 1] == "\n" else j


def _fence_after(s: str, lang: str | None) -> str | None:
    """The open fence's language after reading s (None when outside a fence)."""
    for line in s.split("\n"):
        if lang is None:
            if m := _FENCE_OPEN.match(line):
                lang = m.group(2)
        elif _FENCE_CLOSE.match(line):
            lang = None
    return lang


def _line_cuts(rest: str, ext: int, lang: str | None) -> tuple[list[int], list[int]]:
    """Line starts up to ext: (paragraph-like boundaries, other line boundaries)."""
    par: list[int] = []
    plain: list[int] = []
    prev, last, pos = "text", "text", 0  # kinds of the previous line and last non-blank one
    while pos <= ext:
        end = len(rest) if (e := rest.find("\n", pos)) < 0 else e
        line, was = rest[pos:end], lang
        if lang is None and (m := _FENCE_OPEN.match(line)):
            kind, lang = "open", m.group(2)
        elif lang is not None and _FENCE_CLOSE.match(line):
            kind, lang = "close", None
        else:
            kind = "text" if line.strip() else "blank"
            kind = "heading" if kind == "text" and was is None and _HEADING.match(line) else kind
        # Never leave an empty code block behind: no cut right after an opener or before a closer.
        if pos and kind != "close" and prev != "open":
            paragraph = (prev in ("blank", "close") or kind == "open") and last != "heading"
            (par if paragraph else plain).append(pos)
        prev, last, pos = kind, (last if kind == "blank" else kind), end + 1
    return par, plain


def _choose_cut(rest: str, cut: int, lang: str | None) -> int:
    """The best cut position p: rest[:p].rstrip() fits in cut characters, rest[p:] goes on."""
    ext = len(rest) - len(rest[cut:].lstrip())  # whitespace after the budget costs nothing
    window = rest[:ext]
    first = len(window) - len(window.lstrip())
    eol = rest.find("\n", ext)
    spans = [m.span() for m in _ATOMIC.finditer(rest, 0, len(rest) if eol < 0 else eol)]

    def free(p: int) -> bool:
        return not any(s < p < e for s, e in spans)

    par, lines = _line_cuts(rest, ext, lang)
    sentences = [m.end() for m in _SENTENCE.finditer(window)]
    spaces = [m.end() for m in _SPACE.finditer(window)]
    half = cut // 2  # a "nicer" boundary is only worth it if the piece stays reasonably full
    levels = (
        [p for p in par if p >= half],
        [p for p in lines if p >= half],
        [p for p in sentences if p >= half and free(p)],
        [p for p in spaces if free(p)] + par + lines,
        spaces + par + lines,
    )
    for level in levels:
        if ok := [p for p in level if first < p <= ext]:
            return max(ok)
    ls = rest.rfind("\n", 0, cut) + 1
    if ls > first and rest[ls:].lstrip(" \t").startswith("```"):
        return ls  # never inside a fence line
    p = max(cut, 1)  # a single word longer than the budget: cut it, between graphemes
    while p > 1 and (  # keep combining marks, ZWJ sequences and skin tones with their base
        unicodedata.combining(rest[p])
        or rest[p] in _JOINERS
        or rest[p - 1] == "\u200d"
        or "\U0001f3fb" <= rest[p] <= "\U0001f3ff"
    ):
        p -= 1
    return p


# --- Markdown -> mrkdwn -------------------------------------------------------------------

_LINK = r"!?\[(?P<label>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\((?P<url>(?:[^()\s]|\([^()\s]*\))+)(?:[ \t]+\"[^\"\n]*\")?\)"
_TOKEN = re.compile(
    r"(?P<code>(?<!`)(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`))"
    r"|\\(?P<esc>[!-/:-@\[-`{-~])"
    rf"|(?P<link>{_LINK})"
    r"|(?P<slack><(?:[@#!]|https?://|mailto:)[^<>\n]*>)"
    r"|(?P<bare>https?://[^\s<>`]+)"
)
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_HR = re.compile(r"[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE = re.compile(r"[ \t]*(?:>[ \t]?)+(.*)$")
_LIST = re.compile(r"([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_TASK = re.compile(r"\[([ xX])\][ \t]+")
_TABLE_SEP = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_MARKERS = re.compile(r"\*\*|__|~~|`")
_STRONG = re.compile(r"\*\*|__")
_BOLD = "\ue002"  # stands for a Slack bold `*` until italics are done
_ZWSP = "\u200b"  # lets Slack see `*bold*` next to letters (e.g. inside Japanese text)


def markdown_to_mrkdwn(md: str) -> str:
    """Convert model-style Markdown into Slack mrkdwn, for text fallbacks and section blocks."""
    lines = md.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    stack: list[int] = []  # indentation of the open list levels
    fence: int | None = None  # indentation of the open ``` block
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if fence is not None:
            if _FENCE_CLOSE.match(line):
                out.append("```")
                fence = None
            else:
                indent = len(line) - len(line.lstrip(" "))
                out.append(_escape(line[min(fence, indent) :]))
        elif m := _FENCE_OPEN.match(line):
            fence = len(m.group(1))
            out.append("```")  # mrkdwn has no language tags
        elif "|" in line and i < len(lines) and "|" in lines[i] and _TABLE_SEP.match(lines[i]):
            rows = [line, lines[i]]
            i += 1
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(lines[i])
                i += 1
            out.append(_table(rows))
        else:
            out.append(_block_line(line, stack))
    if fence is not None:
        out.append("```")
    return "\n".join(out)


def _block_line(line: str, stack: list[int]) -> str:
    """One line outside code and tables: heading, rule, quote, list item or paragraph text."""
    if m := _HEADING.match(line):
        stack.clear()
        return f"*{_inline(_STRONG.sub('', m.group(1)).strip())}*"
    if _HR.match(line):
        stack.clear()
        return "──────────"
    if m := _QUOTE.match(line):
        body = _block_line(m.group(1), [])
        return f"> {body}" if body else ">"
    if m := _LIST.match(line):
        indent, marker, body = m.groups()
        width = len(indent.expandtabs(4))
        while stack and stack[-1] > width:
            stack.pop()
        if not stack or stack[-1] < width:
            stack.append(width)
        if task := _TASK.match(body):
            body = ("☐ " if task.group(1) == " " else "☑ ") + body[task.end() :]
        bullet = "•" if marker in "-*+" else marker
        return f"{'    ' * (len(stack) - 1)}{bullet} {_inline(body)}"
    if line[:1].strip():
        stack.clear()
    return _inline(line)


def _inline(text: str) -> str:
    """Convert inline Markdown; code, links, Slack tokens and bare URLs are kept intact."""
    tokens: list[str] = []
    parts: list[str] = []
    pos = 0
    while m := _TOKEN.search(text, pos):
        end = m.end()
        if m.group("code"):
            token = _escape(m.group("code"))
        elif m.group("esc"):
            token = _escape(m.group("esc"))
        elif m.group("link"):
            token = _link(m.group("label"), m.group("url"))
        elif m.group("slack"):
            token = m.group("slack")
        else:
            token = _trim_url(m.group("bare"))
            end = m.start() + len(token)
        parts.append(_escape(text[pos : m.start()]) + f"\ue000{len(tokens)}\ue001")
        tokens.append(token)
        pos = end
    parts.append(_escape(text[pos:]))
    out = "".join(parts)
    for pattern, repl in _EMPHASIS:
        out = pattern.sub(repl, out)
    out = out.replace(_BOLD, "*")
    return re.sub("\ue000(\\d+)\ue001", lambda m: tokens[int(m.group(1))], out)


def _wrap(fmt: str) -> Callable[[re.Match[str]], str]:
    """A re.sub callback formatting group 1, with zero-width spaces against adjacent letters."""

    def repl(m: re.Match[str]) -> str:
        s, e, t = m.start(), m.end(), m.string
        pre = _ZWSP if s and t[s - 1].isalnum() else ""
        post = _ZWSP if e < len(t) and t[e].isalnum() else ""
        return pre + fmt.format(m.group(1)) + post

    return repl


_EMPHASIS = [
    (re.compile(pattern), _wrap(fmt))
    for pattern, fmt in (
        (r"(?<!\*)\*\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*\*(?!\*)", _BOLD + "_{}_" + _BOLD),
        (r"(?<!\*)\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?!\*)", _BOLD + "{}" + _BOLD),
        (r"(?<![\w_])__(?=[^\s_])(.+?)(?<=[^\s_])__(?![\w_])", _BOLD + "{}" + _BOLD),
        # Single `*` needs non-word neighbours, so `2*3*4` and `a * b * c` stay as they are.
        (r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])", "_{}_"),
        (r"(?<!~)~~(?=[^\s~])(.+?)(?<=[^\s~])~~(?!~)", "~{}~"),
    )
]


def _escape(s: str) -> str:
    """Escape Slack's three control characters."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(label: str, url: str) -> str:
    """A Markdown link as a Slack `<url|label>` link (just the label for relative URLs)."""
    label = _escape(_MARKERS.sub("", label).strip())
    if not re.match(r"(?:https?|mailto|ftp):", url):
        return label or _escape(url)
    url = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{url}|{label}>" if label else f"<{url}>"


def _trim_url(url: str) -> str:
    """A bare URL without the trailing punctuation or Markdown that follows it in prose."""
    while url[-1] in ".,;:!?'\"*_~)" and (url[-1] != ")" or url.count("(") < url.count(")")):
        url = url[:-1]
    return url


def _table(rows: list[str]) -> str:
    """A GitHub pipe table as an aligned monospace code block (mrkdwn has no tables)."""
    head, sep, *body = [_cells(r) for r in rows]
    grid = [head, *body]
    n = max(len(r) for r in grid)
    grid = [r + [""] * (n - len(r)) for r in grid]
    aligns = [(c[:1] == ":") + 2 * (c[-1:] == ":") for c in sep] + [0] * n  # 2 right, 3 center
    widths = [max(_width(r[j]) for r in grid) for j in range(n)]

    def fmt(row: list[str]) -> str:
        cells = []
        for cell, w, a in zip(row, widths, aligns[:n], strict=True):
            gap = w - _width(cell)
            left = gap if a == 2 else gap // 2 if a == 3 else 0
            cells.append(" " * left + cell + " " * (gap - left))
        return " | ".join(cells).rstrip()

    lines = [fmt(grid[0]), "-+-".join("-" * w for w in widths), *map(fmt, grid[1:])]
    return "```\n" + _escape("\n".join(lines)) + "\n```"


def _cells(row: str) -> list[str]:
    """The cells of a table row as plain text: links as `label (url)`, no emphasis or code marks."""
    row = row.strip().removeprefix("|")
    row = row if row.endswith("\\|") else row.removesuffix("|")
    row = re.sub(_LINK, lambda m: f"{m.group('label')} ({m.group('url')})", row)
    return [_MARKERS.sub("", c).strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _width(s: str) -> int:
    """Monospace display width: wide (CJK, emoji) characters take two columns."""
    wide = sum(unicodedata.east_asian_width(c) in "WF" for c in s)
    return len(s) + wide - sum(bool(unicodedata.combining(c)) or c in _JOINERS for c in s)


# --- Block Kit --------------------------------------------------------------------------------


def markdown_blocks(md: str, *, max_bytes: int = MESSAGE_BYTES) -> list[dict]:
    """Slack `markdown` blocks carrying the whole answer; post each one as its own message."""
    return [{"type": "markdown", "text": piece} for piece in split_text(md, max_bytes=max_bytes)]


def fallback_text(md: str) -> str:
    """The message's notification/fallback `text`: mrkdwn, cut at about 3,000 characters with "…"."""
    # Only the first piece is kept, so the text beyond twice the limit never matters.
    pieces = _split(
        markdown_to_mrkdwn(md)[: 2 * FALLBACK_CHARS], FALLBACK_CHARS - 2, by_bytes=False
    )
    if len(pieces) <= 1:
        return pieces[0] if pieces else ""
    return pieces[0] + ("\n…" if pieces[0].endswith("```") else "…")
