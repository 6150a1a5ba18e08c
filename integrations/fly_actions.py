"""Approved Fly actions besides deploys: setting a secret, scaling count or machine size.

Secret values never enter the approvals table, a Slack message or a log line: the value typed
in the modal is kept in the kv store under the request's id (namespace `fly.secret_values`)
for as long as the request can be approved, and deleted as soon as Fly has it. The request
shows the secret's name and its current digest only.

Scaling works towards a target (a machine count, or a size preset for every machine), so
running it again after a restart finds the work already done instead of repeating it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from bot.core.approvals import ApprovalRequest, Report
from bot.services import Services
from integrations.fly import SIZES, FlyError, Machine
from integrations.fly_deploy import DEPLOYABLE, fly_client

SECRET_VALUES = "fly.secret_values"
SCALE = "fly.scale"
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_COUNT = 50  # a typo like `scale web 300` should not reach an approver


def _need_approvals(services: Services) -> None:
    if services.approvals is None:
        raise FlyError("Approvals are not available, so nothing can be changed.")


# -- secrets -----------------------------------------------------------------------------
async def secret_digest(services: Services, app: str, name: str) -> str:
    """The secret's current digest, or `absent`."""
    found = {s.name: s.digest for s in await fly_client(services).secrets(app)}
    return found.get(name, "absent")


async def prepare_secret_set(
    services: Services, app: str, name: str, value: str, *, requester: str,
    channel: str | None, thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """Store a request to set one secret; the value waits in kv, never in the request."""
    _need_approvals(services)
    if not SECRET_NAME.match(name):
        raise FlyError(f"`{name}` is not a valid secret name (letters, digits and `_`).")
    if not value:
        raise FlyError("The secret value is empty; nothing to set.")
    digest = await secret_digest(services, app, name)
    now = "not set yet" if digest == "absent" else f"set, digest `{digest[:12]}`"
    request = await services.approvals.create(
        kind="fly.secret", target=f"{app} {name}",
        params={"app": app, "name": name, "ask_again": f"/sophia fly secrets set {app} {name}"},
        bound_version=digest, summary=f"Set the secret `{name}` on *{app}*",
        requester=requester, channel=channel, thread_ts=thread_ts,
        facts=[
            ("App", f"`{app}`"), ("Secret", f"`{name}`"), ("Now", now),
            ("New value", "entered privately in a form; never shown"),
            ("Takes effect", f"when machines are next updated (`/sophia deploy {app}`)"),
        ],
    )  # fmt: skip
    ttl = services.settings.approval_ttl.total_seconds()
    await services.store.kv_put(SECRET_VALUES, request.id, value, ttl_s=ttl + 60)
    return request


class SecretExecutor:
    """`ActionExecutor` for kind `fly.secret`."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def current_version(self, request: ApprovalRequest) -> str:
        return await secret_digest(self._services, request.params["app"], request.params["name"])

    async def already_done(self, request: ApprovalRequest) -> str | None:
        """The value is gone from kv and the digest moved: it was set by an earlier run."""
        if await self._services.store.kv_get(SECRET_VALUES, request.id) is not None:
            return None
        now = await self.current_version(request)
        if now not in ("absent", request.bound_version):
            return f"`{request.params['name']}` is set on `{request.params['app']}` (digest `{now[:12]}`)."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        app, name = request.params["app"], request.params["name"]
        value = await self._services.store.kv_get(SECRET_VALUES, request.id)
        if value is None:
            raise FlyError(
                f"The value typed for `{name}` is no longer held (it is kept only while the "
                "request is open), so nothing was set."
            )
        secret = await fly_client(self._services).set_secret(app, name, value)
        await self._services.store.kv_delete(SECRET_VALUES, request.id)
        return (
            f"Set `{name}` on `{app}` (digest `{secret.digest[:12]}`). Running machines get it "
            f"on their next update: `/sophia deploy {app}`."
        )


# -- scaling -----------------------------------------------------------------------------
def _guest_of(m: Machine) -> dict[str, Any]:
    g = m.config.get("guest") or {}
    return {k: g.get(k) for k in ("cpu_kind", "cpus", "memory_mb")}


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


async def prepare_scale(
    services: Services, app: str, spec: str, *, requester: str, channel: str | None,
    thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """A request to scale to a machine count (`3`) or a size preset (`shared-cpu-2x`)."""
    _need_approvals(services)
    machines = [m for m in await fly_client(services).machines(app) if m.state in DEPLOYABLE]
    common = {"requester": requester, "channel": channel, "thread_ts": thread_ts}
    if spec.isdigit():
        count = int(spec)
        if count < 1 or count > MAX_COUNT:
            raise FlyError(f"Scale to between 1 and {MAX_COUNT} machines.")
        if count == len(machines):
            raise FlyError(f"`{app}` already has {count} machines.")
        if not machines:
            raise FlyError(f"`{app}` has no machine to copy; deploy it first.")
        params: dict[str, Any] = {
            "app": app,
            "mode": "count",
            "count": count,
            "from": len(machines),
        }
        if count > len(machines):
            template = machines[0]
            params.update(template=template.id, region=template.region)
            change = f"adds {count - len(machines)} copies of `{template.name or template.id}` ({template.region})"
        else:
            # Stopped machines go first, then the newest: the running, older ones keep serving.
            ordered = sorted(machines, key=lambda m: (m.state == "stopped", m.id), reverse=True)
            params["remove"] = [m.id for m in ordered[: len(machines) - count]]
            change = "destroys " + ", ".join(f"`{i}`" for i in params["remove"])
        params["ask_again"] = f"/sophia fly scale {app} {count}"
        return await services.approvals.create(
            kind="fly.scale", target=app, params=params,
            bound_version=_fingerprint(sorted(m.id for m in machines)),
            summary=f"Scale *{app}* from {len(machines)} to {count} machines",
            facts=[("App", f"`{app}`"), ("Machines", f"{len(machines)} → {count}"), ("Change", change)],
            **common,
        )  # fmt: skip
    if spec in SIZES:
        guest = SIZES[spec]
        todo = [m for m in machines if _guest_of(m) != guest]
        if not todo:
            raise FlyError(f"Every machine of `{app}` is already `{spec}`.")
        params = {
            "app": app, "mode": "size", "size": spec,
            "machines": [{"id": m.id, "name": m.name, "state": m.state} for m in todo],
            "ask_again": f"/sophia fly scale {app} {spec}",
        }  # fmt: skip
        sizes = sorted(
            {f"{g['cpus']}×{g['cpu_kind']} {g['memory_mb']}MB" for g in map(_guest_of, todo)}
        )
        return await services.approvals.create(
            kind="fly.scale", target=app, params=params,
            bound_version=_fingerprint(sorted((m.id, _guest_of(m)) for m in machines)),
            summary=f"Resize {len(todo)} machine{'s' if len(todo) != 1 else ''} of *{app}* to `{spec}`",
            facts=[
                ("App", f"`{app}`"), ("Now", ", ".join(sizes)),
                ("New size", f"`{spec}`: {guest['cpus']}×{guest['cpu_kind']} CPU, {guest['memory_mb']} MB"),
                ("Machines", ", ".join(f"`{m.id}`" for m in todo)),
            ],
            **common,
        )  # fmt: skip
    sizes = ", ".join(f"`{s}`" for s in SIZES)
    raise FlyError(f"`{spec}` is neither a machine count nor a size. Sizes: {sizes}.")


class ScaleExecutor:
    """`ActionExecutor` for kind `fly.scale`: works towards the target, so re-runs are safe."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def _machines(self, app: str) -> list[Machine]:
        return [m for m in await fly_client(self._services).machines(app) if m.state in DEPLOYABLE]

    async def current_version(self, request: ApprovalRequest) -> str:
        if await self._services.store.kv_get(SCALE, request.id):
            return request.bound_version  # the app changed because this request started acting
        machines = await self._machines(request.params["app"])
        if request.params["mode"] == "count":
            return _fingerprint(sorted(m.id for m in machines))
        return _fingerprint(sorted((m.id, _guest_of(m)) for m in machines))

    async def already_done(self, request: ApprovalRequest) -> str | None:
        p = request.params
        machines = await self._machines(p["app"])
        if p["mode"] == "count" and len(machines) == p["count"]:
            return f"`{p['app']}` has {p['count']} machines."
        if p["mode"] == "size" and all(_guest_of(m) == SIZES[p["size"]] for m in machines):
            return f"Every machine of `{p['app']}` is `{p['size']}`."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        p, fly = request.params, fly_client(self._services)
        await self._services.store.kv_put(SCALE, request.id, True, ttl_s=14 * 86400)
        timeout = self._services.settings.deploy_check_timeout.total_seconds()
        app = p["app"]
        if p["mode"] == "count" and "remove" in p:
            present = {m.id for m in await fly.machines(app)}
            for mid in p["remove"]:
                if mid in present:
                    await fly.destroy_machine(app, mid)
                    await report(f":heavy_minus_sign: Destroyed `{mid}`.")
            return f"`{app}` scaled to {p['count']} machines."
        if p["mode"] == "count":
            while len(await self._machines(app)) < p["count"]:
                config = (await fly.machine(app, p["template"])).config
                new = await fly.create_machine(app, config, region=p["region"])
                started = await fly.wait_for_state(
                    app, new.id, "started", instance_id=new.instance_id, timeout_s=timeout
                )
                await report(
                    f":heavy_plus_sign: Created `{new.id}` in {new.region}"
                    + ("" if started else " (not started yet)") + "."
                )  # fmt: skip
            return f"`{app}` scaled to {p['count']} machines."
        guest = SIZES[p["size"]]
        for target in p["machines"]:
            m = await fly.machine(app, target["id"])
            if _guest_of(m) == guest:
                continue
            config = dict(m.config)
            config["guest"] = {**(config.get("guest") or {}), **guest}
            new = await fly.update_machine(app, m.id, config, skip_launch=m.state == "stopped")
            if m.state == "started":
                await fly.wait_for_state(
                    app, m.id, "started", instance_id=new.instance_id, timeout_s=timeout
                )
            await report(f":white_check_mark: `{target['name'] or m.id}` is now `{p['size']}`.")
        return f"Every machine of `{app}` is now `{p['size']}`."
