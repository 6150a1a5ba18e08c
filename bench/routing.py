"""Routing + agent bookkeeping overhead per request, and routing accuracy.

Overhead: the real Orchestrator (budget check, scorer, prompt building, redaction, the agent
loop, the SQLite request log) answering with an instant in-process model, so every
microsecond measured is Sophia's own. Accuracy: the scorer alone on the labelled and holdout
sets; the scorer+classifier path only when a real model is configured (a fake answering
from the labels would prove nothing), otherwise its plumbing is exercised and counted.

    python bench/routing.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from routing_accuracy import DATA, FILES, evaluate, load_rows  # noqa: E402

from bot.core import routing  # noqa: E402
from bot.core.orchestrator import CoreConfig, Orchestrator  # noqa: E402
from bot.core.ports import ModelDone, TextDelta, ToolCall  # noqa: E402
from bot.core.types import Request, Usage  # noqa: E402
from bot.store import Store  # noqa: E402


class InstantModels:
    """A ModelClient that answers at once: one tool call first when asked to, then text."""

    def __init__(self, *, with_tool: bool = False, label: str = "reasoning") -> None:
        self.with_tool, self.label = with_tool, label

    def model_for(self, route: str) -> str:
        return f"instant/{route}"

    def has_credentials(self, route: str) -> bool:
        return True

    async def stream(self, *, route: str, messages: list, **_: Any) -> AsyncIterator[Any]:
        if messages[0]["content"] == routing.CLASSIFIER_SYSTEM:
            yield TextDelta(self.label)
            yield ModelDone(model=self.model_for(route), usage=Usage(10, 1), route=route)
            return
        if self.with_tool and messages[-1]["role"] != "tool":
            call = ToolCall("call_1", "current_time", '{"timezone": "UTC"}')
            yield ModelDone(
                model=self.model_for(route), usage=Usage(50, 5), route=route, tool_calls=(call,)
            )
            return
        for piece in ("Here is ", "an instant ", "answer."):
            yield TextDelta(piece)
        yield ModelDone(model=self.model_for(route), usage=Usage(50, 5, 0.0001), route=route)


class NullProgress:
    async def step(self, *a: Any, **k: Any) -> None:
        pass

    async def text(self, delta: str) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def overhead(n: int, *, with_tool: bool, texts: list[str]) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{tmp}/bench.db")
        core = Orchestrator(
            models=InstantModels(with_tool=with_tool), requests=store,
            config=CoreConfig(daily_budget_usd=1000.0, user_daily_budget_usd=100.0),
        )  # fmt: skip
        times = []
        for i in range(n):
            request = Request(
                user=f"U{i % 50}", text=texts[i % len(texts)], source="mention", channel="C1"
            )
            started = time.perf_counter()
            await core.handle(request, NullProgress())
            times.append((time.perf_counter() - started) * 1000)
        await store.close()
        return times[n // 10 :]  # drop warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rows = [row for name in FILES for row in load_rows(DATA / name)]
    texts = [row["text"] for row in rows]

    print(f"Routing + agent overhead per request (instant model, {args.requests} requests, ms)")
    print(f"{'case':<34}{'p50':>8}{'p99':>8}{'mean':>8}")
    for label, with_tool in (("plain answer", False), ("answer with one tool call", True)):
        times = asyncio.run(overhead(args.requests, with_tool=with_tool, texts=texts))
        print(
            f"{label:<34}{pct(times, 0.5):>8.2f}{pct(times, 0.99):>8.2f}{statistics.mean(times):>8.2f}"
        )
    print("target: p99 < 5 ms (excluding model time)\n")

    print("Routing accuracy")
    for name in FILES:
        data = load_rows(DATA / name)
        scorer = evaluate(lambda text: routing.score(text).route, data)
        unsure = sum(routing.score(r["text"]).confidence < routing.UNSURE_BELOW for r in data)
        print(f"  {name:<26} scorer alone {scorer['accuracy']:.3f}  (n={scorer['n']}, "
              f"{unsure} below UNSURE_BELOW={routing.UNSURE_BELOW} would ask the speed model)")  # fmt: skip
    if os.environ.get("OPENROUTER_API_KEY") or os.environ.get("SOPHIA_LLM_API_BASE"):
        print("  scorer+classifier with the configured speed model: run `sophia ask` on the rows "
              "(not run automatically: it spends money)")  # fmt: skip
    else:
        print("  scorer+classifier: n/a — no model configured (the classifier path's plumbing is "
              "covered by tests/test_routing_and_tools.py; a fake answering from the labels would "
              "prove nothing)")  # fmt: skip


if __name__ == "__main__":
    main()
