"""The Slack side of account briefs: Slack messages as a source, who may ask, the company picker.

Privacy of the Slack source: messages come only from channels where both the asker and Sophia
are members (`users.conversations` for each), never from DMs, never from a private channel the
asker is not in. A brief read in a channel also leaves out other private channels (everyone in
that channel would read them); in a DM with Sophia it may use all of the asker's channels.
With `SLACK_USER_TOKEN`, `search.messages` finds the messages (it searches as the token's owner,
so the same filter applies); without it, the history of the shared channels is read, bounded
in days.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.account import (
    PICK_ACTION,
    PINNED,
    Asker,
    Company,
    Found,
    Record,
    SourceError,
    mentions,
)
from handlers.commands import SlackCommandContext
from handlers.deps import Deps
from handlers.gates import first_time
from handlers.people import Directory, PeopleList

log = logging.getLogger("sophia.business")

DAYS = 30  # how far back Slack is read
MAX_CHANNELS = 20  # channel histories read without a user token (each is one API call)
MAX_MESSAGES = 25
HISTORY_BUDGET_S = 20.0  # how long channel histories may take before the brief goes on without them
TYPES = "public_channel,private_channel"  # never im / mpim


class SlackMessages:
    """Recent Slack messages about a company, from channels the asker shares with Sophia."""

    name = "Slack"
    missing = None

    def __init__(
        self, client: AsyncWebClient, *, bot_user_id: str | None, user_client: AsyncWebClient | None = None,
        days: int = DAYS,
    ) -> None:  # fmt: skip
        self._client = client
        self._user_client = user_client  # SLACK_USER_TOKEN: search.messages
        self._bot = bot_user_id
        self._days = days

    async def _channels(self, user: str | None) -> dict[str, dict]:
        """Channels `user` (None: Sophia) is in, as Sophia can see them: id → channel."""
        out: dict[str, dict] = {}
        cursor = None
        while True:
            kwargs: dict[str, Any] = {"types": TYPES, "exclude_archived": True, "limit": 999}
            if user:
                kwargs["user"] = user
            if cursor:
                kwargs["cursor"] = cursor
            page = await self._client.users_conversations(**kwargs)
            out |= {c["id"]: c for c in page.get("channels") or []}
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return out

    async def gather(self, company: Company, asker: Asker) -> Found:
        try:
            ours, theirs = await asyncio.gather(self._channels(None), self._channels(asker.user))
            shared = {cid: c for cid, c in ours.items() if cid in theirs}
            visible = {
                cid: c for cid, c in shared.items()
                if asker.private or not c.get("is_private") or cid == asker.channel
            }  # fmt: skip
            if self._user_client is not None:
                found = await self._search(company, visible)
            else:
                found = await self._history(company, visible)
        except SlackApiError as exc:
            raise SourceError(f"Slack answered “{exc.response.get('error')}”.") from None
        if len(visible) < len(shared):
            found.notes.append(
                "Private channels other than this one are left out of a brief posted here; "
                "ask me in a DM to include the ones you are in."
            )
        return found

    async def _search(self, company: Company, visible: dict[str, dict]) -> Found:
        since = datetime.fromtimestamp(time.time() - self._days * 86400, UTC).strftime("%Y-%m-%d")
        page = await self._user_client.search_messages(
            query=f'"{company.short_name}" after:{since}',
            sort="timestamp",
            sort_dir="desc",
            count=100,
        )
        matches = (page.get("messages") or {}).get("matches") or []
        kept = [m for m in matches if (m.get("channel") or {}).get("id") in visible]
        kept = [m for m in kept if not self._ours(m)][:MAX_MESSAGES]
        names = await self._names({m.get("user") for m in kept})
        return Found([self._record(m, visible, names, m.get("permalink") or "") for m in kept])

    async def _history(self, company: Company, visible: dict[str, dict]) -> Found:
        if not visible:
            return Found()
        oldest = str(time.time() - self._days * 86400)
        reads = {
            cid: asyncio.ensure_future(
                self._client.conversations_history(channel=cid, oldest=oldest, limit=200)
            )
            for cid in list(visible)[:MAX_CHANNELS]
        }
        # Slack rate-limits channel history hard for some apps: use what came back in time.
        await asyncio.wait(reads.values(), timeout=HISTORY_BUDGET_S)
        late = [cid for cid, task in reads.items() if not task.done() and task.cancel()]
        failed = [
            cid
            for cid, task in reads.items()
            if task.done() and not task.cancelled() and task.exception()
        ]
        if len(late) + len(failed) == len(reads):
            raise SourceError(
                "Slack did not let me read channel history in time (rate limits); set SLACK_USER_TOKEN to search instead."
            )
        hits = [
            {**m, "channel": {"id": cid}}
            for cid, task in reads.items() if cid not in late and cid not in failed
            for m in task.result().get("messages") or []
            if not self._ours(m) and not m.get("subtype") and mentions(m.get("text") or "", company)
        ]  # fmt: skip
        hits.sort(key=lambda m: float(m["ts"]), reverse=True)
        hits = hits[:MAX_MESSAGES]
        links = await asyncio.gather(
            *(
                self._client.chat_getPermalink(channel=m["channel"]["id"], message_ts=m["ts"])
                for m in hits
            )
        )
        names = await self._names({m.get("user") for m in hits})
        found = Found(
            [
                self._record(m, visible, names, link["permalink"])
                for m, link in zip(hits, links, strict=True)
            ]
        )
        if late or failed:
            found.notes.append(
                f"{len(late) + len(failed)} channel(s) could not be read in time (Slack's rate limits)."
            )
        if len(visible) > MAX_CHANNELS:
            found.notes.append(
                f"Read {MAX_CHANNELS} of {len(visible)} shared channels (set SLACK_USER_TOKEN to search them all)."
            )
        return found

    def _ours(self, message: dict) -> bool:
        """Sophia's own messages (earlier briefs) are not evidence."""
        return bool(message.get("bot_id")) or message.get("user") == self._bot

    async def _names(self, users: set[str | None]) -> dict[str, str]:
        async def name(user: str) -> tuple[str, str]:
            try:
                info = (await self._client.users_info(user=user)).get("user") or {}
            except SlackApiError:
                return user, "someone"
            return user, info.get("real_name") or info.get("name") or "someone"

        return dict(await asyncio.gather(*(name(u) for u in users if u)))

    @staticmethod
    def _record(
        message: dict, visible: dict[str, dict], names: dict[str, str], link: str
    ) -> Record:
        channel = visible.get(message["channel"]["id"]) or {}
        when = datetime.fromtimestamp(float(message["ts"]), UTC).isoformat(timespec="minutes")
        author = names.get(message.get("user") or "", "someone")
        return Record("Slack", "message", f"#{channel.get('name') or message['channel']['id']}", link,
                      message.get("text") or "", when=when, fields={"author": author})  # fmt: skip


class BusinessAccess:
    """`SOPHIA_BUSINESS_USERS`: who may read CRM and call data (empty: full members, never guests)."""

    def __init__(
        self, client: AsyncWebClient, ids: list[str], directory: Directory | None = None
    ) -> None:
        self._list = PeopleList(client, ids)
        self._directory = directory or Directory(client)

    async def __call__(self, user: str) -> str | None:
        if self._list.configured:
            if await self._list(user):
                return None
            return "Account briefs are limited to the people in SOPHIA_BUSINESS_USERS; ask an admin to add you."
        info = await self._directory.user(user)
        if not info:  # business data: when Slack cannot say who this is, the answer is no
            return "I could not check your Slack account just now; try again in a moment."
        if info.get("is_restricted") or info.get("is_ultra_restricted") or info.get("is_bot"):
            return "Sorry, guests can't read CRM and call data."
        return None


def pick_blocks(query: str, companies: list[Company]) -> list[dict]:
    """Buttons to choose which company a brief is about (each re-runs the command pinned)."""
    buttons = [
        {"type": "button", "action_id": f"{PICK_ACTION}:{i}", "value": f"{PINNED}{c.id}",
         "text": {"type": "plain_text", "text": f"{c.name}"[:75]}}
        for i, c in enumerate(companies[:5]) if c.id
    ]  # fmt: skip
    lines = "\n".join(
        f"• *{c.name}*" + (f" — {c.detail}" if c.detail else "") for c in companies[:5]
    )
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"Several companies match “{query}”. Which one?\n{lines}",
            },
        },
        {"type": "actions", "block_id": PICK_ACTION, "elements": buttons},
    ]


def register(app: AsyncApp, deps: Deps) -> None:
    """Give the account briefs their Slack source and access rule; listen for company picks."""
    briefs = deps.services.business if deps.services else None
    if briefs is not None:
        settings = deps.settings
        token = settings.slack_user_token.get_secret_value() if settings.slack_user_token else None
        user_client = (
            AsyncWebClient(token=token, base_url=settings.slack_api_url) if token else None
        )
        briefs.slack = SlackMessages(
            app.client, bot_user_id=deps.bot_user_id, user_client=user_client
        )
        briefs.access = BusinessAccess(app.client, settings.business_users, deps.directory)
        briefs.choices = pick_blocks

    @app.action(re.compile(rf"^{PICK_ACTION}:\d+$"))
    async def on_pick(
        ack: Any, body: dict, action: dict, client: AsyncWebClient, respond: Any
    ) -> None:
        await ack()
        user = body["user"]["id"]
        if not await first_time(deps, f"account-pick:{user}:{action.get('action_ts')}"):
            return
        value = action.get("value") or ""
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        sub, _ = deps.registry.parse("account")
        if not value.startswith(PINNED) or not channel or sub is None or sub.run is None:
            return  # not a button Sophia made
        if deps.access is not None and (reason := await deps.access.refusal(user, channel)):
            await respond(text=reason, response_type="ephemeral", replace_original=False)
            return
        await respond(text=f"Writing the brief on {action.get('text', {}).get('text', 'that company')}…",
                      response_type="ephemeral", replace_original=True)  # fmt: skip
        ctx = SlackCommandContext(
            deps=deps, client=client, respond=respond, user=user, channel=channel,
            team=(body.get("team") or {}).get("id"), args=value, private=channel.startswith("D"),
        )  # fmt: skip
        if deps.directory is not None:
            ctx.lang = await deps.directory.language(user)
        await sub.run(ctx)  # the same path as `/sophia account hubspot:<id>`
