"""Counters and histograms for `/metrics`, in Prometheus' text format (no client library needed)."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

# Seconds; dense below 50 ms, where an ack should be, sparse above (Slack gives up at 3 s).
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus expects."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{le="{le}"}} {running}')
        return [*out, f"{name}_sum {self.sum:g}", f"{name}_count {self.count}"]


class Metrics:
    """Labelled counters; `render()` gives the Prometheus exposition text.

    It is also the core's observer: the orchestrator reports answers and tool calls here,
    so model tokens, cost and tool outcomes are counted without the core knowing Prometheus.
    """

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self.histograms: dict[str, Histogram] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add to a counter, e.g. `inc("sophia_replies_total", source="mention")`."""
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name: str, value: float, buckets: tuple[float, ...] = ACK_BUCKETS) -> None:
        """Add one measurement to a histogram, e.g. the seconds from envelope to ack."""
        self.histograms.setdefault(name, Histogram(buckets)).observe(value)

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
        for name, histogram in sorted(self.histograms.items()):
            lines += [f"# TYPE {name} histogram", *histogram.lines(name)]
        for name, value in (gauges or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
