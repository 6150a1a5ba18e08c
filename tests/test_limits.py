"""Requests-per-minute limits (queue, then a polite refusal) and `/sophia usage`."""

from __future__ import annotations

import pytest

from bot.app import Sophia
from handlers.limits import RateLimiter
from tests.conftest import make_settings
from tests.fakes.llm import Text
from tests.test_mention import mention


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_limiter_queues_in_order_then_refuses_past_the_wait():
    clock = Clock()
    limiter = RateLimiter(user_rpm=2, workspace_rpm=None, max_wait_s=30, clock=clock)
    told: list[int] = []

    async def tell(ahead: int) -> None:
        told.append(ahead)

    assert await limiter.admit("U1", tell) and await limiter.admit("U1", tell)
    assert await limiter.admit("U2", tell)  # another person is not held up
    assert not await limiter.admit("U1", tell)  # the next slot is 60 s away: refused at once
    assert told == []  # no pointless "queued" message for a wait that cannot succeed
    clock.now += 61
    assert await limiter.admit("U1", tell)


async def test_a_request_waits_its_turn_and_hears_where_it_stands():
    import time

    offset = 0.0
    limiter = RateLimiter(
        user_rpm=1, workspace_rpm=None, max_wait_s=5, clock=lambda: time.monotonic() + offset
    )
    told: list[int] = []

    async def tell(ahead: int) -> None:
        told.append(ahead)

    assert await limiter.admit("U1", tell)
    offset = 59.8  # the first request is almost a minute old: a short wait
    assert await limiter.admit("U1", tell)
    assert told == [0]  # "you're next"


@pytest.fixture
async def limited(tmp_path, slack, llm):
    app = Sophia(make_settings(tmp_path, slack, llm, workspace_rpm=1), socket_ping_interval=1.0)
    await app.start()
    app.deps.limiter.max_wait_s = 1.5  # the default minute would make the test slow
    await slack.wait_connected()
    yield app
    await app.stop()


async def test_over_the_limit_a_request_is_refused_in_plain_words(limited, slack, llm):
    await slack.push_event(mention("first?", channel="C0001"))
    await slack.wait_for_call("chat.stopStream")
    await slack.push_event(mention("second?", channel="C0002"))
    [_, stop] = await slack.wait_for_call("chat.stopStream", count=2, timeout=10)
    text = slack.message("C0002", stop.args["ts"])["text"]
    assert "request limit (1 per minute for everyone)" in text and "ask again" in text
    tasks = slack.message("C0002", stop.args["ts"])["tasks"]
    assert tasks["queue"]["status"] == "error"


async def test_usage_shows_your_day_and_admins_see_the_workspace(tmp_path, slack, llm):
    app = Sophia(make_settings(tmp_path, slack, llm, admins=["U0BOSS"]), socket_ping_interval=1.0)
    await app.start()
    try:
        await slack.wait_connected()
        llm.script(Text("Hello."))
        await slack.push_event(mention("hello there"))
        await slack.wait_for_call("chat.stopStream")
        envelope = await slack.push_slash_command("usage")
        [mine] = await slack.wait_for_response_url_post(envelope)
        assert "Your usage today" in mine["text"] and "1 requests" in mine["text"]
        assert "Top users" not in mine["text"]
        envelope = await slack.push_slash_command("usage", user_id="U0BOSS")
        [admin] = await slack.wait_for_response_url_post(envelope)
        assert (
            "Top users" in admin["text"]
            and "<@U0USER>" in admin["text"]
            and "By route" in admin["text"]
        )
    finally:
        await app.stop()
