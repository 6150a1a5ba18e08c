"""The Slack side of GPU reminders: a direct message to one person."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.redact import redact


def direct_message(client: AsyncWebClient) -> Callable[[str, str], Awaitable[None]]:
    """`dm(user_id, text)`: posting to a user id lands in the app's DM with that person."""

    async def send(user: str, text: str) -> None:
        await client.chat_postMessage(channel=user, text=redact(text))

    return send
