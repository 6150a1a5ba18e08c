"""The Slack side of setting a Fly secret: `/sophia fly secrets set <app> <NAME>` opens a form.

The value is typed into a modal (never into channel text), handed to
`integrations.fly_actions.prepare_secret_set`, and only the approval request — name and current
digest, no value — is posted. Nothing here logs or posts the value.
"""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SophiaError
from bot.registry import Registry, Subcommand
from handlers.approvals import post_request
from handlers.deps import Deps
from integrations.fly_actions import SECRET_NAME, prepare_secret_set
from integrations.fly_capability import NEEDS

SECRET_SUBMIT = "fly_secret_set"


def secret_modal(app: str, name: str, channel: str) -> dict[str, Any]:
    """A form with one masked-from-Slack input: the secret's value."""
    return {
        "type": "modal", "callback_id": SECRET_SUBMIT,
        "title": {"type": "plain_text", "text": "Set a Fly secret"},
        "submit": {"type": "plain_text", "text": "Ask for approval"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"app": app, "name": name, "channel": channel}),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f"Set `{name}` on *{app}*. An approver sees the name, never the value; the value "
                "goes to Fly once the request is approved and is then forgotten."
            )}},
            {"type": "input", "block_id": "value", "label": {"type": "plain_text", "text": "Value"},
             "element": {"type": "plain_text_input", "action_id": "v"}},
        ],
    }  # fmt: skip


def install(registry: Registry, deps: Deps) -> None:
    """Add `fly secrets set` (it needs Slack for the form)."""

    async def run_set(ctx: Any) -> None:
        words = ctx.args.split()
        if len(words) != 2:
            await ctx.reply_private(
                "Usage: `/sophia fly secrets set <app> <NAME>` (the value is asked in a form)"
            )
            return
        app, name = words
        fly = deps.services.fly
        if fly is None or not fly.configured:
            await ctx.reply_private(":no_entry: Fly is not configured: set FLY_API_TOKEN.")
            return
        if not SECRET_NAME.match(name):
            await ctx.reply_private(
                f":no_entry: `{name}` is not a valid secret name (letters, digits and `_`)."
            )
            return
        await ctx.client.views_open(
            trigger_id=ctx.trigger_id, view=secret_modal(app, name, ctx.channel)
        )

    registry.add_subcommand(
        Subcommand("fly secrets set", "fly secrets set <app> <NAME>",
                   "Ask to set a Fly.io secret (value typed in a form; needs approval)", run_set, NEEDS)
    )  # fmt: skip


def register(app: AsyncApp, deps: Deps) -> None:
    """Turn a submitted form into an approval request in the channel of the command."""

    @app.view(SECRET_SUBMIT)
    async def on_submit(ack: Any, body: dict, view: dict, client: AsyncWebClient) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        value = (((view.get("state") or {}).get("values") or {}).get("value") or {}).get("v") or {}
        user = body["user"]["id"]
        try:
            request = await prepare_secret_set(
                deps.services, meta["app"], meta["name"], value.get("value") or "", requester=user,
                channel=meta.get("channel"), thread_ts=None,
            )  # fmt: skip
        except SophiaError as exc:
            await ack(response_action="errors", errors={"value": str(exc)[:150]})
            return
        await ack()
        approvers = deps.approvers
        await post_request(
            client, deps.services.approvals, request,
            approvers_configured=approvers is not None and approvers.configured,
        )  # fmt: skip
