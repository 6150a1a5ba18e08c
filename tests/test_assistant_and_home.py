"""Slack's AI-app thread and App Home."""

from __future__ import annotations

from tests.test_mention import mention


async def test_assistant_thread_started_greets_and_suggests_prompts(sophia, slack):
    await slack.push_event(
        {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": "U0USER", "channel_id": "D0DM", "thread_ts": "1700000000.000100",
                "context": {"channel_id": "C0CHAN", "team_id": "T0001"},
            },
            "event_ts": "1700000000.000200",
        }
    )  # fmt: skip
    [prompts] = await slack.wait_for_call("assistant.threads.setSuggestedPrompts")
    assert prompts.args["thread_ts"] == "1700000000.000100"
    assert len(prompts.args["prompts"]) >= 2
    assert all(p["title"] and p["message"] for p in prompts.args["prompts"])
    [greeting] = slack.calls_to("chat.postMessage")
    assert greeting.args["channel"] == "D0DM" and "/sophia help" in greeting.args["text"]


async def test_app_home_shows_integrations_and_recent_requests_without_secrets(sophia, slack, llm):
    await slack.push_event(mention("something to remember me by"))
    await slack.wait_for_call("chat.stopStream")
    await slack.push_event(
        {"type": "app_home_opened", "user": "U0USER", "channel": "D0DM", "tab": "home"}
    )
    [publish] = await slack.wait_for_call("views.publish")
    assert publish.args["user_id"] == "U0USER"
    view = str(publish.args["view"])
    assert "Models" in view and "Slack bot token" in view
    assert "reasoning" in view and "`r-" in view  # the request just made
    assert slack.bot_token not in view and slack.app_token not in view
    assert "sk-test" not in view


async def test_app_home_messages_tab_is_ignored(sophia, slack):
    await slack.push_event(
        {"type": "app_home_opened", "user": "U0USER", "channel": "D0DM", "tab": "messages"}
    )
    await slack.push_event(
        {"type": "app_home_opened", "user": "U0USER", "channel": "D0DM", "tab": "home"}
    )
    await slack.wait_for_call("views.publish")
    assert len(slack.calls_to("views.publish")) == 1
