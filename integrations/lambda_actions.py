"""The approved Lambda actions — launch, terminate, run a command — and what Sophia remembers.

The Lambda API gives no launch time and no owner, so Sophia keeps both in the store (kv,
shared by replicas and restarts): when an instance was launched (or first seen) and who asked,
which instance an approval launched, and which approved commands were started. Each executor
asks that record and the API before acting, so a double click, a second replica or a restart
mid-way never launches, terminates or runs twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.approvals import ApprovalRequest, Report
from bot.core.errors import SophiaError
from integrations.lambda_labs import Instance, LambdaCloud, LambdaError, LambdaNotFound, dollars
from integrations.lambda_ssh import code_block, run_streaming

log = logging.getLogger("sophia.lambda")

INSTANCES = "lambda.instances"  # instance id → {since, requester, approval, seen_only}
LAUNCHES = "lambda.launches"  # approval id → instance id
RUNS = "lambda.runs"  # approval id → {started}
HOST_KEYS = "lambda.hostkeys"  # instance id → SSH host key fingerprint (trust on first use)
SSH_USER = "ubuntu"  # the login on Lambda's images


def launch_name(approval_id: str) -> str:
    """The instance name a launch carries, so a restart can find what it launched."""
    return f"sophia-{approval_id}"


def duration(seconds: float) -> str:
    """`12m`, `3h 05m`, `2d 4h`."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def ssh_command(ip: str, port: int) -> str:
    """What a person types to reach the instance."""
    return f"ssh {SSH_USER}@{ip}" if port == 22 else f"ssh -p {port} {SSH_USER}@{ip}"


@dataclass(frozen=True)
class Uptime:
    """How long an instance has run as far as Sophia knows, and who launched it."""

    seconds: float
    at_least: bool  # Sophia did not launch it: counted from when she first saw it
    requester: str | None

    def cost_cents(self, instance: Instance) -> float:
        return self.seconds / 3600 * instance.price_cents_per_hour

    def describe(self, instance: Instance) -> str:
        sign = "≥ " if self.at_least else ""
        text = (
            f"up {sign}{duration(self.seconds)} · {sign}{dollars(self.cost_cents(instance))} so far"
        )
        return text + (f" · launched by <@{self.requester}>" if self.requester else "")


class Records:
    """Sophia's notes about instances, in the shared store."""

    def __init__(self, store: Any, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def uptimes(self, instances: list[Instance]) -> dict[str, Uptime]:
        """Uptime per live instance; instances seen for the first time are noted now."""
        notes = await self.store.kv_items(INSTANCES)
        now = self.clock()
        out = {}
        for inst in instances:
            note = notes.get(inst.id)
            if note is None:
                note = {"since": now, "seen_only": True}
                await self.store.kv_put(INSTANCES, inst.id, note)
            out[inst.id] = Uptime(
                now - note["since"], bool(note.get("seen_only")), note.get("requester")
            )
        return out

    async def prune(self, live: list[Instance]) -> None:
        """Forget instances that are gone (terminated outside Sophia, or preempted).

        Notes younger than ten minutes stay: a listing fetched just before a launch must not
        erase the launch's fresh note.
        """
        alive = {i.id for i in live if not i.gone}
        cutoff = self.clock() - 600
        for instance_id, note in (await self.store.kv_items(INSTANCES)).items():
            if instance_id not in alive and note.get("since", 0) < cutoff:
                await self.forget(instance_id)

    async def launched(self, request: ApprovalRequest, instance_id: str) -> None:
        await self.store.kv_put(LAUNCHES, request.id, instance_id)
        note = {"since": self.clock(), "requester": request.requester, "approval": request.id}
        await self.store.kv_put(INSTANCES, instance_id, note)

    async def forget(self, instance_id: str) -> None:
        await self.store.kv_delete(INSTANCES, instance_id)
        await self.store.kv_delete(HOST_KEYS, instance_id)


class LaunchExecutor:
    """`lambda.launch`: bound to type, region and hourly price; posts IP and SSH command."""

    def __init__(self, cloud: LambdaCloud, records: Records) -> None:
        self._cloud = cloud
        self._records = records

    async def current_version(self, request: ApprovalRequest) -> str:
        p = request.params
        offered = {t.name: t for t in await self._cloud.instance_types()}
        if p["type"] not in offered:
            raise LambdaError(f"Lambda no longer offers `{p['type']}`.")
        return launch_version(p["type"], p["region"], offered[p["type"]].price_cents_per_hour)

    async def already_done(self, request: ApprovalRequest) -> str | None:
        instance_id = await self._records.store.kv_get(LAUNCHES, request.id)
        if instance_id is None:  # launched, then a crash before the note: find it by name
            name = launch_name(request.id)
            found = [i for i in await self._cloud.instances() if i.name == name]
            if not found:
                return None
            instance_id = found[0].id
            await self._records.launched(request, instance_id)
        return (
            f"Instance `{instance_id}` was already launched for this request; nothing more to do."
        )

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        p = request.params
        instance_id = await self._cloud.launch(
            instance_type=p["type"], region=p["region"], ssh_key_name=p["ssh_key"],
            name=launch_name(request.id),
        )  # fmt: skip
        await self._records.launched(request, instance_id)
        await report(f":rocket: Launched `{instance_id}`; waiting for it to boot (a few minutes)…")
        terminate = f"`/sophia gpu terminate {instance_id}` when you are done"
        try:
            instance = await self._cloud.wait_active(instance_id)
        except LambdaError as exc:
            return f"Launched `{instance_id}`, but I lost track of it while it booted: {exc} `/sophia gpu list` shows its state; {terminate}."  # fmt: skip
        if instance is None:
            waited = duration(self._cloud.boot_timeout_s)
            return f"Launched `{instance_id}`, but it was not up after {waited}; `/sophia gpu list` shows when it is. {terminate}."  # fmt: skip
        price = dollars(instance.price_cents_per_hour)
        return (
            f"`{p['type']}` instance `{instance_id}` is up in {p['region']} at {price}/h.\n"
            f"IP: `{instance.ip}` · SSH: `{ssh_command(instance.ip or '', self._cloud.ssh_port)}`\n"
            f"It costs money until terminated: {terminate}."
        )


def launch_version(type_name: str, region: str, price_cents: int) -> str:
    """What a launch approval is bound to: this type, in this region, at this price."""
    return f"{type_name}@{region}:{price_cents}c/h"


class TerminateExecutor:
    """`lambda.terminate`: exactly one terminate call per approval."""

    def __init__(self, cloud: LambdaCloud, records: Records) -> None:
        self._cloud = cloud
        self._records = records

    async def current_version(self, request: ApprovalRequest) -> str:
        return (await self._cloud.instance(request.params["instance_id"])).id

    async def already_done(self, request: ApprovalRequest) -> str | None:
        instance_id = request.params["instance_id"]
        try:
            instance = await self._cloud.instance(instance_id)
        except LambdaNotFound:
            await self._records.forget(instance_id)
            return f"Instance `{instance_id}` no longer exists; nothing to terminate."
        if instance.gone:
            await self._records.forget(instance_id)
            return f"Instance `{instance_id}` is already {instance.status}; nothing more to do."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        instance_id = request.params["instance_id"]
        instance = await self._cloud.instance(instance_id)
        uptime = (await self._records.uptimes([instance]))[instance_id]
        await self._cloud.terminate(instance_id)
        await self._records.forget(instance_id)
        sign = "≥ " if uptime.at_least else ""
        return (
            f"Terminated `{instance_id}` ({instance.type_name} in {instance.region}) after "
            f"{sign}{duration(uptime.seconds)}, about {sign}{dollars(uptime.cost_cents(instance))}."
        )


class RunExecutor:
    """`lambda.run`: one approved command over SSH, its output's tail streamed to the thread."""

    def __init__(self, cloud: LambdaCloud, records: Records, key_path: Path | None) -> None:
        self._cloud = cloud
        self._records = records
        self._key_path = key_path
        self.flush_every_s = 2.0  # how often output reaches the thread while it flows
        self.timeout_s = 3600.0  # longer jobs belong in tmux/nohup on the instance

    async def current_version(self, request: ApprovalRequest) -> str:
        instance = await self._cloud.instance(request.params["instance_id"])
        return f"{instance.id}@{instance.ip}"

    async def already_done(self, request: ApprovalRequest) -> str | None:
        if await self._records.store.kv_get(RUNS, request.id) is not None:
            return (
                "This command was already started (the run was interrupted, e.g. by a restart); "
                "I did not run it again. Anything it wrote is on the instance."
            )
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        p = request.params
        if self._key_path is None:
            raise SophiaError("Running commands needs the private key: set LAMBDA_SSH_KEY_PATH.")
        store = self._records.store
        await store.kv_put(RUNS, request.id, {"started": self._records.clock()})
        known = await store.kv_get(HOST_KEYS, p["instance_id"])
        await report(f":computer: Running `{p['command']}` on `{p['instance_id']}`…")
        result = await run_streaming(
            host=p["ip"], port=self._cloud.ssh_port, username=SSH_USER, key_path=self._key_path,
            command=p["command"], report=report, known_host_key=known,
            flush_every_s=self.flush_every_s, timeout_s=self.timeout_s,
        )  # fmt: skip
        if known is None and result.host_key:
            await store.kv_put(HOST_KEYS, p["instance_id"], result.host_key)
        if result.timed_out:
            ending = f"was stopped after {duration(self.timeout_s)}"
        elif result.exit_status is None:
            ending = "ended without an exit status"
        else:
            ending = f"exited with status {result.exit_status}"
        return f"`{p['command']}` {ending} ({result.lines} lines). Last lines:\n{code_block(result.tail)}"
