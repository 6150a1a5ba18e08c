"""The Protocols the core talks through; integrations implement them, tests fake them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.types import Usage


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer as the model produces it."""

    text: str


@dataclass(frozen=True)
class ModelDone:
    """The model finished; what it was and what it cost."""

    model: str
    usage: Usage
    finish_reason: str | None = None


ModelEvent = TextDelta | ModelDone


class ModelClient(Protocol):
    """Chat models behind named routes (reasoning, coding, speed, analysis, fallback)."""

    def stream(
        self, *, route: str, messages: list[dict[str, Any]], max_tokens: int | None = None
    ) -> AsyncIterator[ModelEvent]:
        """Stream one answer; raises a `bot.core.errors.ModelError` on failure."""
        ...

    def model_for(self, route: str) -> str:
        """The model string a route currently resolves to."""
        ...


class RequestLog(Protocol):
    """Where the core records each request (who, where, route, tokens, latency)."""

    async def log_request(self, record: Any) -> None:
        """Store one `RequestRecord`."""
        ...
