"""Plain data the core works on: requests in, progress out, replies back.

Nothing here knows Slack; handlers translate Slack payloads into a `Request` and
render `Progress` calls, and the terminal (`sophia ask`) does the same its own way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol


def new_request_id() -> str:
    """A short id people can quote back to an operator ("ref r-3f9a1c2b")."""
    return "r-" + secrets.token_hex(4)


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation.

    Only Sophia's own messages are `assistant` turns; everyone else (people, other bots)
    is `user`, and other bots' messages are marked so the model reads them as quoted data.
    """

    role: Literal["user", "assistant"]
    text: str
    author: str | None = None
    from_other_bot: bool = False


Source = Literal["mention", "dm", "command", "assistant", "cli"]


@dataclass
class Request:
    """What someone asked, where, and the conversation so far."""

    user: str
    text: str
    source: Source
    channel: str | None = None
    thread_ts: str | None = None
    team: str | None = None
    history: list[Turn] = field(default_factory=list)
    private: bool = False  # a DM: what is said here is never recalled elsewhere
    route: str | None = None  # explicit choice ("ask --model coding"); None lets routing decide
    tools: list[Any] = field(default_factory=list)  # extra tools bound to this request
    allow_side_effects: bool = True  # False: side-effect tools are not even offered
    disabled_groups: frozenset[str] = frozenset()  # tool groups this channel switched off
    instructions: str = ""  # extra instructions from the channel's admins (/sophia config)
    default_route: str | None = None  # the channel's route when nobody picks one
    research: str | None = None  # "deep" or "quick": answer by web research (`/sophia research`)
    attachments: list[Any] = field(
        default_factory=list
    )  # shared files, read (name, kind, text | data_url)
    notes: list[str] = field(
        default_factory=list
    )  # what could not be read, for the model to mention
    id: str = field(default_factory=new_request_id)


class StepStatus(StrEnum):
    """A progress step's state; the names are Slack's task_update statuses."""

    PENDING = "pending"  # announced, not started
    IN_PROGRESS = "in_progress"  # running now
    COMPLETE = "complete"  # finished well
    ERROR = "error"  # finished badly; the reply says why


@dataclass
class Usage:
    """Tokens and money one answer cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class Reply:
    """The finished answer, with what it took to produce it."""

    request_id: str
    text: str
    route: str | None = None
    route_reason: str | None = None  # why this route ("code block", "explicit: --model coding")
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    elapsed_s: float = 0.0
    error: str | None = None  # plain-language failure shown to the user, with the request id
    notes: list[str] = field(default_factory=list)  # footer extras ("fell back to …")

    @property
    def ok(self) -> bool:
        return self.error is None


class Progress(Protocol):
    """Where the core reports what it is doing while it works."""

    async def step(
        self, step_id: str, title: str, status: StepStatus, *, detail: str | None = None
    ) -> None:
        """A step started, finished or failed."""

    async def text(self, delta: str) -> None:
        """More of the answer's text, in order."""


class QuietProgress:
    """A `Progress` that shows nothing: work run as a tool call (the agent already shows
    "Using <tool>"), or a benchmark."""

    async def step(
        self, step_id: str, title: str, status: StepStatus, *, detail: str | None = None
    ) -> None:
        return None

    async def text(self, delta: str) -> None:
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One line of the request log: who asked where, how it was answered, what it cost."""

    id: str
    at: float
    user_id: str
    channel: str | None
    thread_ts: str | None
    source: str
    route: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float | None
    status: str
    error: str | None = None
    text: str | None = None
