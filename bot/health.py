"""`/healthz` and `/metrics` on 0.0.0.0:SOPHIA_HEALTH_PORT (Fly's checker calls it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.core.errors import ConfigError

log = logging.getLogger("sophia.health")


class HealthServer:
    """A tiny HTTP server: 200 while `ready()` is true, 503 otherwise."""

    def __init__(
        self,
        *,
        port: int,
        ready: Callable[[], Awaitable[bool]],
        metrics: Callable[[], str],
        host: str = "0.0.0.0",
    ) -> None:
        self.host, self.port = host, port
        self._ready, self._metrics = ready, metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; with port 0 the OS picks one and `self.port` says which."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"Port {self.port} for /healthz is in use ({exc.strerror}); set SOPHIA_HEALTH_PORT "
                "to a free port (each replica on one machine needs its own).",
                variable="SOPHIA_HEALTH_PORT",
            ) from None
        server = getattr(site, "_server", None)
        if server and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = await self._ready()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        return web.Response(text=self._metrics(), content_type="text/plain", charset="utf-8")

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
