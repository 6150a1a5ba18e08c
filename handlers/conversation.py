"""Answer a request in Slack: open the reply, read the conversation, run the core, finish."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts import wants_chart
from bot.core.types import Reply, Request, StepStatus, Turn
from bot.i18n import t
from handlers.deps import Deps
from handlers.files import read_files
from handlers.render import SlackReply, Target, footer_for
from handlers.slack_tools import thread_history_tool

log = logging.getLogger("sophia.handlers")

HistoryLoader = Callable[[set[str]], Awaitable[list[Turn]]]


async def answer(
    deps: Deps,
    client: AsyncWebClient,
    request: Request,
    target: Target,
    *,
    history: HistoryLoader | None = None,
    stream: bool = True,
    files: list[dict] | None = None,
) -> Reply | None:
    """Run one request and render it into Slack; never raises, never shows a trace.

    Returns the reply (an error reply when refused or failed in the thread), or None when
    nothing could be posted in the conversation at all.
    """
    reply_view = SlackReply(client, target, stream=stream, feedback_for=request.id)
    if target.thread_ts:
        request.tools.append(
            thread_history_tool(
                client, channel=target.channel, thread_ts=target.thread_ts,
                bot_user_id=deps.bot_user_id, bot_id=deps.bot_id,
            )
        )  # fmt: skip
    try:
        await reply_view.open()
        deps.metrics.inc("sophia_first_output_total", mode=reply_view.mode)
        if history is not None:
            try:
                request.history = await history(set(reply_view.posted))
            except SlackApiError as exc:
                log.warning(
                    "could not read the conversation",
                    extra={"request_id": request.id, "error": exc.response.get("error")},
                )
                await reply_view.step(
                    "context", "Reading the conversation", StepStatus.ERROR,
                    detail="I could not read the earlier messages; answering without them.",
                )  # fmt: skip
        if files:
            await _read_files(deps, client, request, reply_view, files)
        if deps.limiter is not None and (busy := await _wait_turn(deps, request, reply_view)):
            return busy
        async with deps.reply_slots:
            reply = await deps.core.handle(request, reply_view)
        await reply_view.finish(reply, footer=footer_for(reply))
        if reply.ok and wants_chart(request.text):
            await reply_view.attach_chart(reply.text, title=request.text)
        deps.metrics.inc(
            "sophia_replies_total", source=request.source, status="ok" if reply.ok else "error"
        )
        return reply
    except Exception:
        log.exception("reply failed", extra={"request_id": request.id})
        deps.metrics.inc("sophia_replies_total", source=request.source, status="crash")
        if await _apologise(client, target, request.id):
            return Reply(request_id=request.id, text="", error="something went wrong")
        return None


async def _read_files(
    deps: Deps, client: AsyncWebClient, request: Request, view: SlackReply, files: list[dict]
) -> None:
    """Read shared files into the request (as data); say in the thread what could not be read."""
    title = f"Reading {len(files)} file{'s' * (len(files) != 1)}"
    await view.step("files", title, StepStatus.IN_PROGRESS)
    token = (
        deps.settings.slack_bot_token.get_secret_value() if deps.settings.slack_bot_token else ""
    )
    request.attachments, request.notes = await read_files(client.session, token, files)
    status = StepStatus.ERROR if request.notes else StepStatus.COMPLETE
    await view.step("files", title, status, detail=" ".join(request.notes) or None)


async def _wait_turn(deps: Deps, request: Request, view: SlackReply) -> Reply | None:
    """Queue behind the per-minute limits; None when admitted, else the refusal shown in the thread."""

    lang = "en"

    async def tell(ahead: int) -> None:
        nonlocal lang
        if deps.directory is not None and not view.has_step("queue"):
            lang = await deps.directory.language(request.user)  # only when someone has to wait
        title = t("answer.queued", lang, ahead=ahead) if ahead else t("answer.next", lang)
        await view.step("queue", title, StepStatus.IN_PROGRESS)

    if await deps.limiter.admit(request.user, tell):
        if view.has_step("queue"):
            await view.step("queue", "Your turn", StepStatus.COMPLETE)
        return None
    deps.metrics.inc("sophia_rate_limited_total")
    await view.step("queue", "Too busy", StepStatus.ERROR)
    limits = [f"{n} per minute per person" for n in [deps.limiter.user_rpm] if n] + [
        f"{n} per minute for everyone" for n in [deps.limiter.workspace_rpm] if n
    ]
    busy = Reply(request_id=request.id, text="")
    busy.error = t("answer.limit", lang, limits=", ".join(limits))
    await view.finish(busy)
    return busy


async def _apologise(client: AsyncWebClient, target: Target, request_id: str) -> bool:
    """Last resort: say something went wrong, in plain words, with the id for the operator."""
    try:
        await client.chat_postMessage(
            channel=target.channel,
            thread_ts=target.thread_ts,
            text=t("answer.crashed", ref=request_id),
        )
    except Exception:
        log.exception("could not post the apology", extra={"request_id": request_id})
        return False
    return True
