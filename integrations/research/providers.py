"""One small adapter per search provider, each over its documented HTTP API.

Every adapter takes the shared aiohttp session, the provider's base URL (DESIGN.md §7: without
the path) and key, and returns normalised `SearchHit`s — or raises `ProviderFailed` with a
short outcome ("HTTP 500", "invalid JSON", "no results", …) that `tried` records.

- Serper   POST {base}/search            X-API-KEY             {"q", "num"}       → organic[]
- Brave    GET  {base}/res/v1/web/search X-Subscription-Token  ?q=&count=         → web.results[]
- Tavily   POST {base}/search            Authorization: Bearer {"query", "max_results"} → results[]
- Exa      POST {base}/search            x-api-key             {"query", "numResults", "contents"} → results[]
- SerpAPI  GET  {base}/search.json       ?api_key=             ?engine=google&q=&num= → organic_results[]
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot.core.ports import SearchHit
from bot.settings import Settings


class ProviderFailed(Exception):
    """A provider did not answer usefully; `outcome` is short and safe to show."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


Adapter = Callable[[aiohttp.ClientSession, str, str, str, int], Awaitable[list[SearchHit]]]


@dataclass(frozen=True)
class Provider:
    """A search provider as configured: who, where, with which key."""

    name: str  # "serper"
    label: str  # "Serper", for people
    key_variable: str  # "SERPER_API_KEY"
    base_url: str
    key: str | None
    adapter: Adapter

    async def search(
        self, session: aiohttp.ClientSession, query: str, limit: int
    ) -> list[SearchHit]:
        """Ask this provider; raises `ProviderFailed`."""
        assert self.key, "search() needs a key"
        return await self.adapter(session, self.base_url.rstrip("/"), self.key, query, limit)


async def _json(response: aiohttp.ClientResponse) -> Any:
    """The JSON body of a successful answer; HTTP errors and non-JSON become `ProviderFailed`."""
    if response.status >= 400:
        raise ProviderFailed(f"HTTP {response.status}")
    try:
        return json.loads(await response.read())
    except (ValueError, UnicodeDecodeError):
        raise ProviderFailed("invalid JSON") from None


def _items(data: Any, *path: str) -> list[dict[str, Any]]:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return [item for item in data or [] if isinstance(item, dict)] if isinstance(data, list) else []


def _hit(provider: str, title: Any, url: Any, snippet: Any, published: Any) -> SearchHit | None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return SearchHit(
        title=" ".join(str(title or url).split()),
        url=url.strip(),
        snippet=" ".join(str(snippet or "").split()),
        provider=provider,
        published=iso_date(published),
    )


def _hits(provider: str, rows: list[tuple[Any, Any, Any, Any]]) -> list[SearchHit]:
    hits = [hit for row in rows if (hit := _hit(provider, *row))]
    if not hits:
        raise ProviderFailed("no results")
    return hits


async def serper(
    session: aiohttp.ClientSession, base: str, key: str, query: str, limit: int
) -> list[SearchHit]:
    """https://serper.dev — Google results."""
    headers = {"X-API-KEY": key, "Content-Type": "application/json"}
    body = {"q": query, "num": limit}
    async with session.post(f"{base}/search", json=body, headers=headers) as response:
        data = await _json(response)
    rows = _items(data, "organic")
    return _hits(
        "serper", [(r.get("title"), r.get("link"), r.get("snippet"), r.get("date")) for r in rows]
    )


async def brave(
    session: aiohttp.ClientSession, base: str, key: str, query: str, limit: int
) -> list[SearchHit]:
    """https://api-dashboard.search.brave.com — Brave's own index; `count` is at most 20."""
    headers = {"X-Subscription-Token": key, "Accept": "application/json"}
    params = {"q": query, "count": str(min(limit, 20))}
    async with session.get(f"{base}/res/v1/web/search", params=params, headers=headers) as response:
        data = await _json(response)
    rows = _items(data, "web", "results")
    return _hits(
        "brave",
        [
            (r.get("title"), r.get("url"), r.get("description"), r.get("page_age") or r.get("age"))
            for r in rows
        ],
    )


async def tavily(
    session: aiohttp.ClientSession, base: str, key: str, query: str, limit: int
) -> list[SearchHit]:
    """https://docs.tavily.com — the key goes in a Bearer header (older clients sent `api_key`)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = {"query": query, "max_results": min(limit, 20), "search_depth": "basic"}
    async with session.post(f"{base}/search", json=body, headers=headers) as response:
        data = await _json(response)
    rows = _items(data, "results")
    return _hits(
        "tavily",
        [(r.get("title"), r.get("url"), r.get("content"), r.get("published_date")) for r in rows],
    )


def _exa_snippet(row: dict[str, Any]) -> str:
    highlights = row.get("highlights")
    if isinstance(highlights, list) and highlights:
        return " … ".join(str(h) for h in highlights)
    return str(row.get("summary") or row.get("text") or "")[:1000]


async def exa(
    session: aiohttp.ClientSession, base: str, key: str, query: str, limit: int
) -> list[SearchHit]:
    """https://exa.ai/docs/reference/search — highlights make the snippets."""
    headers = {"x-api-key": key, "Content-Type": "application/json"}
    body = {"query": query, "numResults": limit, "contents": {"highlights": True}}
    async with session.post(f"{base}/search", json=body, headers=headers) as response:
        data = await _json(response)
    rows = _items(data, "results")
    return _hits(
        "exa",
        [(r.get("title"), r.get("url"), _exa_snippet(r), r.get("publishedDate")) for r in rows],
    )


async def serpapi(
    session: aiohttp.ClientSession, base: str, key: str, query: str, limit: int
) -> list[SearchHit]:
    """https://serpapi.com/search-api — the key is a query parameter, so URLs are never logged."""
    params = {"engine": "google", "q": query, "num": str(limit), "api_key": key}
    async with session.get(f"{base}/search.json", params=params) as response:
        data = await _json(response)
    rows = _items(data, "organic_results")
    if not rows and isinstance(data, dict) and data.get("error"):
        # SerpAPI answers 200 with {"error": "Google hasn't returned any results …"} when empty.
        raise ProviderFailed("no results")
    return _hits(
        "serpapi",
        [(r.get("title"), r.get("link"), r.get("snippet"), r.get("date")) for r in rows],
    )


# Table order is the default order (DESIGN.md §2).
TABLE: tuple[tuple[str, str, str, Adapter], ...] = (
    ("serper", "Serper", "SERPER", serper),
    ("brave", "Brave Search", "BRAVE", brave),
    ("tavily", "Tavily", "TAVILY", tavily),
    ("exa", "Exa", "EXA", exa),
    ("serpapi", "SerpAPI", "SERPAPI", serpapi),
)
NAMES = tuple(name for name, *_ in TABLE)
KEY_VARIABLES = tuple(f"{env}_API_KEY" for _, _, env, _ in TABLE)


def configured(settings: Settings) -> dict[str, Provider]:
    """Every known provider with its settings, keyed by name (key None when unset)."""
    providers = {}
    for name, label, env, adapter in TABLE:
        secret = getattr(settings, f"{name}_api_key")
        providers[name] = Provider(
            name=name,
            label=label,
            key_variable=f"{env}_API_KEY",
            base_url=getattr(settings, f"{name}_api_url"),
            key=secret.get_secret_value() if secret is not None else None,
            adapter=adapter,
        )
    return providers


# -- dates --------------------------------------------------------------------------------
_RELATIVE = re.compile(r"^(\d+)\s+(minute|hour|day|week|month|year)s?\s+ago$", re.I)
_UNIT_DAYS = {"minute": 1 / 1440, "hour": 1 / 24, "day": 1, "week": 7, "month": 30, "year": 365}
_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y", "%Y-%m-%d")


def iso_date(value: Any, *, now: datetime | None = None) -> str | None:
    """A provider's date ("2024-01-05T00:00:00Z", "Jan 5, 2024", "3 days ago") as YYYY-MM-DD."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    if match := _RELATIVE.match(text):
        days = int(match.group(1)) * _UNIT_DAYS[match.group(2).lower()]
        return ((now or datetime.now(UTC)) - timedelta(days=days)).date().isoformat()
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        return parsedate_to_datetime(text).date().isoformat()
    except (TypeError, ValueError):
        return None
