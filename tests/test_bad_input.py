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


async def test_garbage_for_the_new_capabilities_gets_plain_private_answers(tmp_path, slack, llm):
    from bot.app import Sophia
    from tests.conftest import make_settings
    from tests.fakes.fly import FakeFly
    from tests.fakes.lambda_cloud import FakeLambda
    from tests.fakes.search import FakeSearch

    crashes = Crashes()
    logging.getLogger("sophia.bolt").addHandler(crashes)
    async with FakeFly() as fly, FakeLambda() as lam, FakeSearch() as search:
        fly.add_app("web")
        settings = make_settings(
            tmp_path, slack, llm, fly_api_token=fly.token, fly_api_url=fly.base_url,
            lambda_api_key=lam.api_key, lambda_api_url=lam.base_url, **search.settings(),
        )  # fmt: skip
        sophia = Sophia(settings, socket_ping_interval=1.0)
        await sophia.start()
        try:
            commands = [
                "deploy", "deploy no-such-app", "deploy web not an image ref", "fly status",
                "fly status ../../etc", "fly secrets set web", "fly secrets set web bad-name!",
                "fly scale web lots", "gpu launch", "gpu launch no_such_type", "gpu terminate",
                "gpu run", "gpu run i-nope", "account", "research", "mcp extra words", "jobs",
            ]  # fmt: skip
            envelopes = [await slack.push_slash_command(text) for text in commands]
            for envelope in envelopes:
                [post] = await slack.wait_for_response_url_post(envelope, timeout=15)
                assert post["response_type"] == "ephemeral" and post["text"].strip()
        finally:
            await sophia.stop()
    logging.getLogger("sophia.bolt").removeHandler(crashes)
    everything = "\n".join(repr(c.args) for c in slack.calls) + repr(slack.response_url_posts)
    assert "Traceback" not in everything and 'File "' not in everything
    for secret in (fly.token, lam.api_key, search.keys.serper, slack.bot_token):
        assert secret not in everything
    assert not slack.calls_to("chat.postMessage")  # bad input is answered privately
    assert [r.getMessage() for r in crashes.records] == []
