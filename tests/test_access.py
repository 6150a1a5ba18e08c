"""Who may use Sophia: guests never (by default), allow-lists when set, one polite refusal."""

from __future__ import annotations

import asyncio

from bot.app import Sophia
from tests.conftest import answer_requests, make_settings
from tests.test_mention import mention


async def test_a_guest_is_refused_once_and_never_answered(sophia, slack, llm):
    slack.set_user("U0GUEST", is_restricted=True)
    await slack.push_event(mention("hello?", user="U0GUEST"))
    await slack.push_event(mention("hello again?", user="U0GUEST"))
    [refusal] = await slack.wait_for_call("chat.postEphemeral")
    assert refusal.args["user"] == "U0GUEST" and "guests" in refusal.args["text"]
    await asyncio.sleep(0.3)
    assert len(slack.calls_to("chat.postEphemeral")) == 1  # said once, not on every message
    assert not slack.calls_to("chat.startStream") and not answer_requests(llm)
    # A full member is answered as usual.
    await slack.push_event(mention("and me?", user="U0USER"))
    await slack.wait_for_call("chat.stopStream")


async def test_allow_lists_limit_users_and_channels(tmp_path, slack, llm):
    settings = make_settings(
        tmp_path, slack, llm, allowed_users=["S0TEAM"], allowed_channels=["C0OK"]
    )
    slack.set_usergroup("S0TEAM", ["U0USER"])
    app = Sophia(settings, socket_ping_interval=1.0)
    await app.start()
    try:
        await slack.wait_connected()
        await slack.push_event(mention("in the wrong channel", channel="C0CHAN"))
        [wrong_place] = await slack.wait_for_call("chat.postEphemeral")
        assert "SOPHIA_ALLOWED_CHANNELS" in wrong_place.args["text"]
        await slack.push_event(mention("not on the list", channel="C0OK", user="U0OTHER"))
        [_, not_listed] = await slack.wait_for_call("chat.postEphemeral", count=2)
        assert "SOPHIA_ALLOWED_USERS" in not_listed.args["text"]
        envelope = await slack.push_slash_command(
            "ask hello there friend", user_id="U0OTHER", channel_id="C0OK"
        )
        [reply] = await slack.wait_for_response_url_post(envelope)
        assert reply["response_type"] == "ephemeral" and "SOPHIA_ALLOWED_USERS" in reply["text"]
        await slack.push_event(mention("allowed here", channel="C0OK", user="U0USER"))
        [stop] = await slack.wait_for_call("chat.stopStream")
        assert stop.args["channel"] == "C0OK"
        assert len(answer_requests(llm)) == 1
    finally:
        await app.stop()
