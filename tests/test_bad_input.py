"""Garbage from Slack never shows a trace or a secret, and never crashes a listener."""

from __future__ import annotations

import asyncio
import logging

from tests.test_mention import mention


def actions(action_id: str, value: str) -> dict:
    return {
        "type": "block_actions", "user": {"id": "U0USER"}, "channel": {"id": "C0CHAN"},
        "container": {"type": "message", "message_ts": "1.0", "channel_id": "C0CHAN"},
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "3.3"}],
    }  # fmt: skip


class Crashes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_malformed_clicks_and_commands_get_plain_answers(sophia, slack, llm):
    crashes = Crashes()
    logging.getLogger("sophia.bolt").addHandler(crashes)
    for action_id, value in [
        ("sophia_reask", "{not json"), ("approval_approve", "a-doesnotexist"),
        ("sophia_feedback", "::"), ("memory_delete", "no-such-memory"),
    ]:  # fmt: skip
        await slack.push_interactive(actions(action_id, value))
    for text in [
        "pr merge not-a-ref",
        "index ../../etc",
        "ask --model",
        "memory search",
        "audit lots",
    ]:
        await slack.push_slash_command(text)
    await slack.push_event(mention(f"my token is {slack.bot_token}"))
    await slack.wait_for_call("chat.stopStream")
    await asyncio.sleep(0.5)
    everything = "\n".join(repr(c.args) for c in slack.calls) + repr(slack.response_url_posts)
    assert "Traceback" not in everything and 'File "' not in everything
    assert slack.bot_token not in everything
    assert "approval request does not exist" in everything  # the unknown approval is explained
    logging.getLogger("sophia.bolt").removeHandler(crashes)
    assert [r.getMessage() for r in crashes.records] == []  # no listener crashed
