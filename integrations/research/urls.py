"""Canonical URLs, so one page found twice (by two providers, with tracking tags) counts once."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.core.ports import SearchHit

# Click-tracking parameters that never change what a page says.
_TRACKING = {"gclid", "fbclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """`https://WWW.Example.com/a/?utm_source=x#top` → `https://example.com/a`."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".").removeprefix("www.")
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in _TRACKING
    ]
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def dedupe(hits: Iterable[SearchHit]) -> list[SearchHit]:
    """Keep the first hit for each canonical URL, in order."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        key = canonical_url(hit.url)
        if key not in seen:
            seen.add(key)
            kept.append(hit)
    return kept
