"""Self-check of tests/fakes/slack.py against the real slack-sdk and slack-bolt clients."""

from __future__ import annotations

import time

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:  # both Slack clients honour these and ignore NO_PROXY
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def fake():
    async with FakeSlack() as fake_slack:
        yield fake_slack


async def _error(coro) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


async def test_web_api_and_streaming(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "BBOT", "T0001")
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    assert (await _error(bad.auth_test())).response["error"] == "invalid_auth"
    app_tok = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    assert (await _error(app_tok.auth_test())).response["error"] == "not_allowed_token_type"
    assert (await _error(client.api_call("nope.nothing"))).response["error"] == "unknown_method"

    parent = fake.add_message("C1", user="U0USER", text="question?")
    posted = await client.chat_postMessage(
        channel="C1", text="hi", thread_ts=parent, blocks=[{"type": "divider"}]
    )
    assert posted["message"]["bot_id"] == "BBOT"
    assert fake.calls_to("chat.postMessage")[0].args["blocks"] == [{"type": "divider"}]
    replies = await client.conversations_replies(channel="C1", ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["question?", "hi"]
    assert replies["messages"][0]["reply_count"] == 1

    stream = await client.chat_stream(
        channel="C1", thread_ts=parent, recipient_user_id="U0USER", recipient_team_id="T0001"
    )
    await stream.append(markdown_text="Hello ")
    await stream.append(chunks=[TaskUpdateChunk(id="t1", title="Search", status="in_progress")])
    await stream.append(markdown_text="world")
    assert (await _error(client.chat_update(channel="C1", ts=stream.ts, text="x"))).response[
        "error"
    ] == "streaming_state_conflict"
    await stream.stop(
        chunks=[TaskUpdateChunk(id="t1", title="Search", status="complete", output="3 hits")],
        blocks=[{"type": "divider"}],
    )
    msg = fake.message("C1", stream.ts)
    assert msg["text"] == "Hello world" and msg["streaming"] is False
    assert msg["tasks"]["t1"]["status"] == "complete" and msg["tasks"]["t1"]["output"] == "3 hits"
    assert msg["blocks"] == [{"type": "divider"}] and msg["thread_ts"] == parent
    err = await _error(client.chat_appendStream(channel="C1", ts=stream.ts, markdown_text="more"))
    assert err.response["error"] == "message_not_in_streaming_state"

    err = await _error(client.chat_startStream(channel="C1", thread_ts=parent))
    assert err.response["error"] == "missing_recipient_user_id"
    started = await client.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="x" * 10)
    err = await _error(
        client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="x" * 12_001)
    )
    assert err.response["error"] == "msg_too_long"

    fake.fail("chat.startStream", error="not_allowed", times=None)
    for _ in range(2):
        err = await _error(client.chat_startStream(channel="D1", thread_ts="1.1"))
        assert err.response["error"] == "not_allowed"
    fake.fail("users.info", status=429, retry_after=7)
    err = await _error(client.users_info(user="U0USER"))
    assert err.response.status_code == 429 and err.response.headers["Retry-After"] == "7"
    fake.set_user("U0USER", real_name="Ada", tz="Europe/Paris")
    user = (await client.users_info(user="U0USER", include_locale=True))["user"]
    assert (user["profile"]["real_name"], user["tz"], user["locale"]) == (
        "Ada",
        "Europe/Paris",
        "en-US",
    )

    upload = await client.files_upload_v2(channel="C1", content="data!", filename="a.txt")
    assert fake.uploads[upload["file"]["id"]] == b"data!"
    assert fake.messages("C1")[-1]["files"][0]["name"] == "a.txt"


async def test_bolt_socket_mode_reconnects(fake: FakeSlack) -> None:
    app = AsyncApp(client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))

    @app.event("app_mention")
    async def on_mention(event, say) -> None:
        await say(text=f"echo {event['text']}", thread_ts=event["ts"])

    @app.command("/sophia")
    async def on_command(ack, respond, command) -> None:
        await ack(text="on it")
        await respond(text=f"done: {command['text']}", response_type="in_channel")

    handler = AsyncSocketModeHandler(
        app,
        fake.app_token,
        web_client=AsyncWebClient(token=fake.app_token, base_url=fake.api_url),
        ping_interval=1,  # bounds how long the SDK takes to notice a dropped connection
    )

    async def round_trip(n: int) -> None:
        text = f"<@UBOT> ping {n}"
        envelope_id = await fake.push_event(
            {"type": "app_mention", "user": "U0USER", "text": text, "channel": "C0CHAN"}
        )
        assert await fake.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}
        calls = await fake.wait_for_call(
            "chat.postMessage", lambda c: c.args["text"] == f"echo {text}"
        )
        assert calls[0].token == fake.bot_token

    try:
        await handler.connect_async()
        await fake.wait_connected()
        await round_trip(1)
        assert (
            fake.ack_times[fake.envelopes[0]["envelope_id"]]
            >= fake.sent_times[fake.envelopes[0]["envelope_id"]]
        )

        envelope_id = await fake.push_slash_command("build it")
        assert (await fake.wait_for_ack(envelope_id))["payload"] == {"text": "on it"}
        posts = await fake.wait_for_response_url_post(envelope_id)
        assert posts[0]["text"] == "done: build it"

        started = time.perf_counter()
        await fake.send_disconnect()
        await fake.wait_connected(timeout=10)
        print(f"reconnect after disconnect: {time.perf_counter() - started:.3f}s")
        assert fake.connections_opened == 2
        await round_trip(2)

        started = time.perf_counter()
        await fake.drop_connections()
        await fake.wait_connected(timeout=20)
        print(f"reconnect after drop: {time.perf_counter() - started:.3f}s")
        assert fake.connections_opened == 3
        await round_trip(3)
        assert len(fake.calls_to("apps.connections.open")) == 3
    finally:
        await handler.close_async()
    await fake.wait_until(lambda: fake.connections == 0, 5, "the handler's socket to close")


async def test_two_sockets_interactive_and_redelivery() -> None:
    async with FakeSlack(redeliver_after=0.2) as fake:
        app = AsyncApp(client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        clicks: list[str] = []

        @app.action("approve")
        async def on_click(ack, body) -> None:
            await ack()
            clicks.append(body["actions"][0]["value"])

        web = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
        handlers = [AsyncSocketModeHandler(app, fake.app_token, web_client=web) for _ in range(2)]
        try:
            for handler in handlers:
                await handler.connect_async()
            await fake.wait_connected(2)
            for n in range(4):
                action = {
                    "action_id": "approve",
                    "block_id": "b",
                    "type": "button",
                    "value": str(n),
                }
                envelope_id = await fake.push_interactive({"actions": [action]})
                assert await fake.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}
            assert sorted(fake.delivered_on.values()) == [1, 1, 2, 2]  # round-robin
            await fake.wait_until(lambda: sorted(clicks) == ["0", "1", "2", "3"])
        finally:
            for handler in handlers:
                await handler.close_async()

        # A client that never acks gets the event again, same event_id, retry_attempt + 1.
        url = (await web.apps_connections_open(app_token=fake.app_token))["url"]
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            assert (await ws.receive_json())["type"] == "hello"
            await fake.push_event({"type": "reaction_added", "reaction": "eyes"}, event_id="EvX")
            first, again = await ws.receive_json(), await ws.receive_json(timeout=2)
        assert first["payload"]["event_id"] == again["payload"]["event_id"] == "EvX"
        assert (again["retry_attempt"], again["retry_reason"]) == (1, "timeout")
