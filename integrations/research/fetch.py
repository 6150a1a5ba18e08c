"""Read one web page: a careful direct fetch, then unblockers when the site refuses.

Direct fetches go through their own aiohttp session whose connector resolves names with
`GuardedResolver` (SSRF rule, see guard.py); redirects are followed by hand so every hop is
checked again. A site that answers 403/429 or a captcha wall is retried through BrightData's
Web Unlocker, then ZenRows, when their keys are set; `WebPage.via` says which one worked.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from bot.core.errors import FetchError
from bot.core.ports import WebPage
from bot.settings import Settings
from integrations.research.extract import (
    HTML_TYPES,
    PDF_TYPES,
    READABLE_TYPES,
    extract,
    is_challenge,
    media_type,
)
from integrations.research.guard import BlockedAddress, GuardedResolver, refusal_for_url

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "User-Agent": "Mozilla/5.0 (compatible; Sophia/0.1; research assistant)",
    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/pdf;q=0.8,*/*;q=0.1",
    "Accept-Language": "en;q=1.0, *;q=0.5",
}


@dataclass(frozen=True)
class _Raw:
    final_url: str
    content_type: str
    body: bytes
    truncated: bool  # the body was cut at the byte limit


class _Refused(Exception):
    """The site would not show the page to a bot (403, 429, captcha); an unblocker may help."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason


class _UnblockFailed(Exception):
    """One unblocker did not deliver the page; the message is short and plain."""


class _NotReadable(Exception):
    """The answer is not something Sophia reads (type, size); the message is plain."""


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the (decompressed) body, and whether there was more."""
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(65_536):
        room = limit - len(buffer)
        if len(chunk) > room:
            buffer += chunk[:room]
            return bytes(buffer), True
        buffer += chunk
    return bytes(buffer), False


class PageFetcher:
    """Fetches and extracts pages; `close()` when done."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        # 2 MB covers nearly every article page; more is usually a dump, not prose.
        max_bytes: int = 2_000_000,
        # About 10k tokens: enough to read an article, small enough to cite from several.
        max_chars: int = 40_000,
        timeout_s: float = 15.0,
        # Unblockers run headless browsers behind proxies; they are slow by nature.
        unblocker_timeout_s: float = 60.0,
        max_redirects: int = 5,
        resolver: AbstractResolver | None = None,  # DNS seam; the SSRF guard wraps it
    ) -> None:
        self._settings = settings
        self._unblock_session = session  # the shared session: unblockers are operator-chosen
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.timeout_s = timeout_s
        self.unblocker_timeout_s = unblocker_timeout_s
        self.max_redirects = max_redirects
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._guard: GuardedResolver | None = None

    @property
    def allow_private(self) -> bool:
        return self._settings.research_allow_private

    def _direct_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._guard = GuardedResolver(allow_private=self.allow_private, inner=self._resolver)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._guard, limit=20),
                headers=_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing carries from one site to the next
                trust_env=False,  # a proxy would connect on our behalf, past the guard
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._guard is not None:  # a resolver passed in is not closed by its connector
            await self._guard.close()
            self._guard = None

    async def fetch(self, url: str) -> WebPage:
        """Fetch `url` and extract its readable text; raises `FetchError` in plain words."""
        url = url.strip()
        if reason := refusal_for_url(url, allow_private=self.allow_private):
            raise FetchError(f"Sophia does not read that link: {reason}.")
        via = "direct"
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self._direct(url)
        except _Refused as refused:
            raw, via = await self._unblock(refused)
        except TimeoutError:
            raise FetchError(
                f"{_host(url)} took longer than {self.timeout_s:g} s to send the page."
            ) from None
        title, text = await asyncio.to_thread(extract, raw.body, raw.content_type, raw.final_url)
        truncated = raw.truncated or len(text) > self.max_chars
        return WebPage(
            url=url,
            final_url=raw.final_url,
            title=title or _host(raw.final_url),
            text=text[: self.max_chars],
            via=via,
            truncated=truncated,
        )

    # -- direct ---------------------------------------------------------------------------
    async def _direct(self, url: str) -> _Raw:
        session = self._direct_session()
        current = url
        for hop in range(self.max_redirects + 1):
            if hop and (reason := refusal_for_url(current, allow_private=self.allow_private)):
                # The host only: a redirect's query string may carry someone's token.
                raise FetchError(
                    f"The link redirects to {_host(current)}, which Sophia does not read: {reason}."
                )
            try:
                async with session.get(current, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError(
                                f"{_host(current)} redirected without saying where to."
                            )
                        current = urljoin(current, location)
                        continue
                    return await self._accept(current, response)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    raise FetchError(f"Sophia does not read that link: {exc.os_error}.") from None
                raise FetchError(f"Could not connect to {_host(current)}.") from None
            except aiohttp.InvalidURL:
                raise FetchError(f"{current} is not a valid link.") from None
            except aiohttp.ClientError:
                raise FetchError(f"{_host(current)} broke off while sending the page.") from None
        raise FetchError(
            f"The link kept redirecting (more than {self.max_redirects} times); Sophia gave up."
        )

    async def _accept(self, url: str, response: aiohttp.ClientResponse) -> _Raw:
        """The page, or why not: refusals (unblockers may help) and plain failures."""
        status = response.status
        if status in (403, 429):
            raise _Refused(url, f"HTTP {status}")
        if status == 503 and response.headers.get("cf-mitigated", "").lower() == "challenge":
            raise _Refused(url, "a Cloudflare challenge")
        if status >= 400:
            body, _ = await _read_limited(response, 300_000)
            kind = media_type(response.headers.get("Content-Type"))
            if kind in HTML_TYPES and await asyncio.to_thread(is_challenge, body):
                raise _Refused(url, "a captcha page")
            raise FetchError(f"{_host(url)} answered HTTP {status} instead of the page.")
        try:
            raw = await self._read(url, response)
        except _NotReadable as exc:
            raise FetchError(f"Sophia cannot read {_host(url)}: {exc}.") from None
        if media_type(raw.content_type) in HTML_TYPES and await asyncio.to_thread(
            is_challenge, raw.body
        ):
            raise _Refused(url, "a captcha page")
        return raw

    async def _read(self, final_url: str, response: aiohttp.ClientResponse) -> _Raw:
        """Check the type and size, then read within the byte limit; raises `_NotReadable`."""
        content_type = response.headers.get("Content-Type") or "text/html"
        kind = media_type(content_type)
        if kind not in READABLE_TYPES:
            raise _NotReadable(f"it is {kind}, not a web page, text or PDF")
        too_big = f"the PDF is larger than {self.max_bytes / 1_000_000:g} MB"
        if kind in PDF_TYPES and (response.content_length or 0) > self.max_bytes:
            raise _NotReadable(too_big)
        body, truncated = await _read_limited(response, self.max_bytes)
        if kind in PDF_TYPES and truncated:
            raise _NotReadable(too_big)  # half a PDF has no readable structure
        return _Raw(final_url, content_type, body, truncated)

    # -- unblockers -----------------------------------------------------------------------
    async def _unblock(self, refused: _Refused) -> tuple[_Raw, str]:
        settings = self._settings
        unblockers = []
        if settings.brightdata_api_key is not None:
            unblockers.append(("brightdata", "BrightData", self._brightdata))
        if settings.zenrows_api_key is not None:
            unblockers.append(("zenrows", "ZenRows", self._zenrows))
        host = _host(refused.url)
        if not unblockers:
            raise FetchError(
                f"{host} refused to show the page to Sophia ({refused.reason}). Set "
                "BRIGHTDATA_API_KEY or ZENROWS_API_KEY to read pages like this through an unblocker."
            )
        failures = []
        for name, label, call in unblockers:
            try:
                async with asyncio.timeout(self.unblocker_timeout_s):
                    raw = await call(refused.url)
                if media_type(raw.content_type) in HTML_TYPES and await asyncio.to_thread(
                    is_challenge, raw.body
                ):
                    raise _UnblockFailed("still got a captcha page")
            except (_UnblockFailed, _NotReadable) as exc:
                failures.append(f"{label}: {exc}")
            except TimeoutError:
                failures.append(f"{label}: no answer within {self.unblocker_timeout_s:g} s")
            except aiohttp.ClientError:
                failures.append(f"{label}: could not be reached")
            else:
                log.info("page unblocked", extra={"via": name, "host": host})
                return raw, name
        raise FetchError(
            f"{host} refused to show the page ({refused.reason}), and the unblockers could not "
            f"get it either: {'; '.join(failures)}."
        )

    async def _unblocked(self, response: aiohttp.ClientResponse, final_url: str) -> _Raw:
        if response.status >= 400:
            raise _UnblockFailed(f"answered HTTP {response.status}")
        return await self._read(final_url, response)

    async def _brightdata(self, url: str) -> _Raw:
        """Web Unlocker: POST {base}/request {"zone", "url", "format": "raw"} → the page itself."""
        settings = self._settings
        key = settings.brightdata_api_key.get_secret_value()  # type: ignore[union-attr]
        body = {"zone": settings.brightdata_zone, "url": url, "format": "raw"}
        async with self._unblock_session.post(
            f"{settings.brightdata_api_url.rstrip('/')}/request",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            return await self._unblocked(response, url)

    async def _zenrows(self, url: str) -> _Raw:
        """Universal Scraper API: GET {base}/v1/?apikey=&url= → the page; Zr-Final-Url after redirects."""
        settings = self._settings
        key = settings.zenrows_api_key.get_secret_value()  # type: ignore[union-attr]
        async with self._unblock_session.get(
            f"{settings.zenrows_api_url.rstrip('/')}/v1/", params={"apikey": key, "url": url}
        ) as response:
            final_url = response.headers.get("Zr-Final-Url") or url
            return await self._unblocked(response, final_url)
