"""Direct messages: answered in the DM, marked private for the core."""

from __future__ import annotations

from tests.conftest import answer_requests
from tests.fakes.llm import Text


async def test_dm_is_answered_in_the_dm_and_marked_private(sophia, slack, llm):
    slack.add_message("D0DM", user="U0USER", text="earlier question")
    slack.add_message("D0DM", user="UBOT", bot_id="BBOT", text="earlier answer")
    llm.script(Text("Here is a private answer."))
    await slack.push_event(
        {"type": "message", "channel": "D0DM", "user": "U0USER", "text": "hi there"}
    )

    await slack.wait_for_call(
        "chat.update", lambda c: "private answer" in str(c.args.get("blocks"))
    )
    [posted] = slack.calls_to("chat.postMessage")
    assert posted.args["channel"] == "D0DM"
    assert "thread_ts" not in posted.args  # a plain DM reads like a chat, not a thread
    assert not slack.calls_to("chat.startStream")
    messages = answer_requests(llm)[-1]["messages"]
    assert "private direct message" in messages[0]["content"]
    assert [m["content"] for m in messages[1:]] == [
        "[U0USER] earlier question",
        "earlier answer",
        "hi there",
    ]


async def test_dm_in_an_assistant_thread_streams_and_shows_status(sophia, slack, llm):
    root = slack.add_message("D0DM", user="UBOT", bot_id="BBOT", text="Hi, I'm Sophia.")
    llm.script(Text("Streaming in the assistant thread."))
    await slack.push_event(
        {"type": "message", "channel": "D0DM", "user": "U0USER", "text": "hello", "thread_ts": root}
    )
    [stop] = await slack.wait_for_call("chat.stopStream")
    [start] = slack.calls_to("chat.startStream")
    assert start.args["thread_ts"] == root
    assert "recipient_user_id" not in start.args  # only needed outside DMs
    assert "Streaming in the assistant thread." in slack.message("D0DM", stop.args["ts"])["text"]
    [status] = slack.calls_to("assistant.threads.setStatus")
    assert status.args["thread_ts"] == root


async def test_edits_deletions_and_bot_messages_get_no_reply(sophia, slack, llm):
    await slack.push_event(
        {"type": "message", "subtype": "message_changed", "channel": "D0DM",
         "message": {"user": "U0USER", "text": "edited", "ts": "1700000000.000001"},
         "previous_message": {"text": "x", "ts": "1700000000.000001"}},
    )  # fmt: skip
    await slack.push_event(
        {"type": "message", "subtype": "message_deleted", "channel": "D0DM", "deleted_ts": "1.0"}
    )
    await slack.push_event(
        {"type": "message", "channel": "D0DM", "bot_id": "BOTHER", "text": "another bot talking"}
    )
    await slack.push_event(
        {"type": "message", "channel": "D0DM", "user": "UBOT", "bot_id": "BBOT", "text": "my own"}
    )
    # A real message afterwards is answered, and it is the only reply.
    await slack.push_event({"type": "message", "channel": "D0DM", "user": "U0USER", "text": "ping"})
    await slack.wait_for_call("chat.update", lambda c: "echo: ping" in str(c.args.get("blocks")))
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(answer_requests(llm)) == 1
