"""Apply a unified diff to one file's text, strictly: a hunk that does not match is an error.

Context and removed lines must equal the file's lines (line endings aside) at the line the
hunk header states, give or take `OFFSET` lines as GNU `patch` allows; content is never
fuzzed. The file keeps its own line endings (CRLF stays CRLF). Example::

    apply_unified_diff("a\\nb\\n", "--- a/f\\n+++ b/f\\n@@ -1,2 +1,2 @@\\n a\\n-b\\n+c\\n")
    # -> "a\\nc\\n"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.core.errors import SophiaError

OFFSET = 3  # lines a hunk may have moved from its stated position, as `patch` allows
DEV_NULL = "/dev/null"
_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(SophiaError):
    """The diff is malformed or does not match the file; the message names the file and hunk."""


@dataclass
class HunkLine:
    """One line of a hunk: `kind` is " " (context), "-" (removed) or "+" (added)."""

    kind: str
    text: str
    no_newline: bool = False  # followed by "\ No newline at end of file"


@dataclass
class Hunk:
    """One `@@ -a,b +c,d @@` section."""

    header: str
    old_start: int
    old_count: int
    lines: list[HunkLine] = field(default_factory=list)

    @property
    def old(self) -> list[HunkLine]:
        """The lines the file must have where the hunk applies."""
        return [line for line in self.lines if line.kind != "+"]


@dataclass
class FilePatch:
    """A parsed diff of one file; a None path means /dev/null (created or deleted)."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk]
    has_header: bool = False  # whether ---/+++ lines were present

    @property
    def creates(self) -> bool:
        """The diff creates the file (`--- /dev/null`)."""
        return self.has_header and self.old_path is None

    @property
    def deletes(self) -> bool:
        """The diff deletes the file (`+++ /dev/null`)."""
        return self.has_header and self.new_path is None


def parse_patch(diff: str, *, path: str | None = None) -> FilePatch:
    """Parse a unified diff of one file; `path` names it in errors."""
    lines = [line.removesuffix("\r") for line in diff.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    old_path: str | None = None
    new_path: str | None = None
    has_header = False
    hunks: list[Hunk] = []
    name = path or "the file"
    i = 0
    while i < len(lines):
        line = lines[i]
        is_header = line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1][:4] == "+++ "
        if hunks and (is_header or line.startswith("diff --git ")):
            raise PatchError(f"{name}: the diff changes more than one file; send one per file.")
        if is_header:
            old_path, new_path = _header_path(line), _header_path(lines[i + 1])
            has_header = True
            name = path or new_path or old_path or name
            i += 2
        elif line.startswith("@@"):
            hunk, i = _read_hunk(lines, i, name, len(hunks) + 1)
            hunks.append(hunk)
        elif hunks and line.strip() and not line.startswith("\\"):
            raise PatchError(
                f"{name}: hunk {len(hunks)} ({hunks[-1].header}) is longer than its header says."
            )
        else:
            i += 1  # preamble (diff --git, index, mode lines) or blank lines between hunks
    if not hunks:
        raise PatchError(f"{name}: the diff has no hunks (no `@@ -a,b +c,d @@` lines).")
    return FilePatch(old_path, new_path, hunks, has_header)


def apply_unified_diff(original: str, diff: str, *, path: str | None = None) -> str:
    """`original` with `diff` applied; raises `PatchError` if any hunk does not match exactly."""
    patch = parse_patch(diff, path=path)
    name = path or patch.new_path or patch.old_path or "the file"
    if path and patch.has_header:
        for raw in (patch.old_path, patch.new_path):
            if raw is not None and raw not in (path, f"a/{path}", f"b/{path}"):
                raise PatchError(f"{path}: the diff is for `{raw}`, not for this file.")
    if patch.creates and original:
        raise PatchError(f"{name}: the diff creates the file, but it already exists.")
    source = _split(original)
    eol = "\r\n" if sum(e == "\r\n" for _, e in source) * 2 > len(source) else "\n"
    out: list[tuple[str, str]] = []
    pos = shift = 0  # next unread source line; how far the previous hunk had moved
    for number, hunk in enumerate(patch.hunks, 1):
        stated = hunk.old_start - 1 if hunk.old_count else hunk.old_start
        at = _find(source, hunk.old, stated + shift, pos)
        if at is None:
            raise PatchError(_mismatch(name, number, hunk, source, stated + shift))
        shift = at - stated
        out.extend(source[pos:at])
        for line in hunk.lines:
            if line.kind == " ":
                text, ending = source[at]
                out.append((text, "" if line.no_newline else ending))
            elif line.kind == "+":
                out.append((line.text, "" if line.no_newline else eol))
            at += line.kind != "+"
        pos = at
    out.extend(source[pos:])
    if patch.deletes:
        if out:
            raise PatchError(f"{name}: the diff deletes the file but leaves {len(out)} lines.")
        return ""
    # A line that had no newline (the old last line) gets one when lines now follow it.
    last = len(out) - 1
    return "".join(
        text + (ending if ending or k == last else eol) for k, (text, ending) in enumerate(out)
    )


def _header_path(line: str) -> str | None:
    raw = line[4:].split("\t", 1)[0].strip()
    if len(raw) > 1 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    return None if raw == DEV_NULL else raw


def _read_hunk(lines: list[str], i: int, name: str, number: int) -> tuple[Hunk, int]:
    """Read the hunk whose header is `lines[i]`; returns it and the index after it."""
    header = lines[i]
    match = _HUNK.match(header)
    if match is None:
        raise PatchError(
            f"{name}: hunk {number} has a malformed header `{header[:60]}`; "
            "expected `@@ -a,b +c,d @@`."
        )
    old_count = int(match[2]) if match[2] is not None else 1
    new_count = int(match[4]) if match[4] is not None else 1
    hunk = Hunk(match[0], int(match[1]), old_count)
    old_left, new_left = old_count, new_count
    i += 1
    while old_left > 0 or new_left > 0:
        line = lines[i] if i < len(lines) else None
        if line is not None and line.startswith("\\") and hunk.lines:
            hunk.lines[-1].no_newline = True
            i += 1
            continue
        if line is None or (line and line[0] not in " -+"):
            raise PatchError(f"{name}: hunk {number} ({hunk.header}) ends before its header says.")
        kind, text = (
            (line[0], line[1:]) if line else (" ", "")
        )  # a blank context line lost its space
        old_left -= kind != "+"
        new_left -= kind != "-"
        if old_left < 0 or new_left < 0:
            raise PatchError(
                f"{name}: hunk {number} ({hunk.header}) does not match its line counts."
            )
        hunk.lines.append(HunkLine(kind, text))
        i += 1
    while i < len(lines) and lines[i].startswith("\\") and hunk.lines:
        hunk.lines[-1].no_newline = True
        i += 1
    return hunk, i


def _split(text: str) -> list[tuple[str, str]]:
    """Lines as (text, ending) with ending "\\n", "\\r\\n" or "" (a last line without one)."""
    parts = text.split("\n")
    lines = [(p[:-1], "\r\n") if p.endswith("\r") else (p, "\n") for p in parts[:-1]]
    return [*lines, (parts[-1], "")] if parts[-1] else lines


def _matches(source: list[tuple[str, str]], at: int, old: list[HunkLine]) -> bool:
    for k, line in enumerate(old):
        text, ending = source[at + k]
        if text != line.text or (line.no_newline and (ending or at + k != len(source) - 1)):
            return False
    return True


def _find(
    source: list[tuple[str, str]], old: list[HunkLine], expected: int, floor: int
) -> int | None:
    """Where the hunk's old lines sit: at `expected`, else the nearest within `OFFSET` lines."""
    for delta in (0, *(d for k in range(1, OFFSET + 1) for d in (-k, k))):
        at = expected + delta
        if floor <= at and at + len(old) <= len(source) and _matches(source, at, old):
            return at
    return None


def _mismatch(name: str, number: int, hunk: Hunk, source: list[tuple[str, str]], at: int) -> str:
    """Why hunk `number` does not apply, naming the first line that differs where it should."""
    where = f"{name}: hunk {number} ({hunk.header}) does not apply"
    at = max(at, 0)
    for k, line in enumerate(hunk.old):
        if at + k >= len(source):
            return f"{where}: the file has only {len(source)} lines."
        text = source[at + k][0]
        if text != line.text:
            return f"{where}: line {at + k + 1} should read `{_short(line.text)}` but reads `{_short(text)}`."
        if line.no_newline and (source[at + k][1] or at + k != len(source) - 1):
            return f"{where}: line {at + k + 1} is not the file's last line without a newline."
    return f"{where}: it overlaps the hunk before it."


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
