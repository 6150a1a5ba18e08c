"""The agent's memory tools, `remember(text, scope)` and `recall(query)` (DESIGN.md §7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from bot.core.memory import Scope, Where
from bot.core.tools import Tool, ToolContext, tool

if TYPE_CHECKING:
    from integrations.memory.service import MemoryService


def memory_tools(service: MemoryService) -> list[Tool]:
    """`remember` and `recall`, bound to `service`; where they run decides what they may touch."""

    @tool(name="remember", group="memory")
    async def remember(
        ctx: ToolContext,
        text: str,
        scope: Literal["user", "channel", "workspace"] | None = None,
    ) -> dict[str, Any]:
        """Keep a fact for later conversations.

        Args:
            text: The fact, written so it makes sense on its own later.
            scope: `user` (about the person asking; follows them), `channel` (this channel's
                project context; the default in channels) or `workspace` (everyone, everywhere).
                In a DM everything is kept privately for this person.
        """
        where = Where(user=ctx.user, channel=ctx.channel, private=ctx.private)
        item = await service.remember(
            text, scope=Scope(scope) if scope else None, where=where, thread_ts=ctx.thread_ts
        )
        kept = "private to this person's DMs" if item.private else f"{item.scope.value} memory"
        return {"remembered": item.text, "kept_as": kept, "id": item.id}

    @tool(name="recall", group="memory")
    async def recall(ctx: ToolContext, query: str) -> list[dict[str, Any]]:
        """Look up what you remember that may be shared here, most relevant first.

        Args:
            query: What to look for, in plain words.
        """
        where = Where(user=ctx.user, channel=ctx.channel, private=ctx.private)
        items = await service.recall(query, where=where, limit=8)
        return [
            {
                "text": i.text,
                "scope": i.scope.value,
                "author": i.author,
                "source": i.source,
                "when": datetime.fromtimestamp(i.created_at, UTC).date().isoformat(),
                "score": round(i.score or 0.0, 3),
            }
            for i in items
        ]

    return [remember, recall]
