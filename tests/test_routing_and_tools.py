"""Routing, fallbacks, budgets and the agent loop, through real litellm against the fake model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.app import core_config
from bot.core.orchestrator import Orchestrator
from bot.core.tools import ToolContext, ToolRegistry, core_tools, tool
from bot.core.types import Request, StepStatus
from bot.store import Store
from integrations.llm import LiteLLMModels
from tests.conftest import answer_requests, make_settings
from tests.fakes.llm import Error, FakeLLM, Text, ToolCalls

# Distinct, priced models per route (litellm's price map knows them), so tests can tell which
# route answered and costs are real numbers.
MODELS = {
    "models": {
        "reasoning": "openai/gpt-4o",
        "coding": "openai/gpt-4.1-mini",
        "speed": "openai/gpt-4o-mini",
        "analysis": "openai/gpt-4.1",
        "fallback": "openai/o3-mini",
    }
}


class Recorder:
    """A `Progress` that remembers what it was told."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, StepStatus, str | None]] = []
        self.chunks: list[str] = []

    async def step(self, step_id, title, status, *, detail=None):
        self.steps.append((step_id, title, status, detail))

    async def text(self, delta):
        self.chunks.append(delta)


@pytest.fixture
async def core(tmp_path: Path, slack, llm):
    settings = make_settings(tmp_path, slack, llm, **MODELS)
    store = await Store.open(settings.resolved_database_url())
    registry = ToolRegistry(core_tools())
    orchestrator = Orchestrator(
        models=LiteLLMModels(settings), requests=store, tools=registry, config=core_config(settings)
    )
    orchestrator.store = store
    yield orchestrator
    await store.close()


def ask(text: str, **kwargs) -> Request:
    return Request(user="U0USER", text=text, source="mention", channel="C0CHAN", **kwargs)


@pytest.mark.parametrize(
    ("text", "route", "model"),
    [
        (
            "Traceback (most recent call last):\n  File \"app.py\", line 3\nKeyError: 'id'",
            "coding",
            "gpt-4.1-mini",
        ),
        ("quick: capital of australia?", "speed", "gpt-4o-mini"),
        (
            "compare Q3 and Q4 churn by region and tell me which trend is worrying",
            "analysis",
            "gpt-4.1",
        ),
        (
            "Should we move our team to a four-day week? Think through the trade-offs.",
            "reasoning",
            "gpt-4o",
        ),
    ],
)
async def test_each_kind_of_request_reaches_its_route(core, llm, text, route, model):
    reply = await core.handle(ask(text), Recorder())
    assert reply.route == route
    assert answer_requests(llm)[-1]["model"] == model


async def test_explicit_choice_in_words_or_flag_wins(core, llm):
    reply = await core.handle(ask("use the coding model: what is a monad?"), Recorder())
    assert reply.route == "coding" and reply.route_reason.startswith("explicit")
    assert answer_requests(llm)[-1]["messages"][-1]["content"].strip().startswith("what is a monad")
    reply = await core.handle(ask("hello", route="analysis"), Recorder())
    assert reply.route == "analysis"


async def test_an_unsure_scorer_asks_the_speed_model_for_a_label(core, llm):
    llm.classify_as = "analysis"
    reply = await core.handle(ask("hmm, thoughts on this?"), Recorder())
    classifications = [b for b in llm.chat_requests() if b not in answer_requests(llm)]
    assert classifications and classifications[0]["model"] == "gpt-4o-mini"  # the speed route
    assert reply.route == "analysis" and reply.route_reason == "classified by the speed model"


async def test_primary_500_falls_back_and_the_footer_says_so(core, llm):
    llm.script(Error(500, "down"), model="gpt-4o")
    llm.script(Text("Answer from the next route."), model="gpt-4.1")
    reply = await core.handle(
        ask("Should we rewrite the billing service? Weigh it up.", route="reasoning"), Recorder()
    )
    assert reply.text == "Answer from the next route."
    assert reply.route == "analysis"
    assert "fallback reasoning → analysis" in reply.notes


async def test_a_429_moves_on_to_the_next_route_at_once(core, llm):
    llm.script(FakeLLM.rate_limited(), model="gpt-4o-mini")
    reply = await core.handle(ask("quick: 2+2?", route="speed"), Recorder())
    assert reply.ok and reply.route == "fallback"
    assert [b["model"] for b in answer_requests(llm)] == ["gpt-4o-mini", "o3-mini"]


async def test_a_context_window_error_moves_to_a_longer_window_route(core, llm):
    llm.script(FakeLLM.context_window_error(), model="gpt-4o")  # 128k
    reply = await core.handle(ask("summarise all of this", route="reasoning"), Recorder())
    assert reply.ok
    # The smallest window that is longer than gpt-4o's 128k: o3-mini's 200k.
    assert answer_requests(llm)[-1]["model"] == "o3-mini"
    assert reply.route == "fallback"


async def test_cost_and_tokens_are_recorded_per_request(core, llm):
    reply = await core.handle(ask("quick: capital of peru?"), Recorder())
    assert reply.usage.prompt_tokens > 0 and reply.usage.cost_usd > 0
    spent = await core.store.spend(since=time.time() - 60, user_id="U0USER")
    assert spent == pytest.approx(reply.usage.cost_usd)
    by_route = await core.store.usage_by_route(since=time.time() - 60)
    assert by_route["speed"][0] == 1 and by_route["speed"][2] == pytest.approx(reply.usage.cost_usd)


async def test_a_tool_call_runs_and_the_answer_uses_its_result(core, llm):
    llm.script(
        ToolCalls([("current_time", {"timezone": "Asia/Tokyo"})]), Text("It is evening in Tokyo.")
    )
    progress = Recorder()
    reply = await core.handle(ask("what time is it in tokyo right now?"), progress)
    assert reply.text == "It is evening in Tokyo."
    second = answer_requests(llm)[1]["messages"]
    tool_message = second[-1]
    assert tool_message["role"] == "tool" and "Asia/Tokyo" in tool_message["content"]
    assert 'trust="untrusted"' in tool_message["content"]  # tool output is labelled as data
    assert any(
        title == "Used current_time" and status == StepStatus.COMPLETE
        for _, title, status, _ in progress.steps
    )
    assert "1 tool step" in reply.notes


async def test_two_tool_calls_in_one_turn_run_in_parallel(core, llm):
    llm.script(
        ToolCalls(
            [("current_time", {"timezone": "UTC"}), ("current_time", {"timezone": "Europe/Paris"})]
        ),
        Text("Both clocks read."),
    )
    reply = await core.handle(ask("what time is it in UTC and Paris?"), Recorder())
    tool_messages = [m for m in answer_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 2 and "Europe/Paris" in tool_messages[1]["content"]
    assert reply.text == "Both clocks read."


async def test_a_failing_tool_is_reported_to_the_model_not_the_user(core, llm):
    llm.script(
        ToolCalls([("current_time", {"timezone": "Mars/Olympus"})]),
        Text("I could not read that zone."),
    )
    progress = Recorder()
    reply = await core.handle(ask("what time is it on mars?"), progress)
    assert reply.ok and reply.text == "I could not read that zone."
    tool_message = answer_requests(llm)[1]["messages"][-1]
    assert "Mars/Olympus" in tool_message["content"] and "Traceback" not in tool_message["content"]
    assert any(status == StepStatus.ERROR for _, _, status, _ in progress.steps)


async def test_a_side_effect_tool_never_acts_inside_the_loop(core, llm):
    merged: list[str] = []

    @tool(side_effect=True, description="Merge a pull request.")
    async def merge_pr(ctx: ToolContext, repo: str, number: int) -> str:
        merged.append(f"{repo}#{number}")
        return "merged"

    core.tools.add(merge_pr)
    llm.script(
        ToolCalls([("merge_pr", {"repo": "acme/site", "number": 7})]), Text("I asked for approval.")
    )
    reply = await core.handle(ask("merge acme/site#7 please"), Recorder())
    assert merged == []  # nothing happened
    tool_message = answer_requests(llm)[1]["messages"][-1]
    assert "needs a human approver" in tool_message["content"]
    assert reply.text == "I asked for approval."


async def test_the_step_limit_ends_with_a_graceful_answer(core, llm):
    core._agent._max_steps = 2
    llm.script(
        ToolCalls([("current_time", {})]),
        ToolCalls([("current_time", {})]),
        Text("Stopping here; enough clocks."),
    )
    reply = await core.handle(ask("keep checking the time forever"), Recorder())
    assert reply.text == "Stopping here; enough clocks."
    last = answer_requests(llm)[-1]
    assert last["tool_choice"] == "none"  # the model was told to stop using tools
    assert any(
        "every tool step allowed" in m.get("content") or ""
        for m in last["messages"]
        if m["role"] == "system"
    )
    assert any("tool limit" in note for note in reply.notes)


async def test_over_the_daily_budget_sophia_refuses_plainly(tmp_path, slack, llm):
    settings = make_settings(tmp_path, slack, llm, **MODELS, user_daily_budget_usd=0.000001)
    store = await Store.open(settings.resolved_database_url())
    try:
        core = Orchestrator(
            models=LiteLLMModels(settings), requests=store, config=core_config(settings)
        )
        first = await core.handle(ask("quick: capital of chile?"), Recorder())
        assert first.ok and first.usage.cost_usd > 0
        second = await core.handle(ask("quick: capital of peru?"), Recorder())
        assert not second.ok
        assert (
            "Your daily model budget ($0.00) is used up" in second.error
            and "00:00 UTC" in second.error
        )
        assert len(answer_requests(llm)) == 1  # no model call for the refused request
    finally:
        await store.close()


async def test_near_the_budget_expensive_routes_fall_to_cheaper_ones(tmp_path, slack, llm):
    settings = make_settings(tmp_path, slack, llm, **MODELS, daily_budget_usd=1.0)
    store = await Store.open(settings.resolved_database_url())
    try:
        core = Orchestrator(
            models=LiteLLMModels(settings), requests=store, config=core_config(settings)
        )
        from bot.core.types import RequestRecord

        await store.log_request(RequestRecord(
            id="r-old", at=time.time(), user_id="U0OTHER", channel=None, thread_ts=None, source="dm",
            route="reasoning", model="x", prompt_tokens=1, completion_tokens=1, cost_usd=0.85,
            latency_ms=1, status="ok",
        ))  # fmt: skip
        reply = await core.handle(
            ask("Think hard about our pricing strategy.", route="reasoning"), Recorder()
        )
        assert reply.route == "speed"
        assert "near the daily budget: cheaper model" in reply.notes
        assert json.dumps(answer_requests(llm)[-1]["model"]) == '"gpt-4o-mini"'
    finally:
        await store.close()


async def test_a_thread_too_long_for_the_window_is_summarised_not_silently_dropped(core, llm):
    from bot.core.types import Turn

    history = [
        Turn(role="user", text=f"message {i}: " + "details " * 200, author="U0ANA")
        for i in range(40)
    ]
    core._config = type(core._config)(**{**core._config.__dict__, "history_tokens": 3000})
    llm.on(
        lambda body: (
            Text("- Ana listed forty sets of details.")
            if "Summarise this earlier part" in str(body["messages"][0])
            else None
        ),
        first=True,
    )
    reply = await core.handle(ask("so what do we do?", history=history), Recorder())
    assert any("older messages summarised" in note for note in reply.notes)
    answer = answer_requests(llm)[-1]["messages"]
    assert any(
        m["role"] == "system" and "Ana listed forty sets of details" in m["content"] for m in answer
    )
    assert "message 0:" not in str(answer)  # the oldest turns themselves are not sent
