"""App Home: what Sophia can do, what is configured (never secrets), your recent requests."""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from handlers.approvals import requester_label
from handlers.deps import Deps

CAPABILITIES = (
    "• *Ask anything* — @mention me in a channel, DM me, or type `/sophia ask …`\n"
    "• *Right model for the job* — reasoning, coding, speed and analysis routes\n"
    "• *Actions with a human holding the button* — nothing that changes the outside world "
    "happens until an approver presses Approve"
)


def home_view(
    deps: Deps,
    recent: list[Any],
    *,
    pending: list[Any] = (),
    memories: list[Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The App Home view for one person."""
    settings = deps.settings
    integrations = []
    for check in deps.registry.checks:
        if check.configured(settings):
            integrations.append(f"✅ {check.system}")
        else:
            integrations.append(f"◻️ {check.system} — not configured ({check.missing})")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Sophia"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": CAPABILITIES}},
        {"type": "divider"},
    ]
    if pending:
        lines = [
            f"• `{r.id}` {r.summary} — {r.target} (asked by {requester_label(r.requester)}"
            + (f" in <#{r.channel}>)" if r.channel else ")")
            for r in pending
        ]
        blocks += [
            {"type": "header", "text": {"type": "plain_text", "text": "Waiting for your approval"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "divider"},
        ]
    blocks += [
        {"type": "header", "text": {"type": "plain_text", "text": "Integrations"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "\n".join(integrations) or "None yet."},
        },
        {"type": "divider"},
        {"type": "header", "text": {"type": "plain_text", "text": "Your recent requests"}},
    ]
    if recent:
        lines = [_request_line(r, now or time.time()) for r in recent]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    else:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "Nothing yet — say hi in a DM."}],
            }
        )
    if memories is not None:
        blocks += [
            {"type": "divider"},
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "What Sophia remembers about you"},
            },
        ]
        for item in memories[:20]:  # a view holds at most 100 blocks
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"{item.text}\n_{item.scope.value} memory_"},
                    "accessory": {
                        "type": "button", "action_id": "memory_delete", "value": item.id,
                        "text": {"type": "plain_text", "text": "Delete"},
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Delete this memory?"},
                            "text": {"type": "plain_text", "text": item.text[:300]},
                            "confirm": {"type": "plain_text", "text": "Delete"},
                            "deny": {"type": "plain_text", "text": "Keep"},
                        },
                    },
                }
            )  # fmt: skip
        if not memories:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "Nothing yet. `/sophia memory forget` clears everything."}]}
            )  # fmt: skip
    return {"type": "home", "blocks": blocks}


def _request_line(record: Any, now: float) -> str:
    ago = _ago(now - record.at)
    where = "a DM" if (record.channel or "").startswith("D") else f"<#{record.channel}>"
    status = "✅" if record.status == "ok" else "⚠️"
    return f"{status} {ago} in {where} · {record.route or '—'} · `{record.id}`"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{int(seconds // 60)} min ago"
    if seconds < 129600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


async def publish_home(deps: Deps, client: AsyncWebClient, user: str) -> None:
    """Publish (or refresh) one person's App Home."""
    recent = await deps.store.recent_requests(user, limit=5)
    approvals = deps.services.approvals if deps.services else None
    pending = await approvals.pending_for(user) if approvals else []
    memory = deps.services.memory if deps.services else None
    memories = await memory.list_about(user, limit=20) if memory else None
    view = home_view(deps, recent, pending=pending, memories=memories)
    await client.views_publish(user_id=user, view=view)
