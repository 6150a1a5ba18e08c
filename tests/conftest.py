"""Shared fixtures: a fake Slack and a fake model server on loopback, and Sophia wired to them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# litellm would download its price map at import; tests never reach the internet.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# Both Slack clients honour HTTP(S)_PROXY and ignore NO_PROXY: loopback must go direct.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)

import litellm  # noqa: E402, F401  (imported once here: it takes seconds, tests wait less)

from bot.app import Sophia  # noqa: E402
from bot.core.routing import CLASSIFIER_SYSTEM  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.fakes.llm import FakeLLM, Text  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

LLM_KEY = "sk-test-llm-key-0123456789"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def is_classifier(body: dict) -> bool:
    """A one-word route classification Sophia asks the speed model for on the side."""
    messages = body.get("messages") or []
    return bool(messages) and messages[0].get("content") == CLASSIFIER_SYSTEM


# mem0's own prompts, for the fact extraction Sophia runs in the background after answering.
MEM0_MARKERS = ("Personal Information Organizer", "smart memory manager")


def is_memory_extraction(body: dict) -> bool:
    """A background mem0 request: extract facts or decide memory updates (asked for JSON)."""
    if (body.get("response_format") or {}).get("type") == "json_object":
        return True
    text = " ".join(str(m.get("content")) for m in body.get("messages") or [])
    return any(marker in text for marker in MEM0_MARKERS)


def answer_requests(llm: FakeLLM) -> list[dict]:
    """The model requests that answer people (not the side classification calls)."""
    return [
        body
        for body in llm.chat_requests()
        if not is_classifier(body) and not is_memory_extraction(body)
    ]


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as fake:
        # Classification calls get a label (default `reasoning`; tests may set `classify_as`)
        # without consuming the replies a test scripts for the answer itself.
        fake.classify_as = "reasoning"
        fake.on(lambda body: Text(fake.classify_as) if is_classifier(body) else None, first=True)
        # Background fact extraction finds nothing unless a test says otherwise.
        fake.on(
            lambda body: Text('{"facts": []}') if is_memory_extraction(body) else None, first=True
        )
        yield fake


def make_settings(tmp_path: Path, slack: FakeSlack, llm: FakeLLM, **overrides: object) -> Settings:
    """Settings pointing every endpoint at the fakes, isolated from the machine's .env."""
    values: dict[str, object] = {
        "slack_bot_token": slack.bot_token,
        "slack_app_token": slack.app_token,
        "slack_api_url": slack.api_url,
        "data_dir": tmp_path / "data",
        "llm_api_base": llm.base_url,
        "llm_api_key": LLM_KEY,
        "health_port": 0,
        "llm_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path, slack: FakeSlack, llm: FakeLLM) -> Settings:
    return make_settings(tmp_path, slack, llm)


@pytest.fixture
async def sophia(settings: Settings, slack: FakeSlack) -> AsyncIterator[Sophia]:
    app = Sophia(settings, socket_ping_interval=1.0)
    await app.start()
    await slack.wait_connected()
    try:
        yield app
    finally:
        await app.stop()
