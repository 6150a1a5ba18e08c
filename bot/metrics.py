"""Counters for `/metrics`, in Prometheus' text format (no client library needed)."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Metrics:
    """Labelled counters; `render()` gives the Prometheus exposition text.

    It is also the core's observer: the orchestrator reports answers and tool calls here,
    so model tokens, cost and tool outcomes are counted without the core knowing Prometheus.
    """

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add to a counter, e.g. `inc("sophia_replies_total", source="mention")`."""
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    # -- observer of the core ------------------------------------------------------------

    def answered(self, reply: Any) -> None:
        """One request finished: count it, its tokens and its cost by route."""
        route = reply.route or "none"
        self.inc("sophia_model_requests_total", route=route, status="ok" if reply.ok else "error")
        self.inc("sophia_model_tokens_total", reply.usage.prompt_tokens, route=route, kind="prompt")
        self.inc(
            "sophia_model_tokens_total",
            reply.usage.completion_tokens,
            route=route,
            kind="completion",
        )
        self.inc("sophia_model_cost_usd_total", reply.usage.cost_usd, route=route)

    def tool_called(self, name: str, outcome: str) -> None:
        """One tool call: ok, error, or approval_requested."""
        self.inc("sophia_tool_calls_total", tool=name, outcome=outcome)

    # -- exposition ------------------------------------------------------------------------

    def render(self, gauges: dict[str, float] | None = None) -> str:
        """Prometheus text exposition of every counter and the given gauges."""
        lines: list[str] = []
        typed: set[str] = set()
        for (name, labels), value in sorted(self.counters.items()):
            if name not in typed:
                lines.append(f"# TYPE {name} counter")
                typed.add(name)
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value:g}" if labels else f"{name} {value:g}")
        for name, value in (gauges or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
