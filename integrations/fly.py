"""The Fly Machines REST API over aiohttp: apps, machines, checks, secrets (names and digests).

`FLY_API_URL` is the host without `/v1` (https://api.machines.dev); every call sends
`Authorization: Bearer FLY_API_TOKEN`. Shapes follow the Machines API (and fly-go's `flaps`
client): a machine carries `config`, `image_ref`, `checks`, `events` and `instance_id`; an
update replaces the config whole, so callers send the machine's full config back with one
field changed (`with_image`).

    SophiaError
     └── FlyError          Fly refused or could not be reached (plain words; `status` kept)
          └── FlyAuthError 401: FLY_API_TOKEN was refused

Secret values go to Fly in one request body and nowhere else: never logged, never returned.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.core.errors import SophiaError

log = logging.getLogger("sophia.fly")

# The Machines API holds a /wait request open for at most 60 s; longer waits are several calls.
WAIT_LIMIT_S = 60
# Machine size presets, as flyctl defines them (fly-go `MachinePresets`).
SIZES: dict[str, dict[str, Any]] = {
    **{f"shared-cpu-{n}x": {"cpu_kind": "shared", "cpus": n, "memory_mb": 256 * n} for n in (1, 2, 4, 6, 8)},
    **{f"performance-{n}x": {"cpu_kind": "performance", "cpus": n, "memory_mb": 2048 * n}
       for n in (1, 2, 4, 6, 8, 10, 12, 14, 16)},
}  # fmt: skip


class FlyError(SophiaError):
    """A Fly call failed; the message is safe to show a person."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FlyAuthError(FlyError):
    """The token was refused."""


@dataclass(frozen=True)
class Check:
    """One health check's latest result on a machine (`passing`, `warning` or `critical`)."""

    name: str
    status: str
    output: str = ""
    updated_at: str | None = None  # RFC 3339, set by Fly when the check last ran

    @property
    def passing(self) -> bool:
        return self.status == "passing"

    @property
    def critical(self) -> bool:
        return self.status == "critical"


@dataclass
class Machine:
    """A Fly Machine as the API shows it now."""

    id: str
    name: str
    state: str  # created, started, stopped, suspended, replacing, destroyed, …
    region: str
    image: str  # config.image: the reference the machine was told to run
    checks: list[Check]
    config: dict[str, Any]  # the whole config (send it back whole on update)
    instance_id: str  # changes with every new version of the machine
    image_digest: str | None = None  # image_ref.digest, when Fly resolved one
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first

    @property
    def checks_passing(self) -> bool:
        """Every check passes (a machine without checks passes trivially)."""
        return all(c.passing for c in self.checks)

    @property
    def pinned_image(self) -> str:
        """The image with its digest when Fly gives one (`repo:tag@sha256:…`)."""
        if self.image_digest and "@" not in self.image:
            return f"{self.image}@{self.image_digest}"
        return self.image

    def last_event(self, kind: str) -> dict[str, Any] | None:
        """The newest event of one type (`start`, `exit`, `update`, …)."""
        return next((e for e in self.events if e.get("type") == kind), None)

    def with_image(self, image: str) -> dict[str, Any]:
        """This machine's whole config with only the image changed (Fly replaces configs whole)."""
        config = copy.deepcopy(self.config)
        config["image"] = image
        return config


@dataclass(frozen=True)
class App:
    """A Fly app."""

    name: str
    status: str
    organization: str
    machine_count: int | None = None


@dataclass(frozen=True)
class Secret:
    """A secret's name and the digest of its value; Fly never returns values here."""

    name: str
    digest: str
    updated_at: str | None = None


def machine_from_json(data: dict[str, Any]) -> Machine:
    """Build a Machine from the API's JSON."""
    config = data.get("config") or data.get("incomplete_config") or {}
    ref = data.get("image_ref") or {}
    checks = [
        Check(c.get("name", ""), c.get("status", ""), c.get("output") or "", c.get("updated_at"))
        for c in data.get("checks") or []
        if not str(c.get("name", "")).startswith("bg_deployments_compat")  # flaps compat noise
    ]
    return Machine(
        id=data["id"], name=data.get("name", ""), state=data.get("state", ""),
        region=data.get("region", ""), image=config.get("image", ""), checks=checks,
        config=config, instance_id=data.get("instance_id", ""),
        image_digest=ref.get("digest") or None, events=list(data.get("events") or []),
    )  # fmt: skip


class Fly:
    """An async client for one Fly organization's token.

    Give it the app's shared aiohttp session, or none (a short-lived session per call).
    """

    def __init__(
        self, *, token: str | None, base_url: str = "https://api.machines.dev",
        session: aiohttp.ClientSession | None = None, timeout_s: float = 75.0,
    ) -> None:  # fmt: skip
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._session = session
        # Longer than the 60 s a /wait may be held open by Fly.
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    @property
    def configured(self) -> bool:
        return bool(self._token)

    # -- reading ----------------------------------------------------------------------------
    async def app(self, app: str) -> App:
        """GET /v1/apps/{app}."""
        data = await self._call("GET", f"/v1/apps/{_q(app)}", what=f"app `{app}`")
        org = data.get("organization") or {}
        return App(
            name=data.get("name", app), status=data.get("status", ""),
            organization=org.get("slug") or org.get("name", ""),
            machine_count=data.get("machine_count"),
        )  # fmt: skip

    async def machines(self, app: str) -> list[Machine]:
        """GET /v1/apps/{app}/machines, oldest first (the order Fly lists them)."""
        data = await self._call("GET", f"/v1/apps/{_q(app)}/machines", what=f"app `{app}`")
        return [machine_from_json(m) for m in data or []]

    async def machine(self, app: str, machine_id: str) -> Machine:
        """GET /v1/apps/{app}/machines/{id} (with its checks and recent events)."""
        path = f"/v1/apps/{_q(app)}/machines/{_q(machine_id)}"
        return machine_from_json(await self._call("GET", path, what=f"machine `{machine_id}`"))

    async def secrets(self, app: str) -> list[Secret]:
        """GET /v1/apps/{app}/secrets: names and digests (values are never asked for)."""
        data = await self._call("GET", f"/v1/apps/{_q(app)}/secrets", what=f"app `{app}`")
        return [
            Secret(s.get("name", ""), s.get("digest", ""), s.get("updated_at"))
            for s in (data or {}).get("secrets") or []
        ]

    # -- changing (only ever called by approved executors) ---------------------------------
    async def update_machine(
        self, app: str, machine_id: str, config: dict[str, Any], *, skip_launch: bool = False
    ) -> Machine:
        """POST /v1/apps/{app}/machines/{id} with the whole new config; returns the new version."""
        body: dict[str, Any] = {"config": config}
        if skip_launch:  # keep a stopped machine stopped: it runs the new config on next start
            body["skip_launch"] = True
        path = f"/v1/apps/{_q(app)}/machines/{_q(machine_id)}"
        return machine_from_json(
            await self._call("POST", path, body=body, what=f"machine `{machine_id}`")
        )

    async def wait_for_state(
        self, app: str, machine_id: str, state: str, *, instance_id: str | None = None,
        timeout_s: float = WAIT_LIMIT_S,
    ) -> bool:  # fmt: skip
        """GET …/wait until the machine (this version of it) reaches `state`; False on timeout."""
        deadline = time.monotonic() + timeout_s
        path = f"/v1/apps/{_q(app)}/machines/{_q(machine_id)}/wait"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            params = {"state": state, "timeout": str(max(1, min(WAIT_LIMIT_S, int(left + 0.999))))}
            if instance_id:
                params["instance_id"] = instance_id
            try:
                await self._call("GET", path, params=params, what=f"machine `{machine_id}`")
                return True
            except FlyError as exc:
                if exc.status != 408:  # 408: Fly's own wait ran out; ask again while time is left
                    raise

    async def restart_machine(self, app: str, machine_id: str) -> None:
        """POST …/restart."""
        path = f"/v1/apps/{_q(app)}/machines/{_q(machine_id)}/restart"
        await self._call("POST", path, what=f"machine `{machine_id}`")

    async def create_machine(
        self, app: str, config: dict[str, Any], *, region: str | None = None
    ) -> Machine:
        """POST /v1/apps/{app}/machines: a new machine (scale up clones an existing config)."""
        body: dict[str, Any] = {"config": config}
        if region:
            body["region"] = region
        data = await self._call(
            "POST", f"/v1/apps/{_q(app)}/machines", body=body, what=f"app `{app}`"
        )
        return machine_from_json(data)

    async def destroy_machine(self, app: str, machine_id: str) -> None:
        """DELETE …/machines/{id}?force=true (scale down)."""
        path = f"/v1/apps/{_q(app)}/machines/{_q(machine_id)}"
        await self._call("DELETE", path, params={"force": "true"}, what=f"machine `{machine_id}`")

    async def set_secret(self, app: str, name: str, value: str) -> Secret:
        """POST /v1/apps/{app}/secrets/{name} {"value": …}; returns the new digest, not the value."""
        path = f"/v1/apps/{_q(app)}/secrets/{_q(name)}"
        data = await self._call("POST", path, body={"value": value}, what=f"app `{app}`")
        return Secret(data.get("name", name), data.get("digest", ""), data.get("updated_at"))

    # -- plumbing ---------------------------------------------------------------------------
    @asynccontextmanager
    async def _client(self) -> AsyncIterator[aiohttp.ClientSession]:
        if self._session is not None and not self._session.closed:
            yield self._session
            return
        async with aiohttp.ClientSession() as session:
            yield session

    async def _call(
        self, method: str, path: str, *, what: str, body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:  # fmt: skip
        if not self._token:
            raise FlyError("Fly is not configured: set FLY_API_TOKEN.")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        url = self.base_url + path
        try:
            async with (
                self._client() as session,
                session.request(
                    method, url, json=body, params=params, headers=headers, timeout=self._timeout
                ) as response,
            ):
                status = response.status
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("fly unreachable", extra={"path": path, "error": type(exc).__name__})
            raise FlyError(
                f"Fly could not be reached at {self.base_url} ({type(exc).__name__})."
            ) from None
        if status >= 400:
            log.info("fly refused", extra={"method": method, "path": path, "status": status})
            raise _error(status, _message(text), what)
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except ValueError:
            raise FlyError(
                f"Fly answered {method} {path} with something that is not JSON."
            ) from None


def _q(part: str) -> str:
    return quote(part, safe="")


def _message(text: str) -> str:
    """The `error` field of Fly's error body, else a short piece of the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or "")[:300]
    return ""


def _error(status: int, message: str, what: str) -> FlyError:
    if status == 401:
        return FlyAuthError("FLY_API_TOKEN was refused by Fly (401); check the token.", status=401)
    if status == 403:
        return FlyError(f"FLY_API_TOKEN may not access {what} (403).", status=403)
    if status == 404:
        return FlyError(f"Fly has no {what} (404).", status=404)
    if status == 408:
        return FlyError(f"Fly timed out waiting on {what}.", status=408)
    detail = f": {message}" if message else ""
    return FlyError(f"Fly answered {status} for {what}{detail}", status=status)
