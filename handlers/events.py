"""Slack events: mentions, DMs, the AI-app thread, App Home.

Every listener acks first (Slack's 3-second rule), then claims the event id in the
database, so a redelivered event, or one delivered to two replicas, is answered once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.types import Request
from handlers.conversation import answer
from handlers.deps import Deps
from handlers.edits import offer_reask
from handlers.gates import allowed, apply_settings, channel_settings, first_time
from handlers.history import clean_text, dm_turns, thread_turns
from handlers.home import publish_home
from handlers.render import Target

log = logging.getLogger("sophia.handlers")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

# Message subtypes that carry something a person said; edits, deletions, joins and
# other bots' posts never trigger a reply.
_SAID = {None, "file_share", "thread_broadcast"}

SUGGESTED_PROMPTS = [
    {"title": "Summarise a topic", "message": "Give me a short overview of how OAuth 2.0 works."},
    {"title": "Review some code", "message": "Review this function and suggest improvements:\n"},
    {"title": "Plan something", "message": "Help me plan a one-week rollout of a new feature."},
]
GREETING = (
    "Hi, I'm Sophia. Ask me anything — I can answer with the right model for the job, "
    "and type `/sophia help` to see everything I can do."
)


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach the event listeners to the Bolt app."""

    @app.event("app_mention")
    async def on_mention(ack: Any, body: dict, event: dict, client: AsyncWebClient) -> None:
        await ack()
        if event.get("edited") or event.get("subtype") not in _SAID:
            return
        if not await first_time(deps, body.get("event_id")):
            return
        channel, user = event["channel"], event.get("user")
        if not await allowed(deps, client, user, channel, event.get("thread_ts")):
            return
        settings = await channel_settings(deps, channel)
        if settings.off:
            return
        thread_ts = event.get("thread_ts") or event["ts"]
        team = event.get("team") or body.get("team_id")
        text = clean_text(event.get("text", ""), deps.bot_user_id)
        if not text:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=GREETING)
            return
        request = apply_settings(
            Request(
                user=user,
                text=text,
                source="mention",
                channel=channel,
                thread_ts=thread_ts,
                team=team,
            ),
            settings,
        )
        target = Target(channel=channel, thread_ts=thread_ts, user=user, team=team)

        async def history(skip: set[str]) -> list:
            if not event.get("thread_ts"):
                return []  # a fresh thread: nothing was said before
            return await thread_turns(
                client, channel=channel, thread_ts=thread_ts, skip_ts=skip | {event["ts"]},
                bot_user_id=deps.bot_user_id, bot_id=deps.bot_id,
            )  # fmt: skip

        if deps.asked is not None:
            deps.asked.note(channel, event["ts"], user, thread_ts)
        await deps.inflight.run(
            answer(deps, client, request, target, history=history, files=event.get("files"))
        )

    @app.event("message")
    async def on_message(ack: Any, body: dict, event: dict, client: AsyncWebClient) -> None:
        await ack()
        if event.get("subtype") == "message_changed" and deps.asked is not None:
            if await first_time(deps, body.get("event_id")):
                await offer_reask(deps, client, event)
            return
        if event.get("subtype") not in _SAID:
            return
        if event.get("bot_id") or event.get("user") in (None, deps.bot_user_id):
            return
        if event.get("channel_type") == "im":
            if await first_time(deps, body.get("event_id")) and await allowed(
                deps, client, event.get("user"), event["channel"]
            ):
                await deps.inflight.run(_answer_dm(deps, client, body, event))
            return
        if (
            await is_follow_up(deps, event)
            and await first_time(deps, body.get("event_id"))
            and await allowed(
                deps, client, event.get("user"), event["channel"], event.get("thread_ts")
            )
        ):
            await deps.inflight.run(_answer_follow_up(deps, client, body, event))

    @app.event("assistant_thread_started")
    async def on_assistant_thread(
        ack: Any, body: dict, event: dict, client: AsyncWebClient
    ) -> None:
        await ack()
        if not await first_time(deps, body.get("event_id")):
            return
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            return
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=GREETING)
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=channel,
            thread_ts=thread_ts,
            title="Try one of these:",
            prompts=SUGGESTED_PROMPTS,
        )

    @app.event("assistant_thread_context_changed")
    async def on_context_changed(ack: Any) -> None:
        await ack()  # nothing to do: each answer reads the thread afresh

    @app.event("app_home_opened")
    async def on_home(ack: Any, body: dict, event: dict, client: AsyncWebClient) -> None:
        await ack()
        if event.get("tab", "home") != "home":
            return
        await publish_home(deps, client, event["user"])


async def is_follow_up(deps: Deps, event: dict) -> bool:
    """A person's reply in a channel thread Sophia has answered in, addressed to nobody else.

    A message that mentions Sophia arrives as `app_mention` too and is answered there; one
    that mentions someone else and not Sophia is a conversation between people.
    """
    thread_ts = event.get("thread_ts")
    if not thread_ts or thread_ts == event.get("ts"):
        return False
    mentioned = set(_MENTION.findall(event.get("text") or ""))
    if mentioned:
        return False
    settings = await channel_settings(deps, event["channel"])
    if settings.off or settings.mention_only:
        return False
    return await deps.store.answered_in_thread(event["channel"], thread_ts)


async def _answer_follow_up(deps: Deps, client: AsyncWebClient, body: dict, event: dict) -> None:
    channel, user, thread_ts = event["channel"], event["user"], event["thread_ts"]
    team = event.get("team") or body.get("team_id")
    request = apply_settings(
        Request(
            user=user, text=event.get("text", "").strip(), source="mention", channel=channel,
            thread_ts=thread_ts, team=team,
        ),
        await channel_settings(deps, channel),
    )  # fmt: skip
    target = Target(channel=channel, thread_ts=thread_ts, user=user, team=team)

    async def history(skip: set[str]) -> list:
        return await thread_turns(
            client, channel=channel, thread_ts=thread_ts, skip_ts=skip | {event["ts"]},
            bot_user_id=deps.bot_user_id, bot_id=deps.bot_id,
        )  # fmt: skip

    await answer(deps, client, request, target, history=history, files=event.get("files"))


async def _answer_dm(deps: Deps, client: AsyncWebClient, body: dict, event: dict) -> None:
    channel, user = event["channel"], event["user"]
    thread_ts = event.get("thread_ts")
    team = event.get("team") or body.get("team_id")
    text = clean_text(event.get("text", ""), deps.bot_user_id)
    if not text:
        return
    request = Request(
        user=user, text=text, source="dm", channel=channel, thread_ts=thread_ts, team=team,
        private=True,
    )  # fmt: skip
    target = Target(channel=channel, thread_ts=thread_ts, user=user, team=team, is_dm=True)
    if deps.asked is not None:
        deps.asked.note(channel, event["ts"], user, thread_ts)
    if thread_ts:
        # An AI-app (assistant) thread: show the native "thinking" status while we work.
        try:
            await client.assistant_threads_setStatus(
                channel_id=channel, thread_ts=thread_ts, status="is thinking…"
            )
        except Exception:
            log.debug("could not set the assistant status")

    async def history(skip: set[str]) -> list:
        skip = skip | {event["ts"]}
        ids = {"bot_user_id": deps.bot_user_id, "bot_id": deps.bot_id}
        if thread_ts:
            return await thread_turns(
                client, channel=channel, thread_ts=thread_ts, skip_ts=skip, **ids
            )
        return await dm_turns(client, channel=channel, skip_ts=skip, **ids)

    await answer(deps, client, request, target, history=history, files=event.get("files"))
