"""Long generated artefacts (code, CSV, reports in a fenced block) become files, not walls of text.

`FenceFilter` sits between the model's text and the thread: ordinary text passes through as
it streams; a fenced block is held until it closes, then either shown (short) or replaced
by a one-line note while the block is kept for upload with `files_upload_v2` (long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ARTEFACT_CHARS = 2500  # a fenced block longer than this is attached as a file
_EXTENSIONS = {
    "python": "py", "py": "py", "javascript": "js", "js": "js", "typescript": "ts", "ts": "ts",
    "json": "json", "csv": "csv", "tsv": "tsv", "sql": "sql", "yaml": "yaml", "yml": "yaml",
    "bash": "sh", "sh": "sh", "shell": "sh", "go": "go", "rust": "rs", "java": "java",
    "html": "html", "css": "css", "markdown": "md", "md": "md", "xml": "xml", "toml": "toml",
}  # fmt: skip
_OPEN = re.compile(r"(?m)^[ \t]*```([\w+-]*)[^\n]*\n")
_CLOSE = re.compile(r"(?m)^[ \t]*```[ \t]*$\n?")


@dataclass
class Artefact:
    """A block to upload."""

    filename: str
    content: str


@dataclass
class FenceFilter:
    """Feeds streamed text through, holding fenced blocks until they are complete."""

    prefix: str = "sophia"
    artefacts: list[Artefact] = field(default_factory=list)
    _held: str = ""

    def feed(self, delta: str) -> str:
        """Text that may be shown now."""
        self._held += delta
        shown = ""
        while True:
            opening = _OPEN.search(self._held)
            if opening is None:
                # A last line starting with a backtick may be a fence still arriving: hold it
                # until its newline decides.
                last = self._held[self._held.rfind("\n") + 1 :]
                keep = len(last) if last.lstrip(" \t").startswith("`") else 0
                shown += self._held[: len(self._held) - keep]
                self._held = self._held[len(self._held) - keep :]
                return shown
            closing = _CLOSE.search(self._held, opening.end())
            if closing is None:
                shown += self._held[: opening.start()]
                self._held = self._held[opening.start() :]
                return shown
            shown += self._held[: opening.start()] + self._block(opening, closing)
            self._held = self._held[closing.end() :]

    def flush(self) -> str:
        """Whatever is still held at the end (an unclosed block is shown as it is)."""
        held, self._held = self._held, ""
        return held

    def _block(self, opening: re.Match[str], closing: re.Match[str]) -> str:
        body = self._held[opening.end() : closing.start()]
        whole = self._held[opening.start() : closing.end()]
        if len(body) <= ARTEFACT_CHARS:
            return whole
        ext = _EXTENSIONS.get(opening.group(1).lower(), "txt")
        name = f"{self.prefix}-{len(self.artefacts) + 1}.{ext}"
        self.artefacts.append(Artefact(name, body))
        lines = body.count("\n") + 1
        return f"_📎 {name} ({lines:,} lines) is attached below as a file._\n"
