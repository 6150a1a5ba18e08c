"""The privacy rule as data: which *space* a memory is kept in, and which spaces a place may see.

Each memory lives in one space (mem0's `user_id`; its `agent_id` is always "sophia"), and
recall filters on spaces only, so the rule is decided here and nowhere else:

    dm:<user>:<dm>   learned in a DM: USER scope, private, recalled only in that DM
    user:<user>      USER scope said outside a DM: recalled wherever that person asks
    channel:<c>      CHANNEL scope: recalled only in that channel (so never in another one)
    workspace        WORKSPACE scope: recalled everywhere; never stored from a DM
"""

from __future__ import annotations

import time
from typing import Any

from bot.core.memory import MemoryItem, Scope, Where

AGENT = "sophia"  # mem0 agent_id on every memory Sophia keeps


def placement(scope: Scope | None, where: Where) -> Scope:
    """The scope a memory is stored with: DMs force USER, channels default to CHANNEL."""
    if where.private:
        return Scope.USER  # never workspace or channel from a DM: it stays with this person
    if scope is None:
        scope = Scope.CHANNEL
    if scope is Scope.CHANNEL and not where.channel:
        return Scope.USER  # no channel to attach it to (the terminal)
    return scope


def space(scope: Scope, where: Where) -> str:
    """The space a memory of (already placed) `scope` learned in `where` is kept in."""
    if scope is Scope.WORKSPACE:
        return "workspace"
    if scope is Scope.CHANNEL:
        return f"channel:{where.channel}"
    if where.private:
        # Keyed by the DM too: a fact said in a group DM is not repeated in another DM.
        return f"dm:{where.user}:{where.channel or '-'}"
    return f"user:{where.user}"


def visible_spaces(where: Where) -> list[str]:
    """The spaces whose memories may be told to `where.user` in `where`."""
    spaces = [f"user:{where.user}", "workspace"]
    if where.private:
        spaces.insert(0, space(Scope.USER, where))
    elif where.channel:
        spaces.insert(0, f"channel:{where.channel}")
    return spaces


def metadata(
    scope: Scope, where: Where, *, source: str | None, thread_ts: str | None
) -> dict[str, Any]:
    """The payload fields Sophia keeps beside mem0's: who, where, when, and from which message."""
    return {
        "scope": scope.value,
        "subject": where.user if scope is Scope.USER else None,
        "author": where.user,
        "channel": where.channel,
        "private": where.private,
        "source": source or ("dm" if where.private else "channel"),
        "thread_ts": thread_ts,
        "ts": time.time(),
    }


def item(memory_id: Any, payload: dict[str, Any], score: float | None = None) -> MemoryItem:
    """A `MemoryItem` from a stored payload (mem0's `data` is the text)."""
    return MemoryItem(
        id=str(memory_id),
        text=payload.get("data", ""),
        scope=Scope(payload.get("scope", "user")),
        author=payload.get("author", ""),
        user=payload.get("subject"),
        channel=payload.get("channel"),
        private=bool(payload.get("private")),
        source=payload.get("source"),
        thread_ts=payload.get("thread_ts"),
        created_at=float(payload.get("ts") or 0.0),
        score=score,
    )
