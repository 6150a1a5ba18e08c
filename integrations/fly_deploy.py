"""Approved Fly deploys: a rolling update machine by machine, with rollback (DESIGN §7).

A request is bound to the target image and to the app's current release (every started or
stopped machine with its image and digest). On approval each machine in turn gets its whole
config back with only the image changed, must reach `started`, then pass its checks within
`SOPHIA_DEPLOY_CHECK_TIMEOUT`. The first machine whose checks go critical or time out stops the
rollout, and every machine updated in this deploy — the failing one included — goes back to
its previous image.

Progress is written to the kv store before and after every step (namespace `fly.deploy`, key
the approval id), so a second run of `execute` — after a restart, `reconcile` runs it again —
picks up where the first stopped and never updates a machine twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime
from typing import Any

from bot.core.approvals import ApprovalRequest, Report
from bot.services import Services
from integrations.fly import Fly, FlyError, Machine

NAMESPACE = "fly.deploy"
PROGRESS_TTL_S = 14 * 86400  # long after any approval could be re-run
DEPLOYABLE = ("started", "stopped")


def fly_client(services: Services) -> Fly:
    """The configured client, or a FlyError naming the variable to set."""
    fly = services.fly
    if fly is None or not fly.configured:
        raise FlyError("Fly is not configured: set FLY_API_TOKEN.")
    return fly


def short_digest(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "unknown"


def release_of(rows: list[tuple[str, str, str | None]]) -> str:
    """A short fingerprint of (machine id, image, digest) rows: the app's current release."""
    text = "\n".join(f"{i} {img} {d or ''}" for i, img, d in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


async def prepare_deploy(
    services: Services, app: str, image: str | None, *, requester: str, channel: str | None,
    thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """Look at the app now and store a deploy request bound to the image and the release."""
    if services.approvals is None:
        raise FlyError("Approvals are not available, so nothing can be deployed.")
    machines = [m for m in await fly_client(services).machines(app) if m.state in DEPLOYABLE]
    if not machines:
        raise FlyError(f"`{app}` has no started or stopped machines to deploy to.")
    current = sorted({m.image for m in machines})
    redeploy = image is None
    if redeploy:
        if len(current) > 1:
            listed = ", ".join(f"`{i}`" for i in current)
            raise FlyError(
                f"`{app}`'s machines run different images ({listed}); name the image to deploy."
            )
        image = current[0]
    elif current == [image]:
        raise FlyError(
            f"Every machine of `{app}` already runs `{image}`; `/sophia deploy {app}` redeploys it."
        )
    digest = image.split("@", 1)[1] if "@" in image else None
    if redeploy:
        digest = next((m.image_digest for m in machines if m.image_digest), None)
    release = release_of([(m.id, m.image, m.image_digest) for m in machines])
    listed = "\n".join(f"`{m.id}` {m.name} ({m.region}, {m.state})" for m in machines[:12])
    if len(machines) > 12:
        listed += f"\n… and {len(machines) - 12} more"
    now = ", ".join(
        f"`{i}` ({short_digest(next((m.image_digest for m in machines if m.image == i), None))})"
        for i in current
    )
    timeout = int(services.settings.deploy_check_timeout.total_seconds())
    verb = "Redeploy" if redeploy else "Deploy"
    return await services.approvals.create(
        kind="fly.deploy", target=app,
        params={
            "app": app, "image": image, "redeploy": redeploy,
            "machines": [
                {"id": m.id, "name": m.name, "region": m.region, "state": m.state,
                 "image": m.image, "digest": m.image_digest}
                for m in machines
            ],
            "ask_again": f"/sophia deploy {app}" + ("" if redeploy else f" {image}"),
        },
        bound_version=f"{release} {image}",
        summary=f"{verb} `{image}` to *{app}* ({len(machines)} machine{'s' if len(machines) != 1 else ''})",
        requester=requester, channel=channel, thread_ts=thread_ts,
        facts=[
            ("App", f"`{app}`"),
            ("Image", f"`{image}`\ndigest `{short_digest(digest)}`" if digest else f"`{image}`\ndigest resolved by Fly on update"),
            ("Current release", f"{now}\nrelease `{release}`"),
            ("Machines to update, in order", listed),
            ("Rollout", f"one machine at a time; each must pass its checks within {timeout}s, "
                        "else every machine updated in this deploy goes back to its previous image"),
        ],
    )  # fmt: skip


def _ms(value: str | None) -> float | None:
    """RFC 3339 → epoch milliseconds (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


async def wait_healthy(
    fly: Fly, app: str, machine_id: str, instance_id: str | None, timeout_s: float
) -> tuple[bool, str]:
    """Wait for `started`, then for every check to pass; (ok, why not) within `timeout_s`.

    A check counts as critical only once Fly has run it on this start: checks read
    `warning`/`critical` with no fresh `updated_at` while a new version boots.
    """
    deadline = time.monotonic() + timeout_s
    if not await fly.wait_for_state(
        app, machine_id, "started", instance_id=instance_id, timeout_s=timeout_s
    ):
        return False, f"did not reach `started` within {int(timeout_s)}s"
    poll = max(0.05, min(2.0, timeout_s / 20))
    last: Machine | None = None
    while True:
        last = await fly.machine(app, machine_id)
        if last.state not in ("started", "replacing", "starting"):
            return False, f"went `{last.state}` after starting"
        start = (last.last_event("start") or {}).get("timestamp")
        for check in last.checks:
            ran = _ms(check.updated_at)
            if check.critical and ran is not None and (start is None or ran >= start):
                return False, f"check `{check.name}` is critical: {check.output or 'no output'}"
        if last.checks_passing:
            return True, ""
        if time.monotonic() >= deadline:
            pending = ", ".join(f"`{c.name}` {c.status}" for c in last.checks if not c.passing)
            return False, f"checks did not pass within {int(timeout_s)}s ({pending})"
        await asyncio.sleep(poll)


class DeployExecutor:
    """`ActionExecutor` for kind `fly.deploy`."""

    def __init__(self, services: Services) -> None:
        self._services = services

    @property
    def _fly(self) -> Fly:
        return fly_client(self._services)

    async def _progress(self, request: ApprovalRequest) -> dict[str, Any]:
        stored = await self._services.store.kv_get(NAMESPACE, request.id)
        return stored or {"phase": "rolling", "machines": {}, "failure": None}

    async def _save(self, request: ApprovalRequest, progress: dict[str, Any]) -> None:
        await self._services.store.kv_put(NAMESPACE, request.id, progress, ttl_s=PROGRESS_TTL_S)

    async def current_version(self, request: ApprovalRequest) -> str:
        """The release now, counting machines this deploy already changed at their old image."""
        progress = await self._progress(request)
        before = {t["id"]: t for t in request.params["machines"]}
        rows = []
        for m in await self._fly.machines(request.params["app"]):
            if m.state not in DEPLOYABLE and m.id not in progress["machines"]:
                continue
            if m.id in progress["machines"] and m.id in before:
                rows.append((m.id, before[m.id]["image"], before[m.id]["digest"]))
            else:
                rows.append((m.id, m.image, m.image_digest))
        return f"{release_of(rows)} {request.params['image']}"

    async def already_done(self, request: ApprovalRequest) -> str | None:
        """Every machine already on the target image with its checks passing."""
        progress = await self._progress(request)
        if progress["phase"] == "done":
            return f"`{request.params['image']}` is deployed to `{request.params['app']}`."
        if request.params["redeploy"] or progress["phase"] != "rolling" or progress["machines"]:
            return None  # a redeploy, a failed rollout or one under way is for `execute` to finish
        fly, image = self._fly, request.params["image"]
        for target in request.params["machines"]:
            try:
                m = await fly.machine(request.params["app"], target["id"])
            except FlyError as exc:
                if exc.status == 404:
                    continue
                raise
            if m.image != image or (m.state == "started" and not m.checks_passing):
                return None
        return f"Every machine of `{request.params['app']}` already runs `{image}` with its checks passing."

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        """Roll out machine by machine; on a failed machine roll back and raise a FlyError."""
        progress = await self._progress(request)
        if progress["phase"] == "rolling":
            await self._roll_out(request, report, progress)
        if progress["phase"] == "rolling_back":
            await self._roll_back(request, report, progress)
        if progress["phase"] == "failed":
            raise FlyError(progress["failure"])
        params = request.params
        updated = sum(1 for e in progress["machines"].values() if e.get("previous") is not None)
        return (
            f"Deployed `{params['image']}` to `{params['app']}`: {updated} of "
            f"{len(params['machines'])} machines updated, all checks passing."
        )

    async def _roll_out(
        self, request: ApprovalRequest, report: Report, progress: dict[str, Any]
    ) -> None:
        params, fly = request.params, self._fly
        app, image, redeploy = params["app"], params["image"], params["redeploy"]
        timeout = self._services.settings.deploy_check_timeout.total_seconds()
        total = len(params["machines"])
        if not progress["machines"]:
            await report(
                f":rocket: Rolling out `{image}` to `{app}`, one machine at a time ({total})."
            )
        for n, target in enumerate(params["machines"], 1):
            mid, label = (
                target["id"],
                f"{n}/{total} `{target['name'] or target['id']}` ({target['region']})",
            )
            entry = progress["machines"].get(mid)
            if entry and entry["step"] == "done":
                continue
            try:
                m = await fly.machine(app, mid)
            except FlyError as exc:
                if exc.status != 404:
                    raise
                progress["machines"][mid] = {"step": "done", "previous": None}
                await self._save(request, progress)
                await report(f":heavy_minus_sign: {label} no longer exists; skipped.")
                continue
            if (
                entry is None
                and not redeploy
                and m.image == image
                and (m.state != "started" or m.checks_passing)
            ):
                progress["machines"][mid] = {"step": "done", "previous": None}
                await self._save(request, progress)
                await report(f":heavy_check_mark: {label} already runs `{image}`; skipped.")
                continue
            landed = entry is not None and (
                m.instance_id != entry["prev_instance"] if redeploy else m.image == image
            )
            if entry is None or not landed:
                entry = {"step": "updating", "previous": m.image, "prev_instance": m.instance_id,
                         "state": m.state, "instance": None}  # fmt: skip
                progress["machines"][mid] = entry
                await self._save(request, progress)  # before the call: a restart must know
                new = await fly.update_machine(
                    app, mid, m.with_image(image), skip_launch=m.state == "stopped"
                )
                entry.update(step="updated", instance=new.instance_id)
                await self._save(request, progress)
            instance = entry.get("instance") or m.instance_id
            if entry["state"] == "stopped":
                await fly.wait_for_state(
                    app, mid, "stopped", instance_id=instance, timeout_s=timeout
                )
                ok, why = True, ""
            else:
                ok, why = await wait_healthy(fly, app, mid, instance, timeout)
            if not ok:
                progress["phase"] = "rolling_back"
                progress["failure"] = f"{label} {why}"
                await self._save(request, progress)
                return
            entry["step"] = "done"
            await self._save(request, progress)
            now = await fly.machine(app, mid)
            if entry["state"] == "stopped":
                await report(
                    f":white_check_mark: {label} updated; it stays stopped and runs `{image}` on its next start."
                )
            else:
                await report(
                    f":white_check_mark: {label} runs `{image}` (digest `{short_digest(now.image_digest)}`), checks passing."
                )
        progress["phase"] = "done"
        await self._save(request, progress)

    async def _roll_back(
        self, request: ApprovalRequest, report: Report, progress: dict[str, Any]
    ) -> None:
        params, fly = request.params, self._fly
        app, image = params["app"], params["image"]
        timeout = self._services.settings.deploy_check_timeout.total_seconds()
        touched = [
            (mid, e) for mid, e in progress["machines"].items()
            if e.get("previous") is not None and e["step"] != "rolled_back"
        ]  # fmt: skip
        if touched and not progress.get("rollback_announced"):
            progress["rollback_announced"] = True
            await self._save(request, progress)
            await report(
                f":x: {progress['failure']}. Stopping the rollout and rolling back "
                f"{len(touched)} machine{'s' if len(touched) != 1 else ''}."
            )
        names = {t["id"]: t["name"] or t["id"] for t in params["machines"]}
        back = progress.setdefault("rolled_back", [])
        for mid, entry in reversed(touched):
            previous = entry["previous"]
            try:
                m = await fly.machine(app, mid)
            except FlyError as exc:
                if exc.status != 404:
                    raise
                entry["step"] = "rolled_back"
                await self._save(request, progress)
                continue
            if params["redeploy"]:
                line = f":information_source: `{names[mid]}` was redeployed on the same image; nothing older to go back to."
            else:
                if m.image != previous:
                    new = await fly.update_machine(
                        app, mid, m.with_image(previous), skip_launch=entry["state"] == "stopped"
                    )
                    m = new
                healthy = True
                if entry["state"] != "stopped":
                    healthy, _ = await wait_healthy(fly, app, mid, m.instance_id, timeout)
                state = "checks passing" if healthy else "checks not passing yet — look at it"
                line = (
                    f":leftwards_arrow_with_hook: `{names[mid]}` is back on `{previous}` ({state})."
                )
                back.append(names[mid])
            entry["step"] = "rolled_back"
            await self._save(request, progress)
            await report(line)
        listed = ", ".join(f"`{n}`" for n in back) or "none needed"
        progress["phase"] = "failed"
        progress["failure"] = (
            f"Deploy of `{image}` to `{app}` stopped: {progress['failure']}. "
            f"Rolled back to the previous image: {listed}."
        )
        await self._save(request, progress)
