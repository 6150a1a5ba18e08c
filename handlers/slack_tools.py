"""Agent tools bound to one Slack conversation (they need the request's client and thread)."""

from __future__ import annotations

import dataclasses

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.tools import Tool, ToolContext, tool
from handlers.history import thread_turns


# The schema is built once (about 1 ms of pydantic work); each request binds its own thread.
@tool(name="slack_thread_history")
async def _thread_history(ctx: ToolContext, limit: int = 100) -> str:
    """Read the messages of the current Slack thread, oldest first, with their authors.

    Args:
        limit: How many of the latest messages to return (at most 200).
    """
    raise RuntimeError("bound to a thread by thread_history_tool()")


def thread_history_tool(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str,
    bot_user_id: str | None,
    bot_id: str | None,
) -> Tool:
    """`slack_thread_history`: the whole current thread, for when the prompt's history was trimmed."""

    async def read(ctx: ToolContext, limit: int = 100) -> str:
        try:
            turns = await thread_turns(
                client, channel=channel, thread_ts=thread_ts, skip_ts=set(),
                bot_user_id=bot_user_id, bot_id=bot_id, limit=min(max(limit, 1), 200),
            )  # fmt: skip
        except SlackApiError as exc:
            raise RuntimeError(
                f"Slack refused to read the thread: {exc.response.get('error')}"
            ) from None
        lines = []
        for turn in turns[-limit:]:
            who = "Sophia" if turn.role == "assistant" else (turn.author or "someone")
            lines.append(f"{who}{' (app)' if turn.from_other_bot else ''}: {turn.text}")
        return "\n".join(lines) or "The thread has no earlier messages."

    return dataclasses.replace(_thread_history, run=read)
