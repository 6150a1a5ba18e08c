"""When the model fails, the thread says so in plain words; no trace, no secret, ever."""

from __future__ import annotations

import logging

from tests.conftest import LLM_KEY, answer_requests
from tests.fakes.llm import BrokenStream, Error, FakeLLM, Text
from tests.test_mention import mention


def slack_text(slack) -> str:
    """Everything Sophia sent to Slack, as one string."""
    return "\n".join(repr(call.args) for call in slack.calls)


async def test_when_every_route_fails_the_thread_gets_a_plain_error_with_a_reference(
    sophia, slack, llm, caplog
):
    caplog.set_level(logging.WARNING)
    llm.on(lambda body: Error(status=500, message="upstream exploded"))
    await slack.push_event(mention("will this work?"))
    [stop] = await slack.wait_for_call("chat.stopStream")
    text = slack.message("C0CHAN", stop.args["ts"])["text"]
    assert "The model server had an internal error." in text
    assert len(answer_requests(llm)) >= 2  # the fallback route was tried too
    assert "try again" in text
    assert "`r-" in text  # the reference an operator can look up
    everything = slack_text(slack)
    assert "Traceback" not in everything and "upstream exploded" not in everything
    task = slack.message("C0CHAN", stop.args["ts"])["tasks"]["answer"]
    assert task["status"] == "error"
    # The operator's log has the details, with the same reference.
    ref = text.split("`r-")[1].split("`")[0]
    assert any(getattr(r, "request_id", "") == f"r-{ref}" for r in caplog.records)


async def test_bad_key_is_reported_as_configuration_naming_the_variable(sophia, slack, llm):
    llm.on(lambda body: FakeLLM.auth_error())
    await slack.push_event(mention("hello"))
    [stop] = await slack.wait_for_call("chat.stopStream")
    text = slack.message("C0CHAN", stop.args["ts"])["text"]
    assert "rejected the API key" in text and "SOPHIA_LLM_API_KEY" in text


async def test_a_stream_broken_midway_keeps_the_partial_text_and_the_fallback_follows(
    sophia, slack, llm
):
    llm.script(BrokenStream(text_before="The first half of an answer"))
    llm.script(Text("A complete answer from the fallback."), model="openai/gpt-4o-mini")
    await slack.push_event(mention("tell me a story"))
    [stop] = await slack.wait_for_call("chat.stopStream")
    text = slack.message("C0CHAN", stop.args["ts"])["text"]
    assert text.startswith("The first half of an answer")
    assert "_(interrupted; the fallback model answers below)_" in text
    assert text.endswith("A complete answer from the fallback.")
    footer = next(b for b in stop.args["blocks"] if b["type"] == "context")
    assert "fallback" in footer["elements"][0]["text"]  # the footer says so


async def test_the_model_key_never_reaches_slack_or_the_logs(sophia, slack, llm, caplog):
    caplog.set_level(logging.DEBUG)
    llm.script(Error(status=500, message=f"bad request with key {LLM_KEY}"))
    await slack.push_event(mention(f"my key is {LLM_KEY}, and xoxb-1234567890-abcdef is a token"))
    await slack.wait_for_call("chat.stopStream")
    assert llm.requests[-1]["headers"]["Authorization"] == f"Bearer {LLM_KEY}"  # it was used
    assert LLM_KEY not in slack_text(slack)
    prompt = str(answer_requests(llm)[-1]["messages"])
    assert "xoxb-1234567890" not in prompt and LLM_KEY not in prompt and "[redacted]" in prompt
    from bot.logs import RedactingFilter

    redacting = RedactingFilter()
    for record in caplog.records:
        redacting.filter(record)
        assert LLM_KEY not in record.getMessage()
        assert "xoxb-1234567890" not in record.getMessage()
