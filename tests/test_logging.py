"""Logs an operator can ship: one JSON object per line, no message text, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import setup_logging
from bot.redact import Redactor, redact
from tests.fakes.llm import Text
from tests.test_mention import mention


@pytest.fixture
def captured():
    """Route logging through Sophia's own handler into a buffer, then restore pytest's."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def use_buffer(buffer: io.StringIO, fmt: str) -> None:
    setup_logging(fmt=fmt, level="INFO")
    logging.getLogger().handlers[0].setStream(buffer)


def test_json_logs_are_one_object_per_line_with_extras_and_no_secrets(captured):
    use_buffer(captured, "json")
    redact.add(["sk-live-verysecretvalue-123"])
    log = logging.getLogger("sophia.test")
    log.info("connected with %s", "sk-live-verysecretvalue-123", extra={"request_id": "r-1"})
    try:
        raise RuntimeError("token xoxb-1111-2222-abcdefgh leaked")
    except RuntimeError:
        log.exception("boom")
    lines = captured.getvalue().strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert (
        first["level"] == "info"
        and first["logger"] == "sophia.test"
        and first["request_id"] == "r-1"
    )
    assert "sk-live-verysecretvalue-123" not in captured.getvalue()
    assert "[redacted]" in first["message"]
    assert "RuntimeError" in second["exception"] and "xoxb-1111" not in second["exception"]


def test_text_logs_are_readable_lines(captured):
    use_buffer(captured, "text")
    logging.getLogger("sophia.test").warning("model call failed", extra={"route": "coding"})
    line = captured.getvalue().strip()
    assert "WARNING sophia.test: model call failed route=coding" in line


def test_redactor_catches_token_shapes_it_was_never_told():
    scrub = Redactor()
    text = "xoxb-123-456-abcdef xapp-1-A1-2-abc ghp_" + "a" * 36 + " Bearer abc.def.ghi123"
    cleaned = scrub(text)
    assert "xoxb-123" not in cleaned and "xapp-1" not in cleaned and "ghp_" not in cleaned
    assert "abc.def.ghi123" not in cleaned and cleaned.count("[redacted]") == 4


async def test_message_text_is_not_logged_by_default(sophia, slack, llm, captured):
    use_buffer(captured, "json")
    llm.script(Text("The secret recipe is cinnamon."))
    await slack.push_event(mention("what is our secret recipe ingredient?"))
    await slack.wait_for_call("chat.stopStream")
    logs = captured.getvalue()
    assert '"message": "request answered"' in logs  # the request was logged…
    assert "secret recipe" not in logs and "cinnamon" not in logs  # …without its text
