"""Feedback on answers: 👍/👎 stored with the request; 👎 offers a "what went wrong" modal.

This is the data the self-improvement loop learns from, so it is kept with the request's
route, model and latency (joined from the request log).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from handlers.deps import Deps
from handlers.render import FEEDBACK

log = logging.getLogger("sophia.feedback")

WHY = "sophia_feedback_why"


def why_modal(request_id: str) -> dict[str, Any]:
    """The optional "what went wrong" form."""
    return {
        "type": "modal",
        "callback_id": WHY,
        "private_metadata": request_id,
        "title": {"type": "plain_text", "text": "What went wrong?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": "why",
                "optional": True,
                "label": {"type": "plain_text", "text": "Tell Sophia's maintainers what was wrong"},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True, "max_length": 2000},
            }
        ],
    }  # fmt: skip


def register(app: AsyncApp, deps: Deps) -> None:
    """The feedback buttons and the modal."""

    @app.action(FEEDBACK)
    async def on_feedback(ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await ack()
        request_id, _, value = (action.get("value") or "").rpartition(":")
        if not request_id or value not in ("good", "bad"):
            return
        user = body["user"]["id"]
        await deps.store.record_feedback(request_id, user, value)
        deps.metrics.inc("sophia_feedback_total", value=value)
        if value == "bad" and body.get("trigger_id"):
            await client.views_open(trigger_id=body["trigger_id"], view=why_modal(request_id))

    @app.view(WHY)
    async def on_why(ack: Any, body: dict, view: dict) -> None:
        await ack()
        text = (
            (((view.get("state") or {}).get("values") or {}).get("why") or {})
            .get("text", {})
            .get("value")
        )
        if text:
            await deps.store.record_feedback(
                view.get("private_metadata", ""), body["user"]["id"], "bad", text
            )
