"""Readable text out of fetched bytes: HTML (trafilatura), plain text, PDF (pypdf).

These are CPU work on untrusted input; callers run them in a thread.
"""

from __future__ import annotations

import io
import re

import lxml.etree
import lxml.html

from bot.core.errors import FetchError

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
PDF_TYPES = frozenset({"application/pdf"})
READABLE_TYPES = HTML_TYPES | TEXT_TYPES | PDF_TYPES

# What anti-bot walls say instead of the page (Cloudflare, DataDome, PerimeterX, Google).
# Widget names alone (g-recaptcha, turnstile) are not enough: comment forms carry them too.
_CHALLENGE = re.compile(
    r"verify (?:that )?you are (?:a )?human|are you a robot|checking your browser|"
    r"just a moment\.\.\.|attention required! \| cloudflare|cf-chl-|captcha-delivery\.com|"
    r"px-captcha|unusual traffic from your computer|please enable cookies and javascript",
    re.I,
)


def media_type(content_type: str | None) -> str:
    """`text/html; charset=utf-8` → `text/html` (empty when missing)."""
    return (content_type or "").split(";")[0].strip().lower()


def charset(content_type: str | None) -> str | None:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def is_challenge(body: bytes) -> bool:
    """Whether an HTML answer is a captcha / "verify you are human" wall rather than the page.

    Only short pages count: an article *about* captchas is long and still worth reading.
    """
    import trafilatura  # loaded when a page is first read, not at start-up

    head = body[:300_000].decode("utf-8", "replace")
    if not _CHALLENGE.search(head):
        return False
    return len(trafilatura.baseline(body[:300_000])[1]) < 1500


def extract(body: bytes, content_type: str | None, url: str) -> tuple[str, str]:
    """(title, text) of a page; raises `FetchError` when nothing readable comes out."""
    kind = media_type(content_type) or "text/html"
    if kind in PDF_TYPES:
        return _pdf(body)
    if kind in TEXT_TYPES:
        text = body.decode(charset(content_type) or "utf-8", "replace").strip()
        return "", text
    return _html(body, url)


def _html(body: bytes, url: str) -> tuple[str, str]:
    import trafilatura

    # Metadata extraction (dates, authors) costs ~5× the text itself; only the title is needed.
    doc = trafilatura.bare_extraction(
        body, url=url, with_metadata=False, include_comments=False, include_tables=True
    )
    title = _title(body)
    text = (getattr(doc, "text", None) or "").strip()
    if not text:
        # Too little structure for the main-content extractor (a short page): take all text.
        text = trafilatura.baseline(body)[1].strip()
    if not text:
        raise FetchError("The page has no readable text.")
    return title, text


def _title(body: bytes) -> str:
    """The document's <title> (or og:title), whitespace tidied."""
    try:
        tree = lxml.html.fromstring(body[:300_000])
    except (ValueError, lxml.etree.ParserError):
        return ""
    title = tree.findtext(".//title") or ""
    if not title.strip():
        og = tree.xpath('//meta[@property="og:title"]/@content')
        title = og[0] if og else ""
    return " ".join(title.split())


def _pdf(body: bytes) -> tuple[str, str]:
    from pypdf import PdfReader  # ~90 ms to import; only PDFs need it

    try:
        reader = PdfReader(io.BytesIO(body))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:  # pypdf raises many kinds on hostile or truncated files
        raise FetchError("The PDF could not be read (damaged, encrypted or cut short).") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise FetchError("The PDF has no text layer (it may be scanned images).")
    return title, text
