"""`/sophia <subcommand>`: parse, dispatch through the registry, answer in the right place.

Help, refusals and usage errors are ephemeral to the person who typed the command;
`ask` posts a visible message naming who asked and answers in its thread.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import help_text, not_available_text
from bot.core.approvals import ApprovalRequest
from bot.core.errors import SophiaError
from bot.core.orchestrator import Orchestrator
from bot.core.types import Progress, Reply, Request, new_request_id
from bot.i18n import t
from bot.redact import redact
from bot.services import Services
from handlers.approvals import post_request
from handlers.conversation import answer
from handlers.deps import Deps
from handlers.formatting import markdown_blocks
from handlers.gates import apply_settings, channel_settings, first_time
from handlers.render import SlackReply, Target

log = logging.getLogger("sophia.commands")
NOT_A_MEMBER = ("not_in_channel", "channel_not_found")


@dataclass
class SlackCommandContext:
    """`CommandContext` for a slash command typed in Slack."""

    deps: Deps
    client: AsyncWebClient
    respond: Any
    user: str
    channel: str
    team: str | None
    args: str
    private: bool
    trigger_id: str | None = None
    lang: str = "en"  # the person's language for Sophia's own words

    @property
    def core(self) -> Orchestrator:
        """The orchestration core (models, request log)."""
        return self.deps.core

    @property
    def services(self) -> Services:
        """What this Sophia has wired up."""
        return self.deps.services

    async def _visible(self, **message: Any) -> dict | None:
        """chat.postMessage here; where Sophia is not a member, say how to invite her (None)."""
        try:
            return await self.client.chat_postMessage(channel=self.channel, **message)
        except SlackApiError as exc:
            if exc.response.get("error") not in NOT_A_MEMBER:
                raise
        await self.reply_private(t("command.not_member", self.lang))
        return None

    async def post(self, text: str) -> None:
        """A visible message in the channel where the command was typed."""
        text = redact(text)
        if await self._visible(text=text, blocks=markdown_blocks(text)) is None:
            await self.reply_private(text)  # the result reaches the person who asked, at least

    async def in_thread(self, title: str, work: Callable[[Progress], Awaitable[str]]) -> None:
        """A visible message, the job's progress in its thread, the result at the end."""
        posted = await self._visible(text=title)
        if posted is None:
            return
        target = Target(
            channel=self.channel, thread_ts=posted["ts"], user=self.user, team=self.team,
            is_dm=self.private,
        )  # fmt: skip
        view = SlackReply(self.client, target, first_step=("start", "Starting"))
        await view.open()
        reply = Reply(request_id=new_request_id(), text="")
        started = time.perf_counter()
        try:
            reply.text = await work(view)
            await view.text(reply.text)  # the result is the thread's answer
        except SophiaError as exc:
            reply.error = str(exc)
        except Exception:
            log.exception("job failed", extra={"request_id": reply.request_id})
            reply.error = f"The job failed on my side (ref `{reply.request_id}`)."
        reply.elapsed_s = time.perf_counter() - started
        await view.finish(reply, footer=f"{reply.elapsed_s:.1f}s")

    async def post_approval(self, request: ApprovalRequest) -> None:
        """Post the request visibly in the channel where the command was typed."""
        approvers = self.deps.approvers
        try:
            await post_request(
                self.client, self.services.approvals, request,
                approvers_configured=approvers is not None and approvers.configured,
                lang=self.lang,
            )  # fmt: skip
        except SlackApiError as exc:
            if exc.response.get("error") not in NOT_A_MEMBER:
                raise
            await self.reply_private(t("command.not_member", self.lang))

    async def reply_private(self, text: str, *, blocks: list[dict] | None = None) -> None:
        """Ephemeral reply through the command's response_url (works in any channel)."""
        text = redact(text)
        try:
            await self.respond(text=text, blocks=blocks, response_type="ephemeral")
        except Exception:
            await self.client.chat_postEphemeral(
                channel=self.channel, user=self.user, text=text, blocks=blocks
            )

    async def answer(
        self, text: str, *, route: str | None = None, research: str | None = None
    ) -> None:
        """Post `@user asked: …` visibly, then answer in that message's thread."""
        settings = await channel_settings(self.deps, self.channel)
        if settings.off:
            await self.reply_private(t("channel.off", self.lang))
            return
        icon = ":mag:" if research else ":speech_balloon:"
        posted = await self._visible(text=f"{icon} <@{self.user}> asked: {text}")
        if posted is None:
            return
        thread_ts = posted["ts"]
        request = apply_settings(
            Request(
                user=self.user, text=text, source="command", channel=self.channel,
                thread_ts=thread_ts, team=self.team, private=self.private, route=route,
                research=research,
            ),
            settings,
        )  # fmt: skip
        target = Target(
            channel=self.channel, thread_ts=thread_ts, user=self.user, team=self.team,
            is_dm=self.private,
        )  # fmt: skip
        await self.deps.inflight.run(answer(self.deps, self.client, request, target))


def looks_like_a_question(text: str) -> bool:
    """Free text (several words, or a question) goes to the model instead of help."""
    return len(text.split()) >= 3 or text.rstrip().endswith("?")


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach the `/sophia` listener."""

    @app.command("/sophia")
    async def on_command(ack: Any, command: dict, client: AsyncWebClient, respond: Any) -> None:
        await ack()
        if not await first_time(deps, f"command:{command.get('trigger_id')}"):
            return
        text = (command.get("text") or "").strip()
        if deps.access is not None:
            reason = await deps.access.refusal(command["user_id"], command["channel_id"])
            if reason:
                await respond(text=reason, response_type="ephemeral")
                return
        ctx = SlackCommandContext(
            deps=deps, client=client, respond=respond, user=command["user_id"],
            channel=command["channel_id"], team=command.get("team_id"), args="",
            private=command["channel_id"].startswith("D"), trigger_id=command.get("trigger_id"),
        )  # fmt: skip
        if deps.directory is not None:
            ctx.lang = await deps.directory.language(ctx.user)
        try:
            await dispatch(deps, ctx, text)
        except Exception:
            log.exception("subcommand failed", extra={"command": text.split(" ")[0]})
            await ctx.reply_private(t("command.failed", ctx.lang))


async def dispatch(deps: Deps, ctx: SlackCommandContext, text: str) -> None:
    """Run the subcommand named in `text`, or help, or treat free text as a question."""
    registry = deps.registry
    if not text:
        await ctx.reply_private(help_text(registry, lang=ctx.lang))
        return
    sub, args = registry.parse(text)
    if sub is None:
        first = text.split()[0].lower()
        names = [name.split()[0] for name in registry.subcommands]
        if looks_like_a_question(text) and not difflib.get_close_matches(
            first, names, n=1, cutoff=0.8
        ):
            await ctx.answer(text)
            return
        await ctx.reply_private(help_text(registry, unknown=first, lang=ctx.lang))
        return
    if sub.run is None:
        await ctx.reply_private(not_available_text(sub, ctx.lang))
        return
    ctx.args = args
    await sub.run(ctx)
