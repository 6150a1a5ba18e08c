"""The Protocols the core talks through; integrations implement them, tests fake them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.types import RequestRecord, Usage


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer as the model produces it."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool: `arguments` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelDone:
    """The model finished a turn: who answered, what it cost, which tools it wants."""

    model: str  # the model string that answered
    usage: Usage
    finish_reason: str | None = None
    route: str | None = None  # the route that answered (differs from the asked one on fallback)
    tool_calls: tuple[ToolCall, ...] = ()
    fallbacks: int = 0  # how many fallbacks it took


ModelEvent = TextDelta | ModelDone


class ModelClient(Protocol):
    """Chat models behind named routes (reasoning, coding, speed, analysis, fallback)."""

    def stream(
        self,
        *,
        route: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[ModelEvent]:
        """Stream one turn; raises a `bot.core.errors.ModelError` on failure."""
        ...

    def model_for(self, route: str) -> str:
        """The model string a route currently resolves to."""
        ...

    def has_credentials(self, route: str) -> bool:
        """Whether the route's model has the key it needs."""
        ...


class RequestLog(Protocol):
    """Where the core records each request and reads back what was spent."""

    async def log_request(self, record: RequestRecord) -> None:
        """Store one `RequestRecord`."""
        ...

    async def spend(self, *, since: float, user_id: str | None = None) -> float:
        """US dollars spent on models since `since` (epoch seconds), for everyone or one user."""
        ...

    async def usage_by_route(self, *, since: float) -> dict[str, tuple[int, int, float]]:
        """Per route since `since`: (requests, tokens, dollars)."""
        ...


class Observer(Protocol):
    """Told what happened, for metrics; must not raise."""

    def answered(self, reply: Any) -> None:
        """A request finished (its `Reply`)."""
        ...

    def tool_called(self, name: str, outcome: str) -> None:
        """A tool call ended: ok, error, or approval_requested."""
        ...


class ApprovalGate(Protocol):
    """Where a side-effect tool call goes instead of running: a human must approve it."""

    async def request(
        self, *, tool: str, arguments: dict[str, Any], user: str, channel: str | None,
        thread_ts: str | None,
    ) -> str:  # fmt: skip
        """File an approval request; return what the model should tell the user."""
        ...


@dataclass(frozen=True)
class SearchHit:
    """One web search result, the same shape whichever provider found it."""

    title: str
    url: str
    snippet: str
    provider: str  # "serper", "brave", "tavily", "exa", "serpapi"
    published: str | None = None  # ISO date when the provider gives one


@dataclass(frozen=True)
class SearchResults:
    """What a search found and how: which provider answered, what was tried before it."""

    hits: list[SearchHit]
    provider: str | None  # the provider that answered (None when nothing did)
    tried: list[tuple[str, str]]  # (provider, outcome) in order: "no key", "HTTP 500", "ok", …
    cached: bool = False


@dataclass(frozen=True)
class WebPage:
    """A fetched page's readable text (untrusted data)."""

    url: str  # as asked
    final_url: str  # after redirects
    title: str
    text: str
    via: str  # "direct", "brightdata", "zenrows"
    truncated: bool = False
    cached: bool = False


class WebResearch(Protocol):
    """Web search across providers with fallback, and page reading (integrations.research)."""

    @property
    def providers(self) -> list[str]:
        """The providers that will be tried, in order (configured ones only)."""
        ...

    async def search(self, query: str, *, limit: int = 8) -> SearchResults:
        """Try providers in order; raises `ResearchError` (listing what was tried) when all fail."""
        ...

    async def fetch(self, url: str) -> WebPage:
        """Fetch and extract one page; raises `FetchError` with a plain reason."""
        ...
