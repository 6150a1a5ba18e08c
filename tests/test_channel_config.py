"""`/sophia config`: who may change a channel's settings, and that the settings are enforced."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import Sophia
from bot.core.channel import ChannelSettings
from tests.conftest import answer_requests, make_settings
from tests.fakes.llm import Text
from tests.test_mention import mention


@pytest.fixture
async def app(tmp_path, slack, llm):
    sophia = Sophia(
        make_settings(tmp_path, slack, llm, admins=["U0ADMIN"]), socket_ping_interval=1.0
    )
    await sophia.start()
    await slack.wait_connected()
    yield sophia
    await sophia.stop()


async def test_only_admins_open_the_form_and_saving_it_is_stored_and_audited(app, slack):
    envelope = await slack.push_slash_command("config", user_id="U0RANDO")  # not the creator either
    [refusal] = await slack.wait_for_response_url_post(envelope)
    assert "SOPHIA_ADMINS" in refusal["text"] and not slack.calls_to("views.open")
    await slack.push_slash_command("config", user_id="U0USER")  # the channel's creator may
    await slack.wait_for_call("views.open")

    await slack.push_slash_command("config", user_id="U0ADMIN")
    [_, opened] = await slack.wait_for_call("views.open", count=2)
    view = opened.args["view"]
    values = {
        "behaviour": {"v": {"type": "checkboxes", "selected_options": [{"value": "mention_only"}]}},
        "route": {"v": {"type": "static_select", "selected_option": {"value": "coding"}}},
        "prompt": {"v": {"type": "plain_text_input", "value": "Answer in pirate speak."}},
    }
    await slack.push_interactive(
        {
            "type": "view_submission",
            "user": {"id": "U0ADMIN"},
            "view": {**view, "state": {"values": values}},
        }
    )
    await slack.wait_for_call("chat.postEphemeral")
    saved = await app.deps.store.channel_settings("C0CHAN")
    assert (
        saved.mention_only
        and saved.default_route == "coding"
        and saved.prompt_addition == "Answer in pirate speak."
    )
    log = await app.deps.services.approvals.audit_log(5)
    assert any(e["action"] == "config" and e["user_id"] == "U0ADMIN" for e in log)


async def test_settings_reach_the_model_and_disabled_tools_are_not_offered(app, slack, llm):
    await app.deps.store.set_channel_settings(
        "C0CHAN",
        ChannelSettings(
            default_route="analysis",
            prompt_addition="Always cite the runbook.",
            disabled_groups=frozenset({"core"}),
        ),
        "U0ADMIN",
    )
    llm.script(Text("ok"))
    await slack.push_event(mention("hello"))
    await slack.wait_for_call("chat.stopStream")
    body = answer_requests(llm)[-1]
    assert body["model"] == "qwen/qwen3-coder"  # the channel's default route: analysis
    assert any(
        "Always cite the runbook." in m["content"]
        for m in body["messages"]
        if m["role"] == "system"
    )
    offered = {t["function"]["name"] for t in body.get("tools") or []}
    assert "current_time" not in offered and "slack_thread_history" not in offered


async def test_off_means_silent_and_mention_only_means_no_follow_ups(app, slack, llm):
    await slack.push_event(mention("first question"))
    await slack.wait_for_call("chat.stopStream")
    root = slack.messages("C0CHAN")[0]["ts"]
    await app.deps.store.set_channel_settings(
        "C0CHAN", ChannelSettings(mention_only=True), "U0ADMIN"
    )
    app.deps.channel_cache.clear()
    await slack.push_event(
        {
            "type": "message",
            "channel": "C0CHAN",
            "user": "U0USER",
            "text": "a follow-up",
            "thread_ts": root,
        }
    )
    await app.deps.store.set_channel_settings("C0OFF", ChannelSettings(off=True), "U0ADMIN")
    await slack.push_event(mention("anyone there?", channel="C0OFF"))
    await asyncio.sleep(0.4)
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(answer_requests(llm)) == 1
