"""What a Slack user sees of a model answer: mrkdwn conversion, size-safe pieces, blocks."""

from __future__ import annotations

import itertools
import random
import re
import unicodedata

import pytest

from handlers.formatting import (
    FALLBACK_CHARS,
    MESSAGE_BYTES,
    MRKDWN_SECTION_BYTES,
    STREAM_CHUNK_BYTES,
    fallback_text,
    markdown_blocks,
    markdown_to_mrkdwn,
    split_text,
)

ZW = "\u200b"
FENCE_LINE = re.compile(r"^[ \t]*```", re.M)

# --- markdown_to_mrkdwn: a corpus of realistic model answers ------------------------------

CORPUS = [
    (
        "headings_and_bullets",
        "# Deployment plan\n\n## Steps\n\n- Build the image\n- Push it to the registry\n* Roll out\n+ Verify\n\n### Done ###",
        "*Deployment plan*\n\n*Steps*\n\n• Build the image\n• Push it to the registry\n• Roll out\n• Verify\n\n*Done*",
    ),
    (
        "nested_lists_keep_their_depth",
        "1. Install\n   - run `pip install sophia`\n   - check the version\n     - must be >= 2.0\n2. Configure\n\n- top\n    - four-space child\n        - grandchild\n- back to top",
        "1. Install\n    • run `pip install sophia`\n    • check the version\n        • must be &gt;= 2.0\n2. Configure\n\n"
        "• top\n    • four-space child\n        • grandchild\n• back to top",
    ),
    (
        "bold_inside_lists_and_at_line_start",
        "**Summary:** all good.\n\n- **Latency**: 120 ms\n- **Errors**: *none* so far\n- __Owner__: platform team",
        "*Summary:* all good.\n\n• *Latency*: 120 ms\n• *Errors*: _none_ so far\n• *Owner*: platform team",
    ),
    (
        "links_images_and_relative_links",
        "See [the docs](https://docs.example.com/guide_v2?a=1&b=2), the [**API**](https://api.example.com) "
        "and [Foo (bar)](https://en.wikipedia.org/wiki/Foo_(bar)).\n![diagram](https://example.com/d.png) "
        "and [README](./README.md).",
        "See <https://docs.example.com/guide_v2?a=1&b=2|the docs>, the <https://api.example.com|API> "
        "and <https://en.wikipedia.org/wiki/Foo_(bar)|Foo (bar)>.\n<https://example.com/d.png|diagram> "
        "and README.",
    ),
    (
        "code_fence_is_left_alone_except_escaping",
        'Run this:\n\n```python\ndef greet(name: str) -> str:\n    return f"**{name}** <b>hi</b> & bye"  # _not_ italic\n```\n\nThen **restart**.',
        'Run this:\n\n```\ndef greet(name: str) -&gt; str:\n    return f"**{name}** &lt;b&gt;hi&lt;/b&gt; &amp; bye"  # _not_ italic\n```\n\nThen *restart*.',
    ),
    (
        "fence_nested_in_a_list_is_dedented",
        "1. Create the file:\n\n   ```yaml\n   name: sophia\n     nested: true\n   ```\n2. Commit it.",
        "1. Create the file:\n\n```\nname: sophia\n  nested: true\n```\n2. Commit it.",
    ),
    (
        "inline_code_keeps_underscores_and_stars",
        "Call `get_user_by_id(user_id)` or ``a `tick` b``; set `**kwargs` and `<T>` first.",
        "Call `get_user_by_id(user_id)` or ``a `tick` b``; set `**kwargs` and `&lt;T&gt;` first.",
    ),
    (
        "pipe_table_becomes_aligned_monospace",
        "Results:\n\n| Model | Latency (ms) | Notes |\n|:------|-------------:|:-----:|\n| **gpt** | 120 | [link](https://x.io) |\n"
        "| 日本語モデル | 95 | `fast` |\n| small | 7 |\n\nDone.",
        "Results:\n\n```\nModel        | Latency (ms) |        Notes\n-------------+--------------+--------------------\n"
        "gpt          |          120 | link (https://x.io)\n日本語モデル |           95 |        fast\nsmall        |            7 |\n```\n\nDone.",
    ),
    (
        "pipe_in_prose_is_not_a_table",
        "Pipe it: `cat log | grep err` or a | b\n---\nNext.",
        "Pipe it: `cat log | grep err` or a | b\n──────────\nNext.",
    ),
    (
        "japanese_with_emoji",
        "## まとめ 🎉\n\nこれは**重要**です。詳細は[こちら](https://example.jp/資料)を見てください 🙏\n- 項目１：**完了** ✅",
        f"*まとめ 🎉*\n\nこれは{ZW}*重要*{ZW}です。詳細は<https://example.jp/資料|こちら>を見てください 🙏\n• 項目１：*完了* ✅",
    ),
    (
        "snake_case_is_never_italic",
        "Use snake_case_names like max_retry_count and _private_helper, or SOME_CONSTANT_VALUE.",
        "Use snake_case_names like max_retry_count and _private_helper, or SOME_CONSTANT_VALUE.",
    ),
    (
        "math_stays_math",
        "Compute 2 * 3 * 4 = 24, or 2*3*4, and check x < y && y > z; a**2 is not bold.",
        "Compute 2 * 3 * 4 = 24, or 2*3*4, and check x &lt; y &amp;&amp; y &gt; z; a**2 is not bold.",
    ),
    (
        "bare_urls_untouched",
        "Logs: https://grafana.example.com/d/api_latency_p99?from=now-1h&to=now. Also (https://example.com/a_b_c) "
        "and **https://example.com/x_y**.",
        "Logs: https://grafana.example.com/d/api_latency_p99?from=now-1h&to=now. Also (https://example.com/a_b_c) "
        "and *https://example.com/x_y*.",
    ),
    (
        "blockquotes_kept",
        "> **Warning:** this deletes data.\n> Back up first.\n>> nested quote\n>\n> - a quoted bullet",
        "> *Warning:* this deletes data.\n> Back up first.\n> nested quote\n>\n> • a quoted bullet",
    ),
    (
        "strike_and_bold_italic",
        "~~old plan~~ → ***new plan*** and _emphasis_ stays, *single* becomes italic.",
        "~old plan~ → *_new plan_* and _emphasis_ stays, _single_ becomes italic.",
    ),
    (
        "slack_tokens_kept_html_escaped",
        "Ping <@U024BE7LH> in <#C024BE7LR|general>, <!here>. Raw <div>html</div> & AT&T.",
        "Ping <@U024BE7LH> in <#C024BE7LR|general>, <!here>. Raw &lt;div&gt;html&lt;/div&gt; &amp; AT&amp;T.",
    ),
    (
        "rules_tasks_and_escapes",
        "Intro\n\n---\n\n- [ ] write tests\n- [x] ship\n\nLiteral \\*stars\\* and \\_underscores\\_ and \\<b\\>.",
        "Intro\n\n──────────\n\n• ☐ write tests\n• ☑ ship\n\nLiteral *stars* and _underscores_ and &lt;b&gt;.",
    ),
    (
        "unclosed_fence_while_streaming_is_closed",
        "Partial answer:\n```bash\necho 'a && b'",
        "Partial answer:\n```\necho 'a &amp;&amp; b'\n```",
    ),
]


@pytest.mark.parametrize(("md", "expected"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_markdown_to_mrkdwn_corpus(md: str, expected: str) -> None:
    assert markdown_to_mrkdwn(md) == expected


@pytest.mark.parametrize("md", [c[1] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_no_literal_double_stars_outside_code(md: str) -> None:
    out = markdown_to_mrkdwn(md)
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", out, flags=re.S)
    assert "**" not in prose.replace("a**2", "")  # `a**2` is math, not markup
    assert "~~" not in prose


def test_code_fence_language_tag_is_dropped_but_code_is_byte_for_byte() -> None:
    code = "for (i = 0; i < n; i++) { s += a[i] * b[i]; } // **x** __y__ [z](w)"
    out = markdown_to_mrkdwn(f"```javascript\n{code}\n```")
    assert out.splitlines()[0] == "```"
    # Slack decodes the three entities inside code too, so the user sees the original line.
    assert (
        out.splitlines()[1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == code
    )


# --- split_text ---------------------------------------------------------------------------


def utf8(s: str) -> int:
    return len(s.encode())


def reassemble(text: str, pieces: list[str]) -> list[tuple[int, str]]:
    """Check the invariant; return each cut as (position in text, whitespace dropped there).

    Invariant: text == w0 + p0 + w1 + p1 + ... + pn + w(n+1), every w whitespace, after
    removing from each piece the closing fence split_text added at its end and the reopening
    fence line it added at the start of the next piece.
    """
    pos, reopened, cuts = 0, False, []
    for i, piece in enumerate(pieces):
        body = piece
        if reopened:
            first, body = body.split("\n", 1)
            assert FENCE_LINE.match(first), piece[:80]
        stripped = body.lstrip()
        indent = body[: len(body) - len(stripped)]
        start = pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        assert text[start:pos].strip() == ""
        assert text[pos - len(indent) : pos] == indent
        if i:
            cuts.append((pos - len(indent), text[start : pos - len(indent)]))
        if text.startswith(stripped, pos):
            pos, reopened = pos + len(stripped), False
        else:
            assert stripped.endswith("\n```"), (stripped[-80:], text[pos : pos + 80])
            assert text.startswith(stripped[:-4], pos), (stripped[-80:], text[pos : pos + 80])
            pos, reopened = pos + len(stripped) - 4, True
    assert text[pos:].strip() == ""
    return cuts


def test_short_text_is_one_piece_and_blank_text_none() -> None:
    assert split_text("Hello **world**\n", max_bytes=STREAM_CHUNK_BYTES) == ["Hello **world**"]
    assert split_text(" \n\n ", max_bytes=STREAM_CHUNK_BYTES) == []
    with pytest.raises(ValueError):
        split_text("anything", max_bytes=10)


def test_prefers_paragraphs_then_lines_then_sentences_then_spaces() -> None:
    para = "Alpha beta gamma. " * 3
    text = f"{para.strip()}\n\n{para.strip()}\n\n{para.strip()}"
    assert split_text(text, max_bytes=120) == [f"{para.strip()}\n\n{para.strip()}", para.strip()]
    lines = "\n".join(["- one item per line here"] * 6)
    assert split_text(lines, max_bytes=100) == ["\n".join(["- one item per line here"] * 3)] * 2
    sentences = "First sentence is here. Second one follows it. Third closes the paragraph."
    assert split_text(sentences, max_bytes=64) == [
        "First sentence is here. Second one follows it.",
        "Third closes the paragraph.",
    ]
    words = "word " * 30
    pieces = split_text(words, max_bytes=64)
    assert all(p.split(" ") == ["word"] * len(p.split(" ")) for p in pieces)
    assert [utf8(p) for p in pieces] == [59, 59, 29]


def test_long_word_is_cut_only_when_it_cannot_fit() -> None:
    token = "A" * 150
    pieces = split_text(f"key: {token} end", max_bytes=64)
    assert pieces[0] == "key:"
    assert "".join(pieces[1:-1]) + pieces[-1].removesuffix(" end") == token
    assert all(utf8(p) <= 64 for p in pieces)


def test_japanese_and_emoji_are_never_cut_inside_a_character() -> None:
    text = "これは日本語の文章です。絵文字も入ります🎉👍🏽。" * 30 + "👨‍👩‍👧‍👦" * 20
    pieces = split_text(text, max_bytes=200)
    assert all(utf8(p) <= 200 for p in pieces)
    assert "".join(pieces) == text  # no spaces anywhere, so nothing is dropped
    for a, b in itertools.pairwise(pieces):
        assert not (
            unicodedata.combining(b[0])
            or b[0] in "\u200d\ufe0f"
            or "\U0001f3fb" <= b[0] <= "\U0001f3ff"
        )
        assert a[-1] != "\u200d"
    assert all(p.endswith("。") for p in pieces[:5])  # sentence ends are the cut points


def test_code_fence_split_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"    total += item_{i}  # add item {i}" for i in range(12))
    text = f"Here is the loop:\n\n```python\n{code}\n```\n\nThat is all."
    pieces = split_text(text, max_bytes=300)
    assert pieces == [
        "Here is the loop:\n\n```python\n" + "\n".join(code.splitlines()[:7]) + "\n```",
        "```python\n" + "\n".join(code.splitlines()[7:]) + "\n```\n\nThat is all.",
    ]
    reassemble(text, pieces)


def test_cut_prefers_the_edge_of_a_code_block() -> None:
    prose = "This paragraph explains the change in some detail before the code. " * 2
    text = f"{prose.strip()}\n```sh\nmake test\n```\nAfter."
    assert split_text(text, max_bytes=150) == [prose.strip(), "```sh\nmake test\n```\nAfter."]


def test_fifty_kilobyte_answer_splits_into_expected_pieces() -> None:
    paragraph = ("Sophia answers in full sentences. " * 30)[:999].rstrip() + "."
    paragraph = paragraph + "x" * (1000 - utf8(paragraph))
    assert utf8(paragraph) == 1000
    text = "\n\n".join([paragraph] * 50)
    assert 50_000 <= utf8(text) <= 51_000
    # 3 paragraphs + separators = 3,004 bytes fit in 3,500 - 4; 4 (4,006) do not: ceil(50/3).
    stream = split_text(text, max_bytes=STREAM_CHUNK_BYTES)
    assert len(stream) == 17
    assert all(p.count(paragraph) == len(p.split("\n\n")) for p in stream)
    # 10 paragraphs (10,018 bytes) fit in 11,000 - 4, 11 (11,020) do not.
    assert len(split_text(text, max_bytes=MESSAGE_BYTES)) == 5
    reassemble(text, stream)


def test_mrkdwn_links_are_not_split_across_section_blocks() -> None:
    md = " ".join(
        f"See [the design doc number {i}](https://example.com/doc_{i}) now." for i in range(200)
    )
    pieces = split_text(markdown_to_mrkdwn(md), max_bytes=MRKDWN_SECTION_BYTES)
    assert len(pieces) > 1
    for p in pieces:
        assert len(p) <= 3000
        assert p.count("<") == p.count(">") == p.count("|")


# --- property-style: random answers -------------------------------------------------------

WORDS = [
    "the", "model", "answer", "Slack", "**bold**", "`code_span`", "snake_case", "日本語", "テスト",
    "🎉", "👍🏽", "👨‍👩‍👧‍👦", "é", "e\u0301", "naïve", "[link](https://example.com/a_b)", "2 * 3",
    "https://example.com/path_with_underscores?q=1&r=2", "<tag>", "&", "—", "数据", "😀😀😀",
]  # fmt: skip


def random_answer(rng: random.Random) -> str:
    """A plausible model answer: paragraphs, bullets, Japanese, fences, long tokens."""
    blocks = []
    for _ in range(rng.randint(1, 25)):
        kind = rng.random()
        if kind < 0.15:
            lang = rng.choice(["python", "", "ts", "c++"])
            body = "\n".join(
                " " * rng.choice([0, 4, 8]) + " ".join(rng.choices(WORDS, k=rng.randint(1, 8)))
                for _ in range(rng.randint(1, 30))
            )
            blocks.append(f"```{lang}\n{body}\n```")
        elif kind < 0.3:
            blocks.append(
                "\n".join(
                    "- " + " ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(5)
                )
            )
        elif kind < 0.4:
            blocks.append(
                "".join(
                    rng.choices(
                        ["日本語の文章", "です", "。", "、", "🎉", "テスト"], k=rng.randint(5, 200)
                    )
                )
            )
        elif kind < 0.45:
            blocks.append("x" * rng.randint(50, 400))  # e.g. a hash or base64 blob
        else:
            sentences = [
                " ".join(rng.choices(WORDS, k=rng.randint(3, 15))) + "."
                for _ in range(rng.randint(1, 8))
            ]
            blocks.append(" ".join(sentences))
    return rng.choice(["", "\n", "  "]) + "\n\n".join(blocks) + rng.choice(["", "\n", " \n"])


@pytest.mark.parametrize("seed", range(40))
def test_random_answers_split_within_limits_without_losing_content(seed: int) -> None:
    rng = random.Random(seed)
    text = random_answer(rng)
    for max_bytes in (64, 100, 257, 1000, STREAM_CHUNK_BYTES):
        pieces = split_text(text, max_bytes=max_bytes)
        assert pieces, text
        assert all(0 < utf8(p) <= max_bytes for p in pieces)
        assert all(p == p.rstrip() and p.strip() for p in pieces)
        cuts = reassemble(text, pieces)
        # Each piece renders on its own: its code fences are balanced.
        assert all(len(FENCE_LINE.findall(p)) % 2 == 0 for p in pieces)
        # No cut inside a word unless the word (a run without spaces) is too long to fit.
        for pos, gap in cuts:
            if gap:
                continue
            assert pos > 0 and not text[pos - 1].isspace() and not text[pos].isspace()
            if text[pos - 1] in "。、":
                continue
            left = re.search(r"\S*$", text[:pos]).group()
            right = re.match(r"\S*", text[pos:]).group()
            assert utf8(left + right) > max_bytes - 40, (max_bytes, left[-30:], right[:30])
            assert not unicodedata.combining(text[pos]) and text[pos - 1] != "\u200d"


# --- Block Kit and fallback text ----------------------------------------------------------


def test_markdown_blocks_carry_the_whole_answer_within_slack_limits() -> None:
    assert markdown_blocks("**Done.** See `x`.") == [
        {"type": "markdown", "text": "**Done.** See `x`."}
    ]
    answer = "\n\n".join(
        f"## Part {i}\n\n" + "Details about this part of the answer. " * 40 for i in range(40)
    )
    blocks = markdown_blocks(answer)
    assert len(blocks) == 7  # six ~1.6 KB parts fit in 11,000 bytes, seven do not
    for block in blocks:
        assert block["type"] == "markdown"
        assert len(block["text"]) <= 12_000 and utf8(block["text"]) <= MESSAGE_BYTES
        assert block["text"].startswith("## Part")  # cuts land on paragraph boundaries
    reassemble(answer, [b["text"] for b in blocks])


def test_fallback_text_is_mrkdwn_and_short() -> None:
    assert fallback_text("# Hi\n\n**Done** in `2s`.") == "*Hi*\n\n*Done* in `2s`."
    long = "**Summary** " + "the rollout finished without errors and latency stayed flat " * 100
    text = fallback_text(long)
    assert len(text) <= FALLBACK_CHARS and len(text) > FALLBACK_CHARS - 100
    assert text.startswith("*Summary* the rollout") and text.endswith("…")
    assert text[:-1].split(" ")[-1] in long.split(" ")  # ends on a whole word
    code = fallback_text("```\n" + "print('hello world')\n" * 300 + "```")
    assert code.endswith("```\n…") and len(code) <= FALLBACK_CHARS
    assert fallback_text("") == ""
