"""Daily spend caps: near a cap expensive routes give way to cheaper ones; over it, a plain no."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.ports import RequestLog

NEAR_CAP = 0.8  # from 80 % of a cap on, expensive routes fall to cheaper ones
CHEAPER = {"reasoning": "speed", "analysis": "speed", "coding": "speed"}


@dataclass(frozen=True)
class BudgetVerdict:
    """Whether a request may use a model today, and whether it should use a cheaper one."""

    allowed: bool = True
    cheaper: bool = False
    message: str | None = None  # why not, for the person asking


def utc_midnight(now: float) -> float:
    """The start of the current UTC day, in epoch seconds."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def _until_tomorrow(now: float) -> str:
    left = timedelta(seconds=int(utc_midnight(now) + 86400 - now))
    hours, rest = divmod(left.seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min"


async def check_budget(
    log: RequestLog,
    *,
    user: str,
    workspace_cap: float | None,
    user_cap: float | None,
    now: float | None = None,
) -> BudgetVerdict:
    """Compare today's spend with the caps (either may be unset)."""
    if workspace_cap is None and user_cap is None:
        return BudgetVerdict()
    now = now or time.time()
    since = utc_midnight(now)
    cheaper = False
    for cap, whose, user_id in ((workspace_cap, "Sophia's", None), (user_cap, "Your", user)):
        if cap is None:
            continue
        spent = await log.spend(since=since, user_id=user_id)
        if spent >= cap:
            return BudgetVerdict(
                allowed=False,
                message=f"{whose} daily model budget (${cap:.2f}) is used up for today. "
                f"I can answer again after 00:00 UTC (in {_until_tomorrow(now)}).",
            )
        cheaper = cheaper or spent >= NEAR_CAP * cap
    return BudgetVerdict(cheaper=cheaper)
