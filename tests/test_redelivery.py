"""Slack redelivers events; two replicas may both receive one. Exactly one reply, always."""

from __future__ import annotations

import asyncio

from bot.app import Sophia
from tests.conftest import answer_requests, make_settings
from tests.fakes.llm import Slow, Text
from tests.fakes.slack import FakeSlack
from tests.test_mention import mention


async def test_a_redelivered_event_gets_one_reply(sophia, slack, llm):
    llm.script(Slow(0.3, Text("only once")))
    event = mention("hello?")
    await slack.push_event(event, event_id="Ev0REDELIVER")
    await slack.push_event(event, event_id="Ev0REDELIVER", retry_attempt=1, retry_reason="timeout")
    await slack.wait_for_call("chat.stopStream")
    await asyncio.sleep(0.3)  # give a second reply every chance to appear
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(answer_requests(llm)) == 1


async def test_two_replicas_sharing_a_database_answer_once(tmp_path, slack, llm):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    replicas = [
        Sophia(
            make_settings(tmp_path / name, slack, llm, database_url=db, data_dir=tmp_path / name),
            socket_ping_interval=1.0,
        )
        for name in ("a", "b")
    ]
    for replica in replicas:
        await replica.start()
    try:
        await slack.wait_connected(count=2)
        event = mention("which replica answers?")
        # The same event reaches both connections (round-robin puts one on each).
        await slack.push_event(event, event_id="Ev0BOTH")
        await slack.push_event(event, event_id="Ev0BOTH", retry_attempt=1)
        await slack.wait_for_call("chat.stopStream")
        await asyncio.sleep(0.3)
        assert len(set(slack.delivered_on.values())) == 2  # both replicas saw it
        assert len(slack.calls_to("chat.startStream")) == 1
    finally:
        for replica in replicas:
            await replica.stop()


async def test_a_429_on_an_edit_is_retried_and_the_final_text_arrives(sophia, slack, llm):
    slack.fail("chat.startStream", error="not_allowed", times=None)  # use the chat.update path
    slack.fail("chat.update", status=429, retry_after=1, times=1)
    llm.script(Text("Delivered despite the rate limit."))
    await slack.push_event(mention("rate limit me"))
    await slack.wait_for_call(
        "chat.update",
        lambda c: c.status == 200 and "despite" in str(c.args.get("blocks")),
        timeout=8,
    )
    assert slack.calls_to("chat.update")[0].status == 429


async def test_after_a_disconnect_or_a_dropped_connection_the_next_event_is_answered(
    sophia, slack, llm
):
    await slack.send_disconnect()
    await slack.wait_connected()
    await slack.push_event(mention("still there?"))
    await slack.wait_for_call("chat.stopStream")

    await slack.drop_connections()
    await slack.wait_connected(timeout=10)
    await slack.push_event(mention("and now?"))
    await slack.wait_for_call("chat.stopStream", count=2)
    assert slack.connections_opened >= 3
    texts = [
        slack.message("C0CHAN", c.args["ts"])["text"] for c in slack.calls_to("chat.stopStream")
    ]
    assert texts == ["echo: still there?", "echo: and now?"]


async def test_shutdown_lets_an_in_flight_reply_finish(settings, slack, llm):
    llm.script(Slow(1.0, Text("finished after the shutdown began")))
    app = Sophia(settings, socket_ping_interval=1.0)
    await app.start()
    await slack.wait_connected()
    await slack.push_event(mention("take your time"))
    await slack.wait_for_call("chat.startStream")
    await app.stop()  # SIGTERM does this: stop taking events, then drain in-flight replies
    [stop] = slack.calls_to("chat.stopStream")
    assert "finished after the shutdown began" in slack.message("C0CHAN", stop.args["ts"])["text"]
    assert slack.connections == 0


async def test_a_rolling_restart_of_two_replicas_loses_no_event_and_answers_each_once(
    tmp_path, llm
):
    # Slack re-sends an event nobody acked (a replica that stopped mid-event) to another
    # connection; the fake does the same after a second.
    async with FakeSlack(redeliver_after=1.0) as slack:
        await rolling_restart(tmp_path, slack, llm)


async def rolling_restart(tmp_path, slack, llm) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"

    def replica(name: str) -> Sophia:
        settings = make_settings(
            tmp_path / name, slack, llm, database_url=db, data_dir=tmp_path / name
        )
        return Sophia(settings, socket_ping_interval=1.0)

    a, b = replica("a"), replica("b")
    await a.start()
    await b.start()
    await slack.wait_connected(count=2)
    sent = 0

    async def send(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            sent += 1
            await slack.push_event(mention(f"question {sent}", channel=f"C{sent:04d}"))

    try:
        await send(6)
        await a.stop()  # replica A restarts: its connection closes, in-flight replies finish
        await send(6)  # meanwhile everything goes to B
        a = replica("a")
        await a.start()
        await slack.wait_connected(count=2)
        await b.stop()  # then B restarts
        await send(6)
        b = replica("b")
        await b.start()
        await send(6)
        await slack.wait_for_call("chat.stopStream", count=sent, timeout=20)
    finally:
        await a.stop()
        await b.stop()
    answered = sorted(c.args["channel"] for c in slack.calls_to("chat.startStream"))
    assert answered == [f"C{i:04d}" for i in range(1, sent + 1)]  # every event, exactly once
