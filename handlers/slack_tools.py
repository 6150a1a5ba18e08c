"""Agent tools bound to one Slack conversation (they need the request's client and thread)."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.tools import Tool, ToolContext, tool
from handlers.history import thread_turns


def thread_history_tool(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str,
    bot_user_id: str | None,
    bot_id: str | None,
) -> Tool:
    """`slack_thread_history`: the whole current thread, for when the prompt's history was trimmed."""

    @tool(name="slack_thread_history")
    async def slack_thread_history(ctx: ToolContext, limit: int = 100) -> str:
        """Read the messages of the current Slack thread, oldest first, with their authors.

        Args:
            limit: How many of the latest messages to return (at most 200).
        """
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

    return slack_thread_history
