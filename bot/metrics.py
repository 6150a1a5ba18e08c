"""Counters for `/metrics`, in Prometheus' text format (no client library needed)."""

from __future__ import annotations

from collections import Counter


class Metrics:
    """A few labelled counters; `render()` gives the Prometheus exposition text."""

    def __init__(self) -> None:
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add to a counter, e.g. `inc("sophia_replies_total", kind="mention")`."""
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def get(self, name: str, **labels: str) -> float:
        """Current value of one counter (0 if never touched)."""
        return self.counters[(name, tuple(sorted(labels.items())))]

    def render(self, gauges: dict[str, float] | None = None) -> str:
        """Prometheus text exposition of every counter and the given gauges."""
        lines = []
        for (name, labels), value in sorted(self.counters.items()):
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {value:g}" if labels else f"{name} {value:g}")
        for name, value in (gauges or {}).items():
            lines.append(f"{name} {value:g}")
        return "\n".join(lines) + "\n"
