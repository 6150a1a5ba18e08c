"""Edited questions: an edit never triggers a reply by itself, but the asker may re-ask."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.types import Request
from handlers.conversation import answer
from handlers.deps import Deps
from handlers.gates import first_time
from handlers.history import clean_text, thread_turns
from handlers.render import Target

log = logging.getLogger("sophia.edits")

REASK = "sophia_reask"
REMEMBERED = 2000  # recent questions kept (per process) so an edit can be recognised


class AskedQuestions:
    """The latest questions Sophia answered: (channel, message ts) → (asker, reply thread)."""

    def __init__(self) -> None:
        self._asked: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()

    def note(self, channel: str, ts: str, user: str, thread_ts: str | None) -> None:
        self._asked[(channel, ts)] = (user, thread_ts)
        while len(self._asked) > REMEMBERED:
            self._asked.popitem(last=False)

    def find(self, channel: str, ts: str) -> tuple[str, str | None] | None:
        return self._asked.get((channel, ts))


async def offer_reask(deps: Deps, client: AsyncWebClient, event: dict) -> None:
    """On an edit of a question Sophia answered, offer its author a button to ask again."""
    message, before = event.get("message") or {}, event.get("previous_message") or {}
    channel = event.get("channel")
    known = deps.asked.find(channel, message.get("ts", "")) if channel else None
    if not known or message.get("user") != known[0]:
        return
    new_text = clean_text(message.get("text") or "", deps.bot_user_id)
    if not new_text or new_text == clean_text(before.get("text") or "", deps.bot_user_id):
        return
    value = json.dumps({"c": channel, "th": known[1], "q": new_text[:1900]})
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "You edited your question. Shall I answer the new version?"}},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": REASK, "value": value, "style": "primary",
             "text": {"type": "plain_text", "text": "Ask again"}},
        ]},
    ]  # fmt: skip
    try:
        await client.chat_postEphemeral(
            channel=channel,
            user=known[0],
            thread_ts=known[1],
            text="You edited your question.",
            blocks=blocks,
        )
    except Exception:
        log.info("could not offer to re-ask an edited question")


def register(app: AsyncApp, deps: Deps) -> None:
    """The "Ask again" button."""

    @app.action(REASK)
    async def on_reask(ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await ack()
        if not await first_time(deps, f"reask:{body.get('trigger_id') or action.get('action_ts')}"):
            return
        try:
            data = json.loads(action.get("value") or "{}")
        except json.JSONDecodeError:
            return  # not a button Sophia made
        channel, thread_ts, text, user = (
            data.get("c"),
            data.get("th"),
            data.get("q"),
            body["user"]["id"],
        )
        if not channel or not text:
            return
        private = channel.startswith("D")
        team = (body.get("team") or {}).get("id")
        request = Request(
            user=user, text=text, source="dm" if private else "mention", channel=channel,
            thread_ts=thread_ts, team=team, private=private,
        )  # fmt: skip
        target = Target(channel=channel, thread_ts=thread_ts, user=user, team=team, is_dm=private)

        async def history(skip: set[str]) -> list:
            if not thread_ts:
                return []
            return await thread_turns(
                client, channel=channel, thread_ts=thread_ts, skip_ts=skip,
                bot_user_id=deps.bot_user_id, bot_id=deps.bot_id,
            )  # fmt: skip

        await deps.inflight.run(answer(deps, client, request, target, history=history))
