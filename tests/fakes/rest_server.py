"""A small JSON REST server on 127.0.0.1 for the business fakes (HubSpot, Gong, Asana).

Subclasses add routes with ``route(method, pattern, handler)``; a handler gets the ``Req`` and the
path's named groups and returns ``(status, body)`` or ``(status, body, headers)``. Every request is
kept in ``requests``; ``fail()`` makes the next matching requests answer an error instead
(with ``Retry-After`` for 429), so tests can exercise retries and failing sources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer


@dataclass
class Req:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: Any
    times: int | None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., tuple]


class RestServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Req] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._failures: list[_Failure] = []

    # -- for subclasses and tests ----------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail(
        self, method: str, pattern: str, *, status: int = 500, body: Any = None,
        times: int | None = 1, retry_after: int | None = None,
    ) -> None:  # fmt: skip
        """The next ``times`` requests (None: all) matching ``method`` and the path regex fail."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._failures.append(
            _Failure(
                method, re.compile(pattern), status, body or self.error_body(status), times, headers
            )
        )

    def error_body(self, status: int) -> Any:
        return {"error": f"HTTP {status}"}

    def calls(self, method: str, pattern: str = ".*") -> list[Req]:
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.search(r.path)]

    def authorised(self, req: Req) -> bool:  # subclasses check their auth header
        return True

    def unauthorised(self) -> tuple:
        return 401, self.error_body(401)

    # -- serving ---------------------------------------------------------------------------
    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for rule in self._failures:
            if rule.method == method and rule.pattern.search(path):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._failures.remove(rule)
                return rule
        return None

    async def _dispatch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        # A repeated parameter (?properties=a&properties=b) reads as "a,b", as HubSpot takes it.
        query = {k: ",".join(request.query.getall(k)) for k in request.query}
        req = Req(request.method, request.path, query, body, dict(request.headers))
        self.requests.append(req)
        status, payload, headers = self._answer(req)
        req.status = status
        return web.json_response(payload, status=status, headers=headers)

    def _answer(self, req: Req) -> tuple[int, Any, dict[str, str]]:
        if not self.authorised(req):
            status, payload = self.unauthorised()
            return status, payload, {}
        rule = self._take_failure(req.method, req.path)
        if rule is not None:
            return rule.status, rule.body, rule.headers
        for method, pattern, handler in self._routes:
            match = pattern.match(req.path)
            if method == req.method and match:
                try:
                    out = handler(req, **match.groupdict())
                except Exception as exc:  # a bug in the fake or the test: make it visible
                    self.errors.append(exc)
                    return 500, {"error": f"fake crashed: {exc!r}"}, {}
                status, payload = out[0], out[1]
                return status, payload, (out[2] if len(out) > 2 else {})
        return 404, self.error_body(404), {}
