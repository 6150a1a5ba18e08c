"""Restarting one Fly machine as an approved action (`fly.restart`), offered by monitor alerts.

The request is bound to the machine's `instance_id` (its version): if the machine was updated
or replaced since the alert, the approval is void. The restart is sent at most once: a marker
is stored before the call, so a double click, a second replica or a restart mid-way finds it
and reports instead of restarting again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.approvals import ApprovalError, ApprovalRequest, Report

if TYPE_CHECKING:
    from bot.services import Services

KIND = "fly.restart"
SENT = "fly.restart.sent"  # kv namespace: approval id → the restart was sent
SENT_TTL_S = 14 * 86400  # long after any approval could be run again


def _fly(services: Services) -> Any:
    if services.fly is None or not getattr(services.fly, "configured", False):
        raise ApprovalError("Fly is not configured: set FLY_API_TOKEN.")
    return services.fly


async def prepare_restart(
    services: Services, app: str, machine_id: str, *, requester: str, channel: str | None,
    thread_ts: str | None, reason: str | None = None,
) -> ApprovalRequest:  # fmt: skip
    """Store a request to restart one machine, bound to its current version."""
    if services.approvals is None:
        raise ApprovalError("Approvals are not available, so nothing can be restarted.")
    machine = await _fly(services).machine(app, machine_id)
    name = machine.name or machine.id
    facts = [
        ("App", f"`{app}`"), ("Machine", f"`{name}` ({machine.id}, {machine.region})"),
        ("State", machine.state), ("Image", f"`{machine.image}`"),
    ]  # fmt: skip
    if reason:
        facts.append(("Why", reason[:300]))
    return await services.approvals.create(
        kind=KIND, target=f"{app}/{machine.id}",
        params={"app": app, "machine": machine.id, "name": name},
        bound_version=machine.instance_id or machine.id,
        summary=f"Restart machine `{name}` of `{app}`", requester=requester, channel=channel,
        thread_ts=thread_ts, facts=facts, link=f"https://fly.io/apps/{app}/machines",
    )  # fmt: skip


class RestartExecutor:
    """Carries out approved `fly.restart` requests."""

    def __init__(self, services: Services) -> None:
        self._services = services  # Fly is read when acting: it may be configured after start

    async def current_version(self, request: ApprovalRequest) -> str:
        machine = await _fly(self._services).machine(
            request.params["app"], request.params["machine"]
        )
        return machine.instance_id or machine.id

    async def already_done(self, request: ApprovalRequest) -> str | None:
        if await self._services.store.kv_get(SENT, request.id) is not None:
            name = request.params.get("name", request.params["machine"])
            return f"The restart of `{name}` was already sent; not sending it twice."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        app, machine, name = (request.params[k] for k in ("app", "machine", "name"))
        await self._services.store.kv_put(SENT, request.id, True, ttl_s=SENT_TTL_S)
        await _fly(self._services).restart_machine(app, machine)
        return f"Restarted machine `{name}` of `{app}`. The monitor reports when its checks pass."
