"""Files people share with a question: text, PDFs and images are read, as untrusted data.

Downloads use the bot token (scope `files:read`), stop at `MAX_BYTES`, and recognise the
HTML sign-in page Slack sends instead of the file when the scope is missing.
"""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import aiohttp

MAX_FILES = 5
MAX_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 60_000
_TEXT_SUFFIXES = {
    ".txt", ".md", ".csv", ".tsv", ".json", ".yaml", ".yml", ".xml", ".log", ".py", ".js", ".ts",
    ".go", ".rs", ".java", ".rb", ".sh", ".sql", ".toml", ".ini", ".html", ".css",
}  # fmt: skip
_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


@dataclass(frozen=True)
class Attachment:
    """A file's readable content: text (also from PDFs) or an image as a data URL."""

    name: str
    kind: str  # "text" | "image"
    text: str = ""
    data_url: str = ""


def kind_of(mimetype: str, name: str) -> str | None:
    """What a file is, for reading: text, pdf, image, or None (not readable)."""
    if mimetype in _IMAGES:
        return "image"
    if mimetype == "application/pdf" or name.lower().endswith(".pdf"):
        return "pdf"
    if mimetype.startswith("text/") or PurePosixPath(name.lower()).suffix in _TEXT_SUFFIXES:
        return "text"
    if mimetype in ("application/json", "application/xml", "application/x-yaml"):
        return "text"
    return None


def looks_like_sign_in_page(body: bytes, content_type: str, name: str) -> bool:
    """Slack answers a download without `files:read` with its HTML sign-in page."""
    if name.lower().endswith((".html", ".htm")):
        return False
    head = body.lstrip()[:15].lower()
    return content_type.startswith("text/html") or head.startswith((b"<!doctype html", b"<html"))


def _pdf_text(body: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(body))
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()


async def read_files(
    session: aiohttp.ClientSession, token: str, files: list[dict[str, Any]]
) -> tuple[list[Attachment], list[str]]:
    """Download and read shared files; also the problems, in words a person understands."""
    attachments: list[Attachment] = []
    problems: list[str] = []
    if len(files) > MAX_FILES:
        problems.append(f"I read the first {MAX_FILES} of {len(files)} files.")
    for f in files[:MAX_FILES]:
        name = f.get("name") or f.get("title") or "file"
        kind = kind_of(f.get("mimetype") or "", name)
        url = f.get("url_private_download") or f.get("url_private")
        if kind is None or not url:
            problems.append(
                f"I can't read {name} ({f.get('pretty_type') or f.get('mimetype') or 'unknown type'})."
            )
            continue
        if (f.get("size") or 0) > MAX_BYTES:
            problems.append(
                f"{name} is {f['size'] / 1e6:.1f} MB; I read files up to {MAX_BYTES // 2**20} MB."
            )
            continue
        try:
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                body = await response.content.read(MAX_BYTES + 1)
                content_type = response.headers.get("Content-Type", "")
                status = response.status
        except aiohttp.ClientError:
            problems.append(f"I couldn't download {name}.")
            continue
        if status != 200:
            problems.append(f"I couldn't download {name} (Slack answered {status}).")
        elif len(body) > MAX_BYTES:
            problems.append(
                f"{name} is larger than {MAX_BYTES // 2**20} MB; I read files up to that size."
            )
        elif looks_like_sign_in_page(body, content_type, kind) and not name.lower().endswith(
            (".html", ".htm")
        ):
            problems.append(
                f"Slack sent me a sign-in page instead of {name}: I need the `files:read` scope "
                "(it is in manifest.yml) — an admin must add it and reinstall the app."
            )
        elif kind == "image":
            mime = f.get("mimetype") or "image/png"
            attachments.append(
                Attachment(
                    name, "image", data_url=f"data:{mime};base64,{base64.b64encode(body).decode()}"
                )
            )
        else:
            try:
                if kind == "pdf":
                    text = await asyncio.to_thread(_pdf_text, body)
                else:
                    text = body.decode("utf-8", errors="replace")
            except Exception:  # a damaged or encrypted PDF must not cost the answer
                problems.append(f"I couldn't read {name} (a damaged or protected PDF?).")
                continue
            if not text.strip():
                problems.append(f"{name} has no text I can read (a scanned PDF?).")
                continue
            if len(text) > MAX_TEXT_CHARS:
                text = (
                    text[:MAX_TEXT_CHARS]
                    + f"\n[… cut: {len(text) - MAX_TEXT_CHARS:,} more characters]"
                )
            attachments.append(Attachment(name, "text", text=text))
    return attachments, problems
