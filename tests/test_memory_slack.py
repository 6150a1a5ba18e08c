"""Memory through Slack: what is learned in a DM stays there; search, forget, App Home."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import Sophia
from bot.core.memory import Scope, Where
from tests.conftest import answer_requests
from tests.fakes.llm import Text, ToolCalls
from tests.test_mention import mention


@pytest.fixture
async def app(sophia: Sophia) -> AsyncIterator[Sophia]:
    await sophia.memory_ready.wait()
    assert sophia.deps.services.memory is not None, sophia.deps.services.memory_missing
    yield sophia


def system_text(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


async def test_a_fact_learned_in_a_dm_is_recalled_only_in_that_dm(app, slack, llm):
    llm.script(
        ToolCalls([("remember", {"text": "Dana prefers dark mode in every dashboard"})]),
        Text("Noted."),
    )
    await slack.push_event(
        {
            "type": "message",
            "channel": "D0DANA",
            "user": "U0DANA",
            "text": "remember I prefer dark mode",
        }
    )
    await slack.wait_for_call("chat.update", lambda c: "Noted." in str(c.args.get("blocks")))

    llm.script(Text("I can't say."))
    await slack.push_event(
        mention("which colour scheme does Dana prefer for dashboards?", user="U0DANA")
    )
    await slack.wait_for_call("chat.stopStream")
    assert "dark mode" not in system_text(answer_requests(llm)[-1])  # never in a channel

    llm.script(Text("Dark mode."))
    await slack.push_event(
        {
            "type": "message",
            "channel": "D0DANA",
            "user": "U0DANA",
            "text": "which colour scheme do I prefer for dashboards?",
        }
    )
    await slack.wait_for_call("chat.update", lambda c: "Dark mode." in str(c.args.get("blocks")))
    assert "dark mode" in system_text(answer_requests(llm)[-1])  # but recalled in her DM


async def test_memory_search_shows_only_what_can_be_told_here(app, slack):
    memory = app.deps.services.memory
    await memory.remember(
        "The Q3 release freeze starts on December 15",
        scope=Scope.CHANNEL,
        where=Where("U0ANA", "C0CHAN", False),
    )
    await memory.remember(
        "The Q3 release of the secret project slips to March",
        scope=Scope.CHANNEL,
        where=Where("U0ANA", "C0SECRET", False),
    )
    envelope = await slack.push_slash_command("memory search release freeze")
    [reply] = await slack.wait_for_response_url_post(envelope)
    assert reply["response_type"] == "ephemeral"
    assert "December 15" in reply["text"] and "March" not in reply["text"]


async def test_forget_asks_for_confirmation_then_deletes_everything_about_the_person(app, slack):
    memory = app.deps.services.memory
    here = Where("U0USER", "C0CHAN", False)
    await memory.remember("U0USER is allergic to peanuts", scope=Scope.USER, where=here)
    await memory.remember("The staging database is called pluto", scope=Scope.CHANNEL, where=here)
    await memory.remember(
        "Ana owns the billing service", scope=Scope.CHANNEL, where=Where("U0ANA", "C0CHAN", False)
    )
    envelope = await slack.push_slash_command("memory forget")
    [prompt] = await slack.wait_for_response_url_post(envelope)
    button = prompt["blocks"][-1]["elements"][0]
    assert button["action_id"] == "memory_forget_confirm" and await memory.list_about(
        "U0USER"
    )  # nothing deleted yet
    await slack.push_interactive({
        "type": "block_actions", "user": {"id": "U0USER"}, "channel": {"id": "C0CHAN"},
        "container": {"type": "message", "message_ts": "1.0", "channel_id": "C0CHAN", "is_ephemeral": True},
        "actions": [{**button, "action_ts": "9.1", "type": "button", "block_id": "b"}],
    })  # fmt: skip
    await slack.wait_until(
        lambda: any("I forgot" in str(p) for p in slack.response_url_posts), 5, "forget report"
    )
    assert await memory.list_about("U0USER") == []
    others = await memory.search_visible("who owns billing", where=Where("U0ANA", "C0CHAN", False))
    assert any("Ana owns the billing service" in i.text for i in others)  # others' memories stay


async def test_app_home_lists_memories_with_delete_buttons(app, slack):
    memory = app.deps.services.memory
    item = await memory.remember(
        "U0USER likes short answers", scope=Scope.USER, where=Where("U0USER", "C0CHAN", False)
    )
    await slack.push_event(
        {"type": "app_home_opened", "user": "U0USER", "channel": "D0DM", "tab": "home"}
    )
    [publish] = await slack.wait_for_call("views.publish")
    view = publish.args["view"]
    assert "What Sophia remembers about you" in str(view) and "likes short answers" in str(view)
    button = next(
        b["accessory"]
        for b in view["blocks"]
        if b.get("accessory", {}).get("action_id") == "memory_delete"
    )
    assert button["value"] == item.id
