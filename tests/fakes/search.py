"""Fake search providers, fake web pages and fake unblockers on one loopback aiohttp server.

Each provider lives under its own prefix, at its real path with its real request and response
shapes, so its `*_API_URL` setting is `fake.url("<name>")`::

    serper     POST /serper/search              X-API-KEY             {"q", "num"}          → organic[]
    brave      GET  /brave/res/v1/web/search    X-Subscription-Token  ?q=&count=            → web.results[]
    tavily     POST /tavily/search              Authorization: Bearer {"query", ...}        → results[]
    exa        POST /exa/search                 x-api-key (or Bearer) {"query", "numResults"} → results[]
    serpapi    GET  /serpapi/search.json        ?api_key=&engine=google&q=                  → organic_results[]
    brightdata POST /brightdata/request         Authorization: Bearer {"zone", "url", "format"} → the page
    zenrows    GET  /zenrows/v1/                ?apikey=&url=                               → the page

Everything else is a web page added with `add_page`, `add_redirect`, `add_pdf`, …; a page can
show bots one thing (403, a captcha wall) and unblockers another (`unblocked=`)::

    async with FakeSearch() as fake:
        fake.behave("serper", status=500)
        fake.add_page("/a", "<html>…</html>")
        settings = Settings(_env_file=None, **fake.settings(), research_allow_private=True)
        ...
        assert [c.service for c in fake.calls] == ["serper", "brave"]

Wrong or missing keys get each provider's own refusal (Serper 403, Brave 422, Tavily/Exa/SerpAPI
401). `behave(name, status=…, delay=…, empty=True, invalid_json=True, results=[…])` sets what a
provider (or unblocker) does next; results are dicts with title, url, snippet and date.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.loopback import LoopbackServer

PROVIDERS = ("serper", "brave", "tavily", "exa", "serpapi")
UNBLOCKERS = ("brightdata", "zenrows")

DEFAULT_RESULTS = [
    {
        "title": "Qdrant Edge: embedded vector search",
        "url": "https://qdrant.tech/blog/qdrant-edge/",
        "snippet": "Qdrant Edge runs Qdrant's engine inside your process.",
        "date": "2025-07-01",
    },
    {
        "title": "Vector search on the edge",
        "url": "https://example.com/articles/edge-vectors",
        "snippet": "Why embedded vector stores matter for small deployments.",
        "date": "Jan 5, 2025",
    },
]

CAPTCHA_HTML = """<!DOCTYPE html><html><head><title>Just a moment...</title></head>
<body><h1>Verify you are human</h1>
<p>Checking your browser before accessing the site.</p>
<div class="cf-turnstile" data-sitekey="x"></div>
<script src="https://challenges.cloudflare.com/turnstile/v0/api.js"></script></body></html>"""


@dataclass
class Req:
    """One request as the fake received it."""

    service: str  # a provider, an unblocker, or "web"
    method: str
    path: str  # without the service prefix
    query: dict[str, str]
    json: Any
    headers: CIMultiDict


@dataclass
class Behaviour:
    """What a provider or unblocker does with the next requests."""

    results: list[dict[str, Any]] | None = None  # None: the fake's default results
    status: int = 200
    delay: float = 0.0
    empty: bool = False
    invalid_json: bool = False


@dataclass
class Page:
    status: int
    body: bytes
    headers: dict[str, str]
    unblocked: bytes | None = None  # what unblockers get (None: the same as everyone)
    location: str | None = None


@dataclass
class _Keys:
    serper: str = "serper-test-key-0123456789"
    brave: str = "brave-test-key-0123456789"
    tavily: str = "tvly-test-key-0123456789"
    exa: str = "exa-test-key-0123456789"
    serpapi: str = "serpapi-test-key-0123456789"
    brightdata: str = "brightdata-test-key-0123456789"
    zenrows: str = "zenrows-test-key-0123456789"


def make_pdf(text: str, title: str = "") -> bytes:
    """A minimal one-page PDF whose text layer says `text` (and whose Info has `title`)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    stream = f"BT /F1 12 Tf 72 720 Td ({esc(text)}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        f"<< /Title ({esc(title)}) >>".encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


class FakeSearch(LoopbackServer):
    """Five search providers, two unblockers and a small web, on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.keys = _Keys()
        self.brightdata_zone = "web_unlocker1"
        self.results: list[dict[str, Any]] = list(DEFAULT_RESULTS)
        self.behaviour: dict[str, Behaviour] = {
            name: Behaviour() for name in PROVIDERS + UNBLOCKERS
        }
        self.pages: dict[str, Page] = {}
        self.calls: list[Req] = []

    # -- configuration for tests -----------------------------------------------------------
    def url(self, service: str) -> str:
        """The base URL (a `*_API_URL` setting) of a provider or unblocker."""
        return f"{self.base_url}/{service}"

    def page_url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def settings(
        self,
        providers: tuple[str, ...] = PROVIDERS,
        unblockers: tuple[str, ...] = UNBLOCKERS,
    ) -> dict[str, Any]:
        """Settings values pointing the named providers and unblockers here, with their keys."""
        values: dict[str, Any] = {}
        for name in providers + unblockers:
            values[f"{name}_api_key"] = getattr(self.keys, name)
            values[f"{name}_api_url"] = self.url(name)
        return values

    def behave(self, service: str, **changes: Any) -> Behaviour:
        """Set what a provider or unblocker does next (status, delay, empty, results, …)."""
        behaviour = self.behaviour[service]
        for key, value in changes.items():
            setattr(behaviour, key, value)
        return behaviour

    def calls_to(self, service: str) -> list[Req]:
        return [call for call in self.calls if call.service == service]

    def add_page(
        self,
        path: str,
        body: str | bytes,
        *,
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        unblocked: str | bytes | None = None,
    ) -> str:
        """Serve `body` at `path`; unblockers get `unblocked` instead when given. Returns the URL."""
        self.pages[path] = Page(
            status=status,
            body=body.encode() if isinstance(body, str) else body,
            headers={"Content-Type": content_type, **(headers or {})},
            unblocked=unblocked.encode() if isinstance(unblocked, str) else unblocked,
        )
        return self.page_url(path)

    def add_redirect(self, path: str, location: str, *, status: int = 302) -> str:
        self.pages[path] = Page(status=status, body=b"", headers={}, location=location)
        return self.page_url(path)

    def add_blocked(self, path: str, html: str, *, status: int = 403) -> str:
        """A page that refuses bots (403/429) but that unblockers can read."""
        return self.add_page(
            path, "<html><body>Forbidden</body></html>", status=status, unblocked=html
        )

    def add_captcha(self, path: str, html: str) -> str:
        """A page that shows bots a "verify you are human" wall (HTTP 200); unblockers get `html`."""
        return self.add_page(path, CAPTCHA_HTML, unblocked=html)

    def add_pdf(self, path: str, text: str, *, title: str = "") -> str:
        return self.add_page(path, make_pdf(text, title), content_type="application/pdf")

    # -- dispatch --------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        first, _, rest = request.path.lstrip("/").partition("/")
        service = first if first in PROVIDERS + UNBLOCKERS else "web"
        path = "/" + rest if service != "web" else request.path
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.calls.append(
            Req(service, request.method, path, dict(request.query), body, request.headers.copy())
        )
        try:
            if service == "web":
                return self._page(request.path)
            behaviour = self.behaviour[service]
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            handler = getattr(self, f"_{service}")
            return await handler(request, path, body, behaviour)
        except Exception as exc:  # surfaced by stop()
            self.errors.append(exc)
            raise

    def _page(self, path: str) -> web.StreamResponse:
        page = self.pages.get(path)
        if page is None:
            return web.Response(
                status=404, text="<html><body>Not found</body></html>", content_type="text/html"
            )
        if page.location is not None:
            return web.Response(status=page.status, headers={"Location": page.location})
        return web.Response(status=page.status, body=page.body, headers=page.headers)

    def _unblocked_page(self, url: str) -> tuple[Page | None, str]:
        """What an unblocker sees at `url`: redirects followed, the unblocked body."""
        for _ in range(10):
            parts = urlsplit(url)
            page = self.pages.get(parts.path) if url.startswith(self.base_url) else None
            if page is None or page.location is None:
                return page, url
            url = page.location if "://" in page.location else self.page_url(page.location)
        return None, url

    # -- provider answers ------------------------------------------------------------------
    def _results(self, behaviour: Behaviour, limit: int) -> list[dict[str, Any]]:
        if behaviour.empty:
            return []
        return (behaviour.results if behaviour.results is not None else self.results)[:limit]

    @staticmethod
    def _failure(behaviour: Behaviour) -> web.Response | None:
        if behaviour.invalid_json:
            return web.Response(
                status=200, text="<html>upstream error</html>", content_type="text/html"
            )
        if behaviour.status >= 400:
            return web.json_response(
                {"error": f"fake failure {behaviour.status}"}, status=behaviour.status
            )
        return None

    async def _serper(
        self, request: web.Request, path: str, body: Any, b: Behaviour
    ) -> web.Response:
        if request.method != "POST" or path != "/search":
            return web.json_response({"message": "Not found", "statusCode": 404}, status=404)
        if request.headers.get("X-API-KEY") != self.keys.serper:
            return web.json_response({"message": "Unauthorized.", "statusCode": 403}, status=403)
        if not isinstance(body, dict) or not body.get("q"):
            return web.json_response({"message": "Missing query", "statusCode": 400}, status=400)
        if failure := self._failure(b):
            return failure
        organic = [
            {"title": r["title"], "link": r["url"], "snippet": r["snippet"], "position": i + 1}
            | ({"date": r["date"]} if r.get("date") else {})
            for i, r in enumerate(self._results(b, int(body.get("num", 10))))
        ]
        return web.json_response(
            {
                "searchParameters": {
                    "q": body["q"],
                    "type": "search",
                    "num": body.get("num", 10),
                    "engine": "google",
                },
                "organic": organic,
                "credits": 1,
            }
        )

    async def _brave(
        self, request: web.Request, path: str, body: Any, b: Behaviour
    ) -> web.Response:
        if request.method not in ("GET", "POST") or path != "/res/v1/web/search":
            return web.json_response(
                {"type": "ErrorResponse", "error": {"status": 404}}, status=404
            )
        if request.headers.get("X-Subscription-Token") != self.keys.brave:
            error = {"code": "SUBSCRIPTION_TOKEN_INVALID", "status": 422,
                     "detail": "The provided subscription token is invalid."}  # fmt: skip
            return web.json_response({"type": "ErrorResponse", "error": error}, status=422)
        query = request.query.get("q", "")
        count = int(request.query.get("count", "20"))
        if not query or not 1 <= count <= 20:
            error = {
                "code": "VALIDATION",
                "status": 422,
                "detail": "Unable to validate request parameter(s)",
            }
            return web.json_response({"type": "ErrorResponse", "error": error}, status=422)
        if failure := self._failure(b):
            return failure
        results = [
            {
                "type": "search_result",
                "title": r["title"],
                "url": r["url"],
                "description": r["snippet"],
            }
            | ({"page_age": r["date"], "age": r["date"]} if r.get("date") else {})
            for r in self._results(b, count)
        ]
        return web.json_response(
            {
                "type": "search",
                "query": {"original": query, "more_results_available": False},
                "web": {"type": "search", "results": results, "family_friendly": True},
            }
        )

    async def _tavily(
        self, request: web.Request, path: str, body: Any, b: Behaviour
    ) -> web.Response:
        if request.method != "POST" or path != "/search":
            return web.json_response({"detail": "Not Found"}, status=404)
        if request.headers.get("Authorization") != f"Bearer {self.keys.tavily}":
            return web.json_response(
                {"detail": {"error": "Unauthorized: missing or invalid API key."}}, status=401
            )
        if not isinstance(body, dict) or not body.get("query"):
            return web.json_response({"detail": {"error": "Query is missing."}}, status=400)
        if failure := self._failure(b):
            return failure
        results = [
            {
                "title": r["title"],
                "url": r["url"],
                "content": r["snippet"],
                "score": 0.9,
                "raw_content": None,
            }
            | ({"published_date": r["date"]} if r.get("date") else {})
            for r in self._results(b, int(body.get("max_results", 5)))
        ]
        return web.json_response(
            {"query": body["query"], "answer": None, "images": [], "results": results,
             "response_time": 0.42, "request_id": str(uuid.uuid4())}
        )  # fmt: skip

    async def _exa(self, request: web.Request, path: str, body: Any, b: Behaviour) -> web.Response:
        if request.method != "POST" or path != "/search":
            return web.json_response({"error": "Not found"}, status=404)
        keyed = request.headers.get("x-api-key") == self.keys.exa
        bearer = request.headers.get("Authorization") == f"Bearer {self.keys.exa}"
        if not (keyed or bearer):
            return web.json_response(
                {"requestId": str(uuid.uuid4()), "error": "Invalid API key"}, status=401
            )
        if not isinstance(body, dict) or not body.get("query"):
            return web.json_response({"error": "query is required"}, status=400)
        if failure := self._failure(b):
            return failure
        contents = body.get("contents") or {}
        results = []
        for r in self._results(b, int(body.get("numResults", 10))):
            row: dict[str, Any] = {
                "id": r["url"],
                "title": r["title"],
                "url": r["url"],
                "author": None,
            }
            if r.get("date"):
                row["publishedDate"] = r["date"]
            if contents.get("highlights"):
                row["highlights"] = [r["snippet"]]
                row["highlightScores"] = [0.5]
            if contents.get("text"):
                row["text"] = r["snippet"]
            results.append(row)
        return web.json_response(
            {"requestId": str(uuid.uuid4()), "resolvedSearchType": "neural", "results": results}
        )

    async def _serpapi(
        self, request: web.Request, path: str, body: Any, b: Behaviour
    ) -> web.Response:
        if request.method != "GET" or path != "/search.json":
            return web.json_response({"error": "Not found"}, status=404)
        if request.query.get("api_key") != self.keys.serpapi:
            return web.json_response(
                {
                    "error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"
                },
                status=401,
            )
        if request.query.get("engine", "google") != "google" or not request.query.get("q"):
            return web.json_response({"error": "Missing query `q` parameter."}, status=400)
        if failure := self._failure(b):
            return failure
        metadata = {"id": uuid.uuid4().hex, "status": "Success", "json_endpoint": "…"}
        params = {"engine": "google", "q": request.query["q"]}
        rows = self._results(b, int(request.query.get("num", "10")))
        if not rows:
            return web.json_response(
                {"search_metadata": metadata, "search_parameters": params,
                 "error": "Google hasn't returned any results for this query."}
            )  # fmt: skip
        organic = [
            {"position": i + 1, "title": r["title"], "link": r["url"], "snippet": r["snippet"],
             "displayed_link": r["url"]} | ({"date": r["date"]} if r.get("date") else {})
            for i, r in enumerate(rows)
        ]  # fmt: skip
        return web.json_response(
            {"search_metadata": metadata, "search_parameters": params, "organic_results": organic}
        )

    # -- unblockers ------------------------------------------------------------------------
    def _unblocked_response(
        self, url: str, b: Behaviour, headers: Callable[[str], dict[str, str]]
    ) -> web.Response:
        if b.status >= 400:
            return web.Response(status=b.status, text="unblocker failure")
        page, final = self._unblocked_page(url)
        if page is None:
            return web.Response(status=404, text="target not found")
        body = page.unblocked if page.unblocked is not None else page.body
        content_type = page.headers.get("Content-Type", "text/html")
        return web.Response(body=body, headers={"Content-Type": content_type, **headers(final)})

    async def _brightdata(
        self, request: web.Request, path: str, body: Any, b: Behaviour
    ) -> web.Response:
        if request.method != "POST" or path != "/request":
            return web.Response(status=404, text="Not found")
        if request.headers.get("Authorization") != f"Bearer {self.keys.brightdata}":
            return web.Response(status=401, text="Invalid authentication")
        if (
            not isinstance(body, dict)
            or not body.get("url")
            or body.get("format") not in ("raw", "json")
        ):
            return web.Response(status=400, text="url and format are required")
        if body.get("zone") != self.brightdata_zone:
            return web.Response(status=400, text=f"zone '{body.get('zone')}' not found")
        return self._unblocked_response(body["url"], b, lambda final: {})

    async def _zenrows(
        self, request: web.Request, path: str, body: Any, b: Behaviour
    ) -> web.Response:
        if request.method != "GET" or path != "/v1/":
            return web.json_response({"code": "REQS001", "detail": "Not found"}, status=404)
        if request.query.get("apikey") != self.keys.zenrows:
            return web.json_response(
                {"code": "AUTH002", "title": "Invalid API Key", "status": 401}, status=401
            )
        if not request.query.get("url"):
            return web.json_response({"code": "REQS002", "title": "URL is required"}, status=400)
        return self._unblocked_response(
            request.query["url"], b, lambda final: {"Zr-Final-Url": final}
        )


__all__ = [
    "CAPTCHA_HTML",
    "DEFAULT_RESULTS",
    "PROVIDERS",
    "UNBLOCKERS",
    "FakeSearch",
    "Req",
    "make_pdf",
]
