"""Split repository files into searchable chunks by their structure.

Python is split by its syntax tree (top-level functions and classes, decorators included);
other code by definition-looking lines of its language; Markdown by headings; anything
else in windows of lines. Every chunk keeps its 1-based line range, so answers can cite
`path:line`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_FILE_BYTES = 200_000  # larger files are usually generated or data
WINDOW_LINES = 60  # chunk size where a file has no structure to follow
MAX_CHUNK_LINES = 150  # a longer definition is split into windows of this size

_SKIP_DIRS = {
    "node_modules", "vendor", "third_party", "dist", "build", ".git", "__pycache__", ".venv",
    "venv", "site-packages", ".next", "target", "coverage",
}  # fmt: skip
_SKIP_NAMES = {
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Cargo.lock",
    "go.sum",
    "uv.lock",
}
_BINARY = {
    ".png", ".jpg", ".jpeg", ".gif", ".ico", ".webp", ".pdf", ".zip", ".gz", ".tar", ".jar",
    ".woff", ".woff2", ".ttf", ".otf", ".mp3", ".mp4", ".mov", ".so", ".dylib", ".dll", ".exe",
    ".bin", ".pyc", ".class", ".wasm", ".db", ".sqlite", ".parquet", ".npy", ".pt", ".onnx",
}  # fmt: skip
# Lines that start a definition in common languages (JS/TS, Go, Rust, Java/Kotlin, Ruby, C#, PHP).
_DEFINITION = re.compile(
    r"^\s*(export\s+)?(default\s+)?(async\s+)?(function\b|class\b|interface\b|type\s+\w+\s*=|"
    r"const\s+\w+\s*=\s*(async\s*)?\(|func\b|fn\b|pub\s+(fn|struct|enum|trait)\b|impl\b|"
    r"struct\b|enum\b|trait\b|def\b|module\b|(public|private|protected)\s+[\w<>\[\], ]+\s+\w+\s*\()"
)
_HEADING = re.compile(r"^#{1,6}\s")


@dataclass(frozen=True)
class Chunk:
    """A piece of a file with its line range (1-based, inclusive)."""

    path: str
    start: int
    end: int
    text: str


def should_index(path: str, size: int) -> bool:
    """Whether a file is worth indexing: text, not vendored or generated, not huge."""
    parts = PurePosixPath(path).parts
    if any(part in _SKIP_DIRS for part in parts[:-1]) or parts[-1] in _SKIP_NAMES:
        return False
    if PurePosixPath(path).suffix.lower() in _BINARY or path.endswith(".min.js"):
        return False
    return 0 < size <= MAX_FILE_BYTES


def chunk_file(path: str, text: str) -> list[Chunk]:
    """The chunks of one file, following its structure where it has one."""
    lines = text.splitlines()
    if not lines:
        return []
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".py":
        starts = _python_starts(text)
    elif suffix in (".md", ".markdown", ".rst", ".mdx"):
        starts = [i for i, line in enumerate(lines) if _HEADING.match(line)]
    else:
        starts = [i for i, line in enumerate(lines) if _DEFINITION.match(line)]
    return _chunks(path, lines, starts)


def _python_starts(text: str) -> list[int]:
    """0-based first lines of top-level definitions (decorators included); [] if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    starts = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            starts.append(first - 1)
    return starts


def _chunks(path: str, lines: list[str], starts: list[int]) -> list[Chunk]:
    """Cut at `starts` (the preamble before the first is its own chunk), or in plain windows."""
    if starts:
        bounds = sorted({0, *(s for s in starts if 0 < s < len(lines))})
        step = MAX_CHUNK_LINES  # a long definition is split into windows of this size
    else:
        bounds, step = [0], WINDOW_LINES
    chunks = []
    for a, b in zip(bounds, [*bounds[1:], len(lines)], strict=True):
        for start in range(a, b, step):
            end = min(b, start + step)
            while end > start and not lines[end - 1].strip():
                end -= 1  # cite the last line with content, not trailing blank lines
            body = "\n".join(lines[start:end]).strip()
            if body:
                chunks.append(Chunk(path, start + 1, end, body))
    return chunks
