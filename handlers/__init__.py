"""The Slack surface: turn Slack payloads into core calls and render the results."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers import approvals, channel_config, commands, edits, events, feedback, shortcuts
from handlers.deps import Deps, Inflight

__all__ = ["Deps", "Inflight", "register"]


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach every listener to the Bolt app."""
    events.register(app, deps)
    commands.register(app, deps)
    approvals.register(app, deps)
    feedback.register(app, deps)
    edits.register(app, deps)
    channel_config.register(app, deps)
    shortcuts.register(app, deps)
