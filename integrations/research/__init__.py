"""Web research for Sophia: search providers with fallback, careful page reading, a shared cache.

`Research` implements `bot.core.ports.WebResearch`:

    research = research_from_settings(settings, store)   # None when no provider has a key
    results = await research.search("qdrant edge release", limit=8)
    page = await research.fetch(results.hits[0].url)
    await research.close()

Providers (providers.py) are tried in `SOPHIA_RESEARCH_PROVIDERS` order, else every one with
a key in the table order (serper, brave, tavily, exa, serpapi). Pages (fetch.py) are read
directly under the SSRF rule (guard.py), through BrightData/ZenRows when a site refuses.
Search results and pages are cached in the database for `SOPHIA_RESEARCH_CACHE_TTL`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import aiohttp

from bot.core.errors import ResearchError
from bot.core.ports import SearchHit, SearchResults, WebPage
from bot.core.research import canonical_url, dedupe
from bot.registry import CheckResult, DoctorCheck, Registry
from bot.settings import Settings
from integrations.research.fetch import PageFetcher
from integrations.research.providers import (
    KEY_VARIABLES,
    NAMES,
    TABLE,
    Provider,
    ProviderFailed,
    configured,
)

__all__ = ["Research", "canonical_url", "dedupe", "register_checks", "research_from_settings"]

log = logging.getLogger(__name__)

SEARCH_CACHE = "research.search"
PAGE_CACHE = "research.page"


def _explain(provider: Provider, outcome: str, timeout_s: float) -> str:
    """A `tried` outcome in words for the person who asked."""
    if outcome == "no key":
        return f"has no key (set {provider.key_variable})"
    if outcome == "timed out":
        return f"did not answer within {timeout_s:g} s"
    if outcome == "no results":
        return "found nothing"
    if outcome == "invalid JSON":
        return "sent an answer that was not JSON"
    if outcome == "unreachable":
        return "could not be reached"
    if outcome in ("HTTP 401", "HTTP 403"):
        return f"refused the key ({outcome}; check {provider.key_variable})"
    if outcome == "HTTP 429":
        return "is over its rate limit or quota (HTTP 429)"
    if outcome.startswith("HTTP 5"):
        return f"had a server error ({outcome})"
    if outcome.startswith("HTTP "):  # Brave answers a bad key with 422
        return f"rejected the request ({outcome}; check {provider.key_variable})"
    return outcome


class Research:
    """Search with fallback and page fetching, built from settings; implements `WebResearch`."""

    def __init__(
        self,
        settings: Settings,
        store: Any = None,  # bot.store.Store (kv_get/kv_put) for the cache; None: no cache
        session: aiohttp.ClientSession
        | None = None,  # shared session; made (and closed) here if None
        *,
        provider_timeout_s: float = 10.0,
        fetcher: PageFetcher | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._session = session
        self._own_session = session is None
        self.provider_timeout_s = provider_timeout_s
        self._fetcher = fetcher
        self._fetch_slots = asyncio.Semaphore(max(1, settings.research_concurrency))
        everything = configured(settings)
        self._explicit = bool(settings.research_providers)
        names = [n.strip().lower() for n in settings.research_providers] or list(NAMES)
        self._order: list[tuple[str, Provider | None]] = [(n, everything.get(n)) for n in names]
        for name, provider in self._order:
            if provider is None:
                log.warning("unknown research provider", extra={"provider": name})

    # -- WebResearch ----------------------------------------------------------------------
    @property
    def providers(self) -> list[str]:
        """The providers that will be tried, in order (those with a key)."""
        return [name for name, p in self._order if p is not None and p.key]

    async def search(self, query: str, *, limit: int = 8) -> SearchResults:
        """Try providers in order until one finds something; raises `ResearchError`."""
        query = " ".join(query.split())
        if not query:
            raise ResearchError("There is nothing to search for.")
        if not self.providers:
            raise ResearchError(
                "No search provider is configured. Set at least one of "
                + ", ".join(KEY_VARIABLES)
                + "."
            )
        key = self._search_key(query, limit)
        if (cached := await self._cache_get(SEARCH_CACHE, key)) is not None:
            hits = [SearchHit(**hit) for hit in cached["hits"]]
            tried = [tuple(t) for t in cached["tried"]]
            return SearchResults(hits, cached["provider"], tried, cached=True)  # type: ignore[arg-type]
        tried: list[tuple[str, str]] = []
        failures: list[str] = []
        session = self._shared_session()
        for name, provider in self._order:
            if provider is None:
                tried.append((name, "unknown provider"))
                failures.append(f"{name}: not a provider Sophia knows ({', '.join(NAMES)})")
                continue
            if not provider.key:
                if self._explicit:  # listed on purpose, so worth saying why it was skipped
                    tried.append((name, "no key"))
                    failures.append(f"{provider.label} {_explain(provider, 'no key', 0)}")
                continue
            hits, outcome = await attempt(provider, session, query, limit, self.provider_timeout_s)
            if hits is not None:
                tried.append((name, "ok"))
                hits = dedupe(hits)[:limit]
                await self._cache_put(
                    SEARCH_CACHE,
                    key,
                    {"hits": [asdict(h) for h in hits], "provider": name, "tried": tried},
                )
                return SearchResults(hits, name, tried)
            tried.append((name, outcome))
            failures.append(
                f"{provider.label} {_explain(provider, outcome, self.provider_timeout_s)}"
            )
            log.info("search provider failed", extra={"provider": name, "outcome": outcome})
        raise ResearchError("No search provider answered: " + "; ".join(failures) + ".")

    async def fetch(self, url: str) -> WebPage:
        """Read one page (cached); raises `FetchError` with a plain reason."""
        key = canonical_url(url)
        if (cached := await self._cache_get(PAGE_CACHE, key)) is not None:
            return WebPage(**{**cached, "url": url.strip(), "cached": True})
        async with self._fetch_slots:
            page = await self._page_fetcher().fetch(url)
        await self._cache_put(PAGE_CACHE, key, {**asdict(page), "cached": False})
        return page

    # -- lifecycle ------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the page fetcher's connections, and the session if it was made here."""
        if self._fetcher is not None:
            await self._fetcher.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _shared_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False)
            self._own_session = True
        return self._session

    def _page_fetcher(self) -> PageFetcher:
        if self._fetcher is None:
            self._fetcher = PageFetcher(self._settings, self._shared_session())
        return self._fetcher

    # -- cache ----------------------------------------------------------------------------
    def _search_key(self, query: str, limit: int) -> str:
        # The provider order is part of the key: a changed configuration searches afresh.
        raw = json.dumps([self.providers, limit, query.casefold()])
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def _ttl_s(self) -> float:
        return self._settings.research_cache_ttl.total_seconds()

    # The cache only saves time: a database hiccup must not fail the research itself.
    async def _cache_get(self, namespace: str, key: str) -> Any | None:
        if self._store is None or self._ttl_s <= 0:
            return None
        try:
            return await self._store.kv_get(namespace, key)
        except Exception:
            log.warning("research cache unreadable", extra={"namespace": namespace}, exc_info=True)
            return None

    async def _cache_put(self, namespace: str, key: str, value: Any) -> None:
        if self._store is None or self._ttl_s <= 0:
            return
        try:
            await self._store.kv_put(namespace, key, value, ttl_s=self._ttl_s)
        except Exception:
            log.warning("research cache not written", extra={"namespace": namespace}, exc_info=True)


def research_from_settings(settings: Settings, store: Any = None) -> Research | None:
    """Research with every configured provider, or None when no provider has a key."""
    research = Research(settings, store)
    return research if research.providers else None


async def attempt(
    provider: Provider, session: aiohttp.ClientSession, query: str, limit: int, timeout_s: float
) -> tuple[list[SearchHit] | None, str]:
    """One provider, once: (hits, "ok"), or (None, what went wrong in a few words)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await provider.search(session, query, limit), "ok"
    except ProviderFailed as exc:
        return None, exc.outcome
    except TimeoutError:
        return None, "timed out"
    except aiohttp.ClientError:
        return None, "unreachable"


# -- sophia doctor --------------------------------------------------------------------------
def _check_for(name: str) -> Callable[[Settings, aiohttp.ClientSession], Awaitable[CheckResult]]:
    async def run(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
        provider = configured(settings)[name]
        hits, outcome = await attempt(provider, session, "Sophia web research check", 1, 15)
        if hits is not None:
            return CheckResult(True, f"answered from {provider.base_url} ({len(hits)} result)")
        return CheckResult(
            False,
            f"{provider.label} {_explain(provider, outcome, 15)}",
            f"check {provider.key_variable} and {provider.key_variable.replace('KEY', 'URL')}",
        )

    return run


def register_checks(registry: Registry) -> None:
    """One doctor check per search provider: a one-result query."""
    for name, label, env, _ in TABLE:
        registry.add_check(
            DoctorCheck(
                f"Search: {label}",
                lambda s, name=name: getattr(s, f"{name}_api_key") is not None,
                _check_for(name),
                missing=f"{env}_API_KEY",
            )
        )
