"""Requests-per-minute limits with a short, fair queue.

Over `SOPHIA_USER_RPM` (per person) or `SOPHIA_WORKSPACE_RPM` (everyone), a request waits its
turn — first come, first served — for at most `max_wait_s`, and the person sees "queued, n
ahead" in the thread; past that it is refused in plain words. Counts live in this process
(each replica limits its own share).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

WINDOW_S = 60.0


class RateLimiter:
    """Sliding one-minute windows per person and for the workspace."""

    def __init__(
        self, *, user_rpm: int | None, workspace_rpm: int | None, max_wait_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.user_rpm, self.workspace_rpm = user_rpm, workspace_rpm
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._all: deque[float] = deque()
        self._by_user: dict[str, deque[float]] = {}
        self._waiting: deque[object] = deque()

    @property
    def enabled(self) -> bool:
        return bool(self.user_rpm or self.workspace_rpm)

    @property
    def queued(self) -> int:
        """How many requests are waiting now (the queue depth)."""
        return len(self._waiting)

    def _free_in(self, user: str, now: float) -> float:
        """Seconds until this person may start a request (0: now)."""
        for stamps in (self._all, *self._by_user.values()):
            while stamps and now - stamps[0] >= WINDOW_S:
                stamps.popleft()
        waits = [0.0]
        mine = self._by_user.get(user, deque())
        if self.user_rpm and len(mine) >= self.user_rpm:
            waits.append(mine[0] + WINDOW_S - now)
        if self.workspace_rpm and len(self._all) >= self.workspace_rpm:
            waits.append(self._all[0] + WINDOW_S - now)
        return max(waits)

    async def admit(self, user: str, on_wait: Callable[[int], Awaitable[None]]) -> bool:
        """Wait for a turn (reporting how many are ahead); False when it would take too long."""
        if not self.enabled:
            return True
        ticket = object()
        self._waiting.append(ticket)
        started = self._clock()
        told: int | None = None
        try:
            while True:
                now = self._clock()
                ahead = list(self._waiting).index(ticket)
                wait = self._free_in(user, now)
                if ahead == 0 and wait <= 0:
                    self._all.append(now)
                    self._by_user.setdefault(user, deque()).append(now)
                    return True
                if now - started + max(wait, 0.0) > self.max_wait_s:
                    return False
                if ahead != told:
                    told = ahead
                    await on_wait(ahead)
                await asyncio.sleep(min(max(wait, 0.05), 1.0))
        finally:
            self._waiting.remove(ticket)
