"""How the HTTP fakes listen: one aiohttp app on 127.0.0.1 at a free port, shut down cleanly.

A fake subclasses `LoopbackServer`, sends every request to its `_dispatch`, and records an
exception its handlers raised (a bug in the fake or the test) in `errors`; `stop()` raises
it again, so a broken fake cannot pass silently::

    async with FakeFly() as fly:        # or: await fly.start() … await fly.stop()
        settings = ..., fly_api_url=fly.base_url
"""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LoopbackServer:
    """An aiohttp server on 127.0.0.1; `base_url` is set once started."""

    prefix = ""  # a path every route sits under ("/api/v1"); part of `base_url`
    client_max_size = 1024**2  # aiohttp's default request-body limit

    def __init__(self) -> None:
        self.base_url = ""
        self.errors: list[Exception] = []
        self._runner: web.AppRunner | None = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(client_max_size=self.client_max_size)
        app.router.add_route("*", self.prefix + "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, shutdown_timeout=1.0, access_log=None, handle_signals=False
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{self.prefix}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.errors:
            raise RuntimeError(f"a {type(self).__name__} handler raised") from self.errors[0]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
