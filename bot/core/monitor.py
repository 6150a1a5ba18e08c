"""The health monitor: look at apps and repositories on a timer; one incident, one alert.

Every look gives one `Snapshot` per target (a Fly app, a repository's default branch) with
its findings. An incident opens when a finding turns critical (warnings never alert), gets
one alert, an update in the alert's thread whenever the set of problems changes, and one
recovery when every finding passes again (DESIGN.md §7 "Monitor").

Incidents live in the database (`kv`), so a restart or a second replica carries on the same
incident instead of alerting again, and every post is first claimed with a key both replicas
compute alike (`claim` is true for exactly one caller): two replicas never both post. The
price of claiming first: a crash in the instant between claim and post loses that one post
rather than doubling it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger("sophia.monitor")

INCIDENTS, MUTES = "monitor.incident", "monitor.mute"
OUTPUT_KEPT = 1500  # characters of a check's output kept with the incident (for the fix PR)


class Health(StrEnum):
    """One finding's state."""

    PASSING = "passing"
    PENDING = "pending"  # starting, CI running: neither alerts nor counts as recovered
    WARNING = "warning"  # shown in updates, never alerts
    CRITICAL = "critical"  # opens an incident


@dataclass(frozen=True)
class Finding:
    """One check of a target: a machine's state or health check, a CI context."""

    name: str
    health: Health
    output: str = ""
    machine: str | None = None  # Fly machine id: what "Restart machine" restarts
    machine_name: str | None = None
    url: str | None = None

    @property
    def ident(self) -> str:
        return f"{self.machine}/{self.name}" if self.machine else self.name

    @property
    def label(self) -> str:
        """`check on machine name` as people read it."""
        return f"{self.name} on {self.machine_name or self.machine}" if self.machine else self.name


@dataclass(frozen=True)
class Snapshot:
    """What one look at one target found."""

    key: str  # "fly:<app>" or "github:<owner/repo>": one incident at a time per key
    kind: str  # "app" | "repo"
    target: str  # the app or repository name
    findings: list[Finding]
    link: str | None = None
    version: str | None = None  # the commit or image looked at

    @property
    def critical(self) -> list[Finding]:
        return [f for f in self.findings if f.health == Health.CRITICAL]

    @property
    def problems(self) -> dict[str, str]:
        """ident → health of every critical or warning finding: an incident's fingerprint."""
        bad = (Health.CRITICAL, Health.WARNING)
        return {f.ident: f.health.value for f in self.findings if f.health in bad}

    @property
    def all_passing(self) -> bool:
        return all(f.health == Health.PASSING for f in self.findings)


@dataclass
class Incident:
    """A target's incident record, as stored (one per key; `seq` counts its incidents)."""

    key: str
    kind: str
    target: str
    seq: int = 0
    failing: bool = False
    alert: str | None = None  # the sink's handle for the alert message
    attempts: int = 0  # failed alert posts (each retry claims a fresh key)
    problems: dict[str, str] = field(default_factory=dict)
    updates: int = 0
    opened_at: float = 0.0
    closed_at: float | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)  # the latest bad ones
    link: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def bad_findings(self) -> list[Finding]:
        """The stored critical and warning findings (for buttons and the fix PR)."""
        return [Finding(**{**f, "health": Health(f["health"])}) for f in self.findings]


@dataclass(frozen=True)
class Change:
    """What changed in an open incident since the last post."""

    new: list[Finding]  # problems not seen before (or worse)
    cleared: list[str]  # idents that no longer have a problem


class Probe(Protocol):
    """Looks at one target; raises when the target cannot be read (that look is skipped)."""

    key: str

    async def look(self) -> Snapshot: ...


class AlertSink(Protocol):
    """Where alerts go (the Slack layer posts them in SOPHIA_ALERT_CHANNEL)."""

    async def alert(self, snapshot: Snapshot, incident: Incident) -> str:
        """Post the alert; return a handle to reply to and edit it later."""
        ...

    async def update(self, snapshot: Snapshot, incident: Incident, change: Change) -> None:
        """Reply in the alert's thread: the problems changed."""
        ...

    async def resolve(self, snapshot: Snapshot, incident: Incident) -> None:
        """Reply in the alert's thread that it recovered, and edit the alert to say so."""
        ...


class MonitorState(Protocol):
    """Durable state shared by replicas (`bot.store.Store`)."""

    async def kv_get(self, namespace: str, key: str) -> Any | None: ...
    async def kv_put(
        self, namespace: str, key: str, value: Any, *, ttl_s: float | None = None
    ) -> None: ...
    async def claim_event(self, event_id: str) -> bool: ...


class Monitor:
    """Runs the probes every interval and turns what they see into incidents."""

    def __init__(
        self,
        *,
        probes: Callable[[], Sequence[Probe]],
        state: MonitorState,
        sink: AlertSink,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._probes = probes  # read at each tick: capabilities may come up after start
        self._state = state
        self._sink = sink
        self.interval_s = interval_s
        self._clock = clock
        self._lock = asyncio.Lock()  # the loop and a caller's tick() take turns
        self.ticks = 0

    async def run(self) -> None:
        """Look now and every interval, until cancelled; a bad look never stops the loop."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("monitor tick failed")
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> None:
        """Look at every target once and act on what changed."""
        async with self._lock:
            probes = list(self._probes())
            snapshots = await asyncio.gather(*(p.look() for p in probes), return_exceptions=True)
            for probe, snapshot in zip(probes, snapshots, strict=True):
                if isinstance(snapshot, BaseException):
                    log.warning(
                        "monitor could not look",
                        extra={"target": probe.key, "error": str(snapshot)[:200]},
                    )
                    continue
                try:
                    await self.observe(snapshot)
                except Exception:
                    log.exception("monitor could not act", extra={"target": probe.key})
            self.ticks += 1

    async def observe(self, snapshot: Snapshot) -> None:
        """Advance the target's incident by one look."""
        incident = await self.incident(snapshot.key) or Incident(
            snapshot.key, snapshot.kind, snapshot.target
        )
        muted = await self.muted(snapshot.key)
        if not incident.failing:
            if not snapshot.critical:
                return
            incident = Incident(
                snapshot.key, snapshot.kind, snapshot.target, seq=incident.seq + 1, failing=True,
                opened_at=self._clock(), link=snapshot.link,
            )  # fmt: skip
            self._remember(incident, snapshot)
            if muted:
                await self._save(incident)  # tracked quietly; alerts when the mute ends
            else:
                await self._post_alert(snapshot, incident)
            return
        if snapshot.all_passing:
            if not await self._claim(incident, "resolved"):
                return
            incident.failing, incident.closed_at = False, self._clock()
            await self._save(incident)
            if incident.alert:
                await self._sink.resolve(snapshot, incident)
            return
        if incident.alert is None:  # opened while muted, or the alert could not be posted
            self._remember(incident, snapshot)
            if snapshot.critical and not muted:
                await self._post_alert(snapshot, incident)
            else:
                await self._save(incident)
            return
        if not snapshot.problems or snapshot.problems == incident.problems:
            return  # the same problems, or only pending ones left: wait for the recovery
        change = Change(
            new=[f for f in snapshot.findings
                 if f.ident in snapshot.problems
                 and incident.problems.get(f.ident) != snapshot.problems[f.ident]],
            cleared=[i for i in incident.problems if i not in snapshot.problems],
        )  # fmt: skip
        incident.updates += 1
        if not await self._claim(incident, f"update:{incident.updates}"):
            return
        self._remember(incident, snapshot)
        await self._save(incident)
        if not muted:
            await self._sink.update(snapshot, incident, change)

    async def _post_alert(self, snapshot: Snapshot, incident: Incident) -> None:
        if not await self._claim(incident, f"alert:{incident.attempts}"):
            return  # another replica (or an earlier look) is posting it
        await self._save(incident)
        try:
            incident.alert = await self._sink.alert(snapshot, incident)
        except Exception as exc:  # e.g. Sophia is not in the alert channel
            incident.attempts += 1  # the next look claims a fresh key and tries again
            log.warning(
                "could not post an alert", extra={"target": snapshot.key, "error": str(exc)[:200]}
            )
        await self._save(incident)

    def _remember(self, incident: Incident, snapshot: Snapshot) -> None:
        incident.problems = snapshot.problems
        incident.findings = [
            {**asdict(f), "health": f.health.value, "output": f.output[:OUTPUT_KEPT]}
            for f in snapshot.findings
            if f.ident in snapshot.problems
        ]
        incident.link = snapshot.link or incident.link

    async def _claim(self, incident: Incident, what: str) -> bool:
        return await self._state.claim_event(f"monitor:{incident.key}:{incident.seq}:{what}")

    async def _save(self, incident: Incident) -> None:
        await self._state.kv_put(INCIDENTS, incident.key, asdict(incident))

    async def incident(self, key: str) -> Incident | None:
        """The stored incident record of a target (open or the last closed one)."""
        data = await self._state.kv_get(INCIDENTS, key)
        return Incident.from_json(data) if data else None

    async def mute(self, key: str, *, seconds: float, by: str) -> float:
        """Silence a target's alerts and updates; returns when the mute ends."""
        until = self._clock() + seconds
        await self._state.kv_put(MUTES, key, {"by": by, "until": until}, ttl_s=seconds)
        return until

    async def muted(self, key: str) -> bool:
        """Whether a target is muted now."""
        return await self._state.kv_get(MUTES, key) is not None
