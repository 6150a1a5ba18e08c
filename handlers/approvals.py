"""Approval requests in Slack: the Block Kit message, the buttons, and who may press them.

The core decides (bot/core/approvals.py); this module posts the request with
`chat.postMessage` where the action was asked for, updates it in place with `chat.update`
after every decision or expiry (outcome, who, when; no buttons left), and answers refused
clicks with an ephemeral reason.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.approvals import ApprovalError, ApprovalRequest, Approvals, ApprovalState
from bot.core.errors import SophiaError
from bot.i18n import CATALOGUES, t
from handlers.deps import Deps
from handlers.gates import first_time

log = logging.getLogger("sophia.approvals")

APPROVE, REJECT = "approval_approve", "approval_reject"
_OUTCOME = {
    ApprovalState.APPROVED: "✅ Approved — running now",
    ApprovalState.EXECUTING: "⏳ Running",
    ApprovalState.DONE: "✅ Done",
    ApprovalState.REJECTED: "🚫 Rejected",
    ApprovalState.EXPIRED: "⌛ Expired",
    ApprovalState.VOID: "♻️ Void — the target changed",
    ApprovalState.FAILED: "⚠️ Failed",
}


def requester_label(requester: str) -> str:
    """A Slack mention for a person; plain text for other requesters (`mcp:Claude Desktop`)."""
    if re.fullmatch(r"[UW][A-Z0-9]+", requester):
        return f"<@{requester}>"
    return f"`{requester}`"


def _when(ts: float) -> str:
    """A Slack date token that shows in each reader's own time zone."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{fallback}>"


def request_blocks(
    request: ApprovalRequest, *, approvers_configured: bool, lang: str = "en"
) -> list[dict[str, Any]]:
    """The message with the facts and the Approve / Reject buttons."""
    target = f"<{request.link}|{request.target}>" if request.link else f"`{request.target}`"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":lock: *{t('approval.needed', lang)}* — {request.summary}\n{target}"}},
    ]  # fmt: skip
    if request.facts:
        fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in request.facts[:10]]
        blocks.append({"type": "section", "fields": fields})
    notes = [
        t(
            "approval.requested_by",
            lang,
            user=requester_label(request.requester),
            when=_when(request.expires_at),
            id=request.id,
        )
    ]
    if not approvers_configured:
        notes.append(t("approval.no_approvers", lang))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": n} for n in notes]})
    blocks.append(
        {
            "type": "actions",
            "block_id": f"approval:{request.id}",
            "elements": [
                {"type": "button", "action_id": APPROVE, "style": "primary", "value": request.id,
                 "text": {"type": "plain_text", "text": t("approval.approve", lang)}},
                {"type": "button", "action_id": REJECT, "style": "danger", "value": request.id,
                 "text": {"type": "plain_text", "text": t("approval.reject", lang)}},
            ],
        }
    )  # fmt: skip
    return blocks


def decided_blocks(request: ApprovalRequest) -> list[dict[str, Any]]:
    """The same message after a decision or expiry: outcome, who, when — no buttons."""
    target = f"<{request.link}|{request.target}>" if request.link else f"`{request.target}`"
    outcome = _OUTCOME.get(request.state, request.state.value)
    who = f" by <@{request.decided_by}>" if request.decided_by else ""
    when = _when(request.decided_at or time.time())
    lines = [f"{request.summary}\n{target}", f"*{outcome}*{who} · {when}"]
    if request.result:
        lines.append(request.result)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Requested by {requester_label(request.requester)} · `{request.id}`"}]}
    )  # fmt: skip
    return blocks


async def post_request(
    client: AsyncWebClient,
    approvals: Approvals,
    request: ApprovalRequest,
    *,
    approvers_configured: bool,
    lang: str = "en",
) -> None:
    """Post the request where it was asked for (it is already stored) and remember the message."""
    response = await client.chat_postMessage(
        channel=request.channel, thread_ts=request.thread_ts,
        text=f"{t('approval.needed', lang)}: {request.summary}",
        blocks=request_blocks(request, approvers_configured=approvers_configured, lang=lang),
    )  # fmt: skip
    await approvals.attach_message(request.id, response["ts"])


async def show_decision(client: AsyncWebClient, request: ApprovalRequest) -> None:
    """Update the request message in place."""
    if not request.message_ts or not request.channel:
        return
    try:
        await client.chat_update(
            channel=request.channel, ts=request.message_ts,
            text=f"{_OUTCOME.get(request.state, request.state.value)}: {request.summary}",
            blocks=decided_blocks(request),
        )  # fmt: skip
    except SlackApiError as exc:
        log.warning(
            "could not update the approval message",
            extra={"approval_id": request.id, "error": exc.response.get("error")},
        )


async def run_approved(deps: Deps, client: AsyncWebClient, approval_id: str) -> None:
    """Execute an approved request and report in its thread; safe against double calls."""
    approvals = deps.services.approvals
    try:
        outcome = await approvals.execute(approval_id)
    except ApprovalError as exc:
        log.info("execution skipped", extra={"approval_id": approval_id, "reason": str(exc)})
        return
    request = outcome.request
    await show_decision(client, request)
    if request.channel:
        icon = {ApprovalState.DONE: ":white_check_mark:", ApprovalState.VOID: ":recycle:"}.get(
            request.state, ":warning:"
        )
        text = f"{icon} {outcome.message}"
        if request.state == ApprovalState.VOID:
            again = request.params.get("ask_again")  # set by the capability that made the request
            text += (
                f" Ask again for a fresh request: `{again}`."
                if again
                else " Ask again for a fresh request."
            )
        await client.chat_postMessage(
            channel=request.channel, thread_ts=request.thread_ts or request.message_ts, text=text
        )


def thread_reporter(client: AsyncWebClient):
    """Progress lines of an approved action, as replies in the request's thread."""

    async def report(request: ApprovalRequest, text: str) -> None:
        if request.channel:
            await client.chat_postMessage(
                channel=request.channel, thread_ts=request.thread_ts or request.message_ts,
                text=text,
            )  # fmt: skip

    return report


async def report_reconciled(client: AsyncWebClient, outcome: Any) -> None:
    """After a restart: update the request message and say in its thread how it ended."""
    request = outcome.request
    await show_decision(client, request)
    if request.channel:
        await client.chat_postMessage(
            channel=request.channel, thread_ts=request.thread_ts or request.message_ts,
            text=f":arrows_counterclockwise: After a restart I checked `{request.id}`: {outcome.message}",
        )  # fmt: skip


def register(app: AsyncApp, deps: Deps) -> None:
    """Listen for Approve / Reject clicks."""

    async def on_click(
        ack: Any, body: dict, action: dict, client: AsyncWebClient, approve: bool
    ) -> None:
        await ack()
        user = body["user"]["id"]
        approval_id = action.get("value", "")
        if not await first_time(deps, f"action:{approval_id}:{user}:{action.get('action_ts')}"):
            return
        approvals = deps.services.approvals
        try:
            outcome = await approvals.decide(approval_id, user=user, approve=approve)
        except ApprovalError as exc:
            deps.metrics.inc("sophia_approvals_total", outcome=f"refused_{type(exc).__name__}")
            lang = await deps.directory.language(user) if deps.directory else "en"
            await _tell(client, body, user, f":no_entry: {refusal_text(exc, lang)}")
            try:
                current = await approvals.get(approval_id)
            except ApprovalError:
                return
            if current.state in (ApprovalState.EXPIRED,):
                await show_decision(client, current)
            return
        deps.metrics.inc("sophia_approvals_total", outcome="approved" if approve else "rejected")
        await show_decision(client, outcome.request)
        if approve:
            await deps.inflight.run(run_approved(deps, client, approval_id))

    @app.action(APPROVE)
    async def on_approve(ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await on_click(ack, body, action, client, True)

    @app.action(REJECT)
    async def on_reject(ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await on_click(ack, body, action, client, False)


def refusal_text(exc: ApprovalError, lang: str) -> str:
    """Why a click was refused, in the clicker's language (the core's own words in English)."""
    key = f"approval.refused.{type(exc).__name__}"
    if lang == "en" or key not in CATALOGUES[lang]:
        return str(exc)  # English keeps the core's specific wording ("already rejected", …)
    return t(key, lang)


async def _tell(client: AsyncWebClient, body: dict, user: str, text: str) -> None:
    """An ephemeral reason for a refused click, in the conversation of the button."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    thread_ts = (body.get("message") or {}).get("thread_ts")
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except SlackApiError:
        log.warning("could not tell the user why the click was refused")


async def expiry_loop(deps: Deps, client: AsyncWebClient, *, every_s: float = 30.0) -> None:
    """Mark requests past their expiry and update their messages, until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        try:
            for request in await deps.services.approvals.expire_due():
                await show_decision(client, request)
        except Exception:  # the sweep must survive a bad moment (database busy, Slack down)
            log.exception("expiry sweep failed")


class SlackApprovalGate:
    """`ApprovalGate` for the agent: a side-effect tool call becomes a posted approval request."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.deps: Deps | None = (
            None  # attached once the app is wired (the core needs the gate first)
        )

    async def request(
        self, *, tool: str, arguments: dict[str, Any], user: str, channel: str | None,
        thread_ts: str | None,
    ) -> str:  # fmt: skip
        """Prepare, store and post the request; tell the model what happened in plain words."""
        deps = self.deps
        services = deps.services if deps else None
        preparer = services.preparers.get(tool) if services else None
        if preparer is None or services.approvals is None:
            return f"There is no approval path for `{tool}` here. Nothing was done."
        try:
            request = await preparer(services, arguments, user, channel, thread_ts)
        except (ApprovalError, SophiaError) as exc:
            return f"No approval was requested: {exc} Nothing was done."
        if not channel:
            return (
                f"Approval request `{request.id}` was stored, but it can only be approved in Slack."
            )
        await post_request(
            self._client, services.approvals, request,
            approvers_configured=deps.approvers is not None and deps.approvers.configured,
            lang=await deps.directory.language(user) if deps.directory else "en",
        )  # fmt: skip
        return (
            f"Approval requested (`{request.id}`): {request.summary}. The request with Approve and "
            "Reject buttons is posted in this conversation; nothing happens until an approver "
            "presses Approve."
        )
