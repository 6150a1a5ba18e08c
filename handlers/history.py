"""Read a Slack conversation back as the core's `Turn`s."""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.types import Turn

# Subtypes that are not something anyone said.
_SKIP_SUBTYPES = {
    "message_changed",
    "message_deleted",
    "channel_join",
    "channel_leave",
    "group_join",
    "group_leave",
    "assistant_app_thread",
}
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


def clean_text(text: str, bot_user_id: str | None) -> str:
    """Drop the `<@Sophia>` mention people type to address her; keep other mentions."""
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", "")
    return text.strip()


def to_turn(message: dict[str, Any], *, bot_user_id: str | None, bot_id: str | None) -> Turn | None:
    """One Slack message as a turn, or None when it is not conversation (joins, edits)."""
    if message.get("subtype") in _SKIP_SUBTYPES:
        return None
    text = clean_text(message.get("text") or "", bot_user_id)
    if not text:
        return None
    if (bot_user_id and message.get("user") == bot_user_id) or (
        bot_id and message.get("bot_id") == bot_id
    ):
        return Turn(role="assistant", text=text)
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        author = (
            message.get("username")
            or (message.get("bot_profile") or {}).get("name")
            or message.get("bot_id")
        )
        return Turn(role="user", text=text, author=author, from_other_bot=True)
    return Turn(role="user", text=text, author=message.get("user"))


async def thread_turns(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str,
    skip_ts: set[str],
    bot_user_id: str | None,
    bot_id: str | None,
    limit: int = 200,
) -> list[Turn]:
    """Earlier messages of a thread, oldest first, without the ones in `skip_ts`."""
    response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=limit)
    return _turns(response.get("messages") or [], skip_ts, bot_user_id, bot_id)


async def dm_turns(
    client: AsyncWebClient,
    *,
    channel: str,
    skip_ts: set[str],
    bot_user_id: str | None,
    bot_id: str | None,
    limit: int = 20,
) -> list[Turn]:
    """The latest top-level messages of a DM, oldest first."""
    response = await client.conversations_history(channel=channel, limit=limit)
    messages = list(reversed(response.get("messages") or []))
    return _turns(messages, skip_ts, bot_user_id, bot_id)


def _turns(
    messages: list[dict[str, Any]], skip_ts: set[str], bot_user_id: str | None, bot_id: str | None
) -> list[Turn]:
    turns = []
    for message in messages:
        if message.get("ts") in skip_ts:
            continue
        turn = to_turn(message, bot_user_id=bot_user_id, bot_id=bot_id)
        if turn:
            turns.append(turn)
    return turns
