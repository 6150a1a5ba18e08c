"""A direct message to whoever launched a GPU instance that has run longer than
SOPHIA_GPU_IDLE_HOURS — at most once per instance per day, whichever replica looks.

Only instances Sophia launched have a known requester and launch time, so only those get a
reminder. The once-a-day guard is a claim in the shared database (`claim_event`, atomic), keyed
by the instance and the how-many-th day past the threshold it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from integrations.lambda_actions import INSTANCES, Records, duration
from integrations.lambda_labs import LambdaCloud, dollars

log = logging.getLogger("sophia.lambda")
DAY_S = 86_400.0

# (Slack user id, text) → a direct message to that person; provided by the Slack layer.
DirectMessage = Callable[[str, str], Awaitable[None]]


class IdleReminders:
    """Looks at running instances and reminds their requesters about long-running ones."""

    def __init__(
        self, cloud: LambdaCloud, records: Records, *, idle_hours: float, dm: DirectMessage
    ) -> None:
        self._cloud = cloud
        self._records = records
        self._idle_s = idle_hours * 3600
        self._dm = dm

    async def check(self) -> int:
        """One look; returns how many reminders were sent."""
        notes = await self._records.store.kv_items(INSTANCES)
        if not any(n.get("requester") for n in notes.values()):
            return 0  # nothing Sophia launched is running: no API call needed
        now = self._records.clock()
        sent = 0
        instances = await self._cloud.instances()
        await self._records.prune(instances)
        for inst in instances:
            note = notes.get(inst.id) or {}
            requester, since = note.get("requester"), note.get("since")
            if inst.gone or not requester or since is None:
                continue
            running = now - since
            if running < self._idle_s:
                continue
            day = int((running - self._idle_s) // DAY_S)
            if not await self._records.store.claim_event(f"lambda-reminder:{inst.id}:{day}"):
                continue
            cost = dollars(running / 3600 * inst.price_cents_per_hour)
            text = (
                f":alarm_clock: Your GPU instance `{inst.id}` ({inst.type_name} in {inst.region}) "
                f"has been running for {duration(running)} — about {cost} so far at "
                f"{dollars(inst.price_cents_per_hour)}/h. If you are done with it: "
                f"`/sophia gpu terminate {inst.id}`"
            )
            try:
                await self._dm(requester, text)
                sent += 1
            except Exception:  # one failed DM must not stop the others (it is not retried today)
                log.warning("could not send a GPU reminder", extra={"instance": inst.id})
        return sent

    async def loop(self, *, every_s: float = 3600.0) -> None:
        """Look now and then every `every_s` seconds, until cancelled; survives its own errors."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("GPU reminder check failed")
            await asyncio.sleep(every_s)
