"""Fake Fly Machines API (`/v1/...`) for tests, spoken to by `integrations.fly.Fly`.

An aiohttp server on 127.0.0.1 with apps, machines and secrets, answering with the Machines
API's JSON shapes (fly-go `flaps`): machines carry `config`, `image_ref`, `checks`, `events`
(newest first) and a fresh `instance_id` per version; an update replaces the config whole;
`/wait` blocks until the machine's version reaches the state or answers 408 after `timeout`
seconds; secrets are listed with digests only. Every request is recorded::

    async with FakeFly() as fly:
        fly.add_app("web")
        m = fly.add_machine("web", image="registry.fly.io/web:v1")
        fly.fail_checks("registry.fly.io/web:v2")          # checks go critical on that image
        ...
        assert fly.updates("web") == [(m, "registry.fly.io/web:v2"), (m, "registry.fly.io/web:v1")]

Check results: right after a machine (re)starts its checks read `warning` ("waiting for status
update", no `updated_at`); `check_delay_s` later they read `passing` — or `critical` for an
image given to `fail_checks`, or stay `warning` forever for one given to `never_pass`, or while
the machine is `hold`-ed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import secrets as _secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

APP = r"/v1/apps/(?P<app>[^/]+)"
MACHINE = rf"{APP}/machines/(?P<id>[^/]+)"


@dataclass
class Req:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0


@dataclass
class FakeMachine:
    id: str
    name: str
    region: str
    state: str
    config: dict[str, Any]
    instance_id: str
    started_at: float  # when the current version started (time.time())
    events: list[dict[str, Any]] = field(default_factory=list)
    check_names: tuple[str, ...] = ("servicecheck-00-http-8080",)
    created_at: str = ""


@dataclass
class FakeApp:
    name: str
    org: str
    machines: dict[str, FakeMachine] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → {digest, value, …}
    secrets_version: int = 0


def _now_iso(ts: float | None = None) -> str:
    return (
        datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)
        .isoformat()
        .replace("+00:00", "Z")
    )


def digest_of(image: str) -> str:
    """The (made up, stable) digest the fake registry gives an image reference."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def image_ref(image: str) -> dict[str, Any]:
    """Fly's `image_ref` for a reference like `registry.fly.io/web:v1`."""
    name = image.split("@", 1)[0]
    registry, _, rest = (
        name.partition("/") if "/" in name else ("docker-hub-mirror.fly.io", "", name)
    )
    repository, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    digest = image.split("@", 1)[1] if "@" in image else digest_of(image)
    return {
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "labels": {},
    }


class FakeFly(LoopbackServer):
    token = "fo1_test-fly-token-0123456789abcdef"

    def __init__(self, *, token: str | None = None, check_delay_s: float = 0.05) -> None:
        super().__init__()
        self.token = token or self.token
        self.check_delay_s = check_delay_s  # how long after a start checks read `warning`
        self.start_delay_s = 0.0  # how long an updated machine stays `replacing`
        self.apps: dict[str, FakeApp] = {}
        self.requests: list[Req] = []
        self._failing: dict[str, tuple[str, set[str] | None]] = {}  # image → (output, which)
        self._never: set[str] = set()
        self._held: set[str] = set()
        self._ids = itertools.count(1)
        self._tick: asyncio.Event | None = None  # set (and replaced) on every machine change
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[web.Response]]]] = [
            ("GET", re.compile(rf"{APP}$"), self._get_app),
            ("GET", re.compile(rf"{APP}/machines$"), self._list_machines),
            ("POST", re.compile(rf"{APP}/machines$"), self._create_machine),
            ("GET", re.compile(rf"{MACHINE}$"), self._get_machine),
            ("POST", re.compile(rf"{MACHINE}$"), self._update_machine),
            ("DELETE", re.compile(rf"{MACHINE}$"), self._destroy_machine),
            ("GET", re.compile(rf"{MACHINE}/wait$"), self._wait),
            ("POST", re.compile(rf"{MACHINE}/restart$"), self._restart),
            ("POST", re.compile(rf"{MACHINE}/start$"), self._start),
            ("POST", re.compile(rf"{MACHINE}/stop$"), self._stop),
            ("GET", re.compile(rf"{APP}/secrets$"), self._list_secrets),
            ("POST", re.compile(rf"{APP}/secrets$"), self._update_secrets),
            ("POST", re.compile(rf"{APP}/secrets/(?P<name>[^/]+)$"), self._set_secret),
            ("DELETE", re.compile(rf"{APP}/secrets/(?P<name>[^/]+)$"), self._delete_secret),
        ]

    # -- state for tests ------------------------------------------------------------------
    def add_app(self, name: str, *, org: str = "personal") -> FakeApp:
        self.apps[name] = FakeApp(name, org)
        return self.apps[name]

    def add_machine(
        self, app: str, *, image: str, name: str | None = None, region: str = "ams",
        state: str = "started", config: dict[str, Any] | None = None,
        checks: tuple[str, ...] = ("servicecheck-00-http-8080",),
    ) -> str:  # fmt: skip
        """A machine already running `image` with its checks passing; returns its id."""
        n = next(self._ids)
        machine_id = f"{n:02d}8e{_secrets.token_hex(5)}"
        full = {
            "image": image, "env": {"PORT": "8080"},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "services": [{"protocol": "tcp", "internal_port": 8080,
                          "ports": [{"port": 443, "handlers": ["tls", "http"]}]}],
            "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
            **(config or {}),
        }  # fmt: skip
        machine = FakeMachine(
            id=machine_id, name=name or f"{app}-{n}", region=region, state=state, config=full,
            instance_id=self._instance_id(), started_at=time.time() - 3600, check_names=checks,
            created_at=_now_iso(),
        )  # fmt: skip
        self._event(machine, "launch", "created", "user")
        if state == "started":
            self._event(machine, "start", "started", "flyd")
        self.apps[app].machines[machine_id] = machine
        return machine_id

    def add_secret(self, app: str, name: str, value: str) -> None:
        self.apps[app].secrets[name] = {
            "digest": self._secret_digest(value),
            "value": value,
            "updated_at": _now_iso(),
        }

    def fail_checks(
        self, image: str, output: str = "HTTP GET /healthz: 500 Internal Server Error",
        *, machines: list[str] | None = None,
    ) -> None:  # fmt: skip
        """Machines updated to `image` (only `machines`, when given) have their checks go critical."""
        self._failing[image] = (output, set(machines) if machines else None)

    def pass_checks(self, image: str) -> None:
        """Undo `fail_checks`: machines on `image` pass their checks again (a fix deployed)."""
        self._failing.pop(image, None)

    def never_pass(self, image: str) -> None:
        """Machines updated to `image` keep their checks at `warning` forever."""
        self._never.add(image)

    def hold(self, machine_id: str) -> None:
        """Keep this machine's checks at `warning` until `release`."""
        self._held.add(machine_id)

    def release(self, machine_id: str) -> None:
        self._held.discard(machine_id)

    def machine(self, app: str, machine_id: str) -> FakeMachine:
        return self.apps[app].machines[machine_id]

    def image_of(self, app: str, machine_id: str) -> str:
        return self.apps[app].machines[machine_id].config["image"]

    def calls(self, method: str, pattern: str) -> list[Req]:
        rx = re.compile(pattern)
        return [r for r in self.requests if r.method == method and rx.search(r.path)]

    def updates(self, app: str | None = None) -> list[tuple[str, str]]:
        """(machine id, image) of every accepted machine update, in order."""
        out = []
        for r in self.requests:
            m = re.fullmatch(MACHINE, r.path)
            if r.method == "POST" and m and r.status == 200 and (app is None or m["app"] == app):
                out.append((m["id"], r.json["config"]["image"]))
        return out

    # -- wire shapes ----------------------------------------------------------------------
    def _instance_id(self) -> str:
        return "01J" + _secrets.token_hex(12).upper()[:23]

    def _secret_digest(self, value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()[:16]

    def _event(self, m: FakeMachine, kind: str, status: str, source: str) -> None:
        m.events.insert(
            0,
            {
                "type": kind,
                "status": status,
                "source": source,
                "timestamp": int(time.time() * 1000),
            },
        )

    def _checks(self, m: FakeMachine) -> list[dict[str, Any]]:
        if m.state != "started":
            return [
                {"name": n, "status": "warning", "output": "the machine is not running"}
                for n in m.check_names
            ]
        image = m.config.get("image", "")
        settled = time.time() - m.started_at >= self.check_delay_s
        if not settled or m.id in self._held or image in self._never:
            return [
                {"name": n, "status": "warning", "output": "waiting for status update"}
                for n in m.check_names
            ]
        ran = _now_iso(m.started_at + self.check_delay_s)
        output, which = self._failing.get(image, ("", None))
        if image in self._failing and (which is None or m.id in which):
            return [
                {"name": n, "status": "critical", "output": output, "updated_at": ran}
                for n in m.check_names
            ]
        return [{"name": n, "status": "passing", "output": "HTTP GET /healthz: 200 OK", "updated_at": ran}
                for n in m.check_names]  # fmt: skip

    def _machine_json(self, m: FakeMachine) -> dict[str, Any]:
        return {
            "id": m.id, "name": m.name, "state": m.state, "region": m.region,
            "instance_id": m.instance_id, "version": m.instance_id,
            "private_ip": f"fdaa:0:1:a7b:1::{m.id[:2]}", "config": m.config,
            "image_ref": image_ref(m.config.get("image", "")), "created_at": m.created_at,
            "updated_at": _now_iso(), "events": m.events[:10], "checks": self._checks(m),
            "host_status": "ok", "cordoned": False,
        }  # fmt: skip

    # -- dispatch -------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
        req = Req(request.method, request.path, dict(request.query), body)
        self.requests.append(req)
        response = await self._answer(request, req)
        req.status = response.status
        return response

    async def _answer(self, request: web.Request, req: Req) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {"error": "You must be authenticated to view this."}, status=401
            )
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(req.path)
            if match and method == req.method:
                app = self.apps.get(match["app"])
                if app is None:
                    return web.json_response({"error": "app not found"}, status=404)
                try:
                    return await handler(req, app, match.groupdict())
                except Exception as exc:  # surfaced by stop()
                    self.errors.append(exc)
                    return web.json_response({"error": "fake crashed"}, status=500)
        return web.json_response({"error": "not found"}, status=404)

    def _find(self, app: FakeApp, machine_id: str) -> FakeMachine | None:
        return app.machines.get(machine_id)

    def _changed(self) -> asyncio.Event:
        if self._tick is None:
            self._tick = asyncio.Event()
        return self._tick

    async def _notify(self) -> None:
        self._notify_now()

    def _notify_now(self) -> None:
        tick, self._tick = self._changed(), asyncio.Event()
        tick.set()

    # -- handlers -------------------------------------------------------------------------
    async def _get_app(self, req: Req, app: FakeApp, _: dict) -> web.Response:
        return web.json_response({
            "id": hashlib.md5(app.name.encode()).hexdigest()[:16], "name": app.name,
            "status": "deployed", "machine_count": len(app.machines), "volume_count": 0,
            "network": "default", "organization": {"name": app.org.title(), "slug": app.org},
        })  # fmt: skip

    async def _list_machines(self, req: Req, app: FakeApp, _: dict) -> web.Response:
        return web.json_response(
            [self._machine_json(m) for m in app.machines.values() if m.state != "destroyed"]
        )

    async def _get_machine(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        return web.json_response(self._machine_json(m))

    async def _update_machine(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        config = (req.json or {}).get("config")
        if not isinstance(config, dict) or not config.get("image"):
            return web.json_response({"error": "invalid config: image is required"}, status=400)
        m.config = config  # replaced whole, as Fly does
        m.instance_id = self._instance_id()
        self._event(m, "update", "replacing", "user")
        if (req.json or {}).get("skip_launch"):
            m.state = "stopped"
        else:
            m.state = "replacing"
            asyncio.get_running_loop().call_later(
                self.start_delay_s, self._started, m, m.instance_id
            )
            if self.start_delay_s == 0:
                self._started(m, m.instance_id)
        await self._notify()
        return web.json_response(self._machine_json(m))

    def _started(self, m: FakeMachine, instance_id: str) -> None:
        if m.instance_id != instance_id or m.state == "started":
            return
        m.state, m.started_at = "started", time.time()
        self._event(m, "start", "started", "flyd")
        self._notify_now()

    async def _create_machine(self, req: Req, app: FakeApp, _: dict) -> web.Response:
        config = (req.json or {}).get("config") or {}
        if not config.get("image"):
            return web.json_response({"error": "invalid config: image is required"}, status=400)
        region = (req.json or {}).get("region") or "ams"
        machine_id = self.add_machine(app.name, image=config["image"], region=region, config=config)
        m = app.machines[machine_id]
        m.started_at = time.time()
        return web.json_response(self._machine_json(m))

    async def _destroy_machine(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        if m.state == "started" and req.query.get("force") != "true":
            return web.json_response(
                {"error": "unable to destroy machine, not currently stopped"}, status=412
            )
        m.state = "destroyed"
        self._event(m, "destroy", "destroyed", "user")
        del app.machines[m.id]
        await self._notify()
        return web.json_response({"ok": True})

    async def _wait(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        state = req.query.get("state", "started")
        instance = req.query.get("instance_id") or req.query.get("version")
        timeout = min(60, int(req.query.get("timeout", "60")))
        deadline = time.monotonic() + timeout

        def reached() -> bool:
            return m.state == state and (not instance or m.instance_id == instance)

        while not reached():
            left = deadline - time.monotonic()
            if left <= 0:
                return web.json_response(
                    {"error": f"deadline_exceeded: machine did not reach {state}"}, status=408
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed().wait(), left)
        return web.json_response({"ok": True})

    async def _restart(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        self._event(m, "restart", "restarting", "user")
        m.state, m.started_at = "started", time.time()
        self._event(m, "start", "started", "flyd")
        await self._notify()
        return web.json_response({"ok": True})

    async def _start(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        previous = m.state
        m.state, m.started_at = "started", time.time()
        self._event(m, "start", "started", "user")
        await self._notify()
        return web.json_response({"previous_state": previous, "migrated": False, "new_host": ""})

    async def _stop(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        m = self._find(app, p["id"])
        if m is None:
            return web.json_response({"error": "machine not found"}, status=404)
        m.state = "stopped"
        self._event(m, "exit", "stopped", "user")
        await self._notify()
        return web.json_response({"ok": True})

    async def _list_secrets(self, req: Req, app: FakeApp, _: dict) -> web.Response:
        return web.json_response({"secrets": [
            {"name": n, "digest": s["digest"], "updated_at": s["updated_at"]} for n, s in sorted(app.secrets.items())
        ]})  # fmt: skip

    async def _set_secret(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        value = (req.json or {}).get("value")
        if not isinstance(value, str):
            return web.json_response({"error": "value is required"}, status=400)
        self.add_secret(app.name, p["name"], value)
        app.secrets_version += 1
        s = app.secrets[p["name"]]
        return web.json_response({"name": p["name"], "digest": s["digest"], "updated_at": s["updated_at"],
                                  "version": app.secrets_version})  # fmt: skip

    async def _update_secrets(self, req: Req, app: FakeApp, _: dict) -> web.Response:
        for name, value in ((req.json or {}).get("values") or {}).items():
            if value is None:
                app.secrets.pop(name, None)
            else:
                self.add_secret(app.name, name, value)
        app.secrets_version += 1
        return web.json_response({"secrets": [{"name": n, "digest": s["digest"]} for n, s in app.secrets.items()],
                                  "version": app.secrets_version})  # fmt: skip

    async def _delete_secret(self, req: Req, app: FakeApp, p: dict) -> web.Response:
        if app.secrets.pop(p["name"], None) is None:
            return web.json_response({"error": "secret not found"}, status=404)
        app.secrets_version += 1
        return web.json_response({"version": app.secrets_version})
