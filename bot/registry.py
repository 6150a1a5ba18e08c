"""The one place capabilities plug in: `/sophia` subcommands and `sophia doctor` checks.

Each integration adds its entries here; the core and the handlers only read the
registry, so a new capability never edits the Slack or CLI code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import aiohttp

    from bot.core.approvals import ApprovalRequest
    from bot.core.orchestrator import Orchestrator
    from bot.core.types import Progress
    from bot.services import Services
    from bot.settings import Settings


class CommandContext(Protocol):
    """What a subcommand may do; Slack and the terminal each provide one."""

    user: str
    channel: str
    args: str  # the text after the subcommand's name
    private: bool  # typed in a DM
    lang: str  # the person's language for Sophia's own words (bot.i18n: "en", "ja")
    core: Orchestrator  # models, request log, tools
    services: Services  # approvals, GitHub, … (what this Sophia has)

    async def reply_private(self, text: str, *, blocks: list[dict] | None = None) -> None:
        """Tell only the person who typed the command (ephemeral in Slack)."""
        ...

    async def answer(
        self, text: str, *, route: str | None = None, research: str | None = None
    ) -> None:
        """Run `text` as a request, visibly, with progress and the answer in a thread
        (`research="deep"`: answered by web research)."""
        ...

    async def post(self, text: str) -> None:
        """Post `text` visibly in the conversation where the command was typed."""
        ...

    async def in_thread(self, title: str, work: Callable[[Progress], Awaitable[str]]) -> None:
        """Post `title` visibly, run `work` with its progress shown in that message's thread,
        and finish the thread with the text `work` returns (or a plain error)."""
        ...

    async def post_approval(self, request: ApprovalRequest) -> None:
        """Show a stored approval request with its Approve / Reject buttons."""
        ...


@dataclass(frozen=True)
class Subcommand:
    """One `/sophia <name> …` entry; `run=None` means the capability has not landed yet."""

    name: str  # may be several words: "memory search"
    usage: str  # "memory search <query>"
    summary: str  # one line for `help`
    run: Callable[[CommandContext], Awaitable[None]] | None = None
    needs: tuple[str, ...] = ()  # settings it will need, named in the "not available" reply


@dataclass(frozen=True)
class CheckResult:
    """What one doctor check found."""

    ok: bool
    detail: str
    fix: str = ""  # what to do, naming the variable, when not ok


@dataclass(frozen=True)
class DoctorCheck:
    """A live check of one outside system, run by `sophia doctor`."""

    system: str
    configured: Callable[[Settings], bool]
    run: Callable[[Settings, aiohttp.ClientSession], Awaitable[CheckResult]]
    missing: str = ""  # the variables to set when not configured


@dataclass
class Registry:
    """Subcommands and doctor checks, in the order they were added."""

    subcommands: dict[str, Subcommand] = field(default_factory=dict)
    checks: list[DoctorCheck] = field(default_factory=list)

    def add_subcommand(self, subcommand: Subcommand) -> None:
        """Add or replace (a landed capability replaces its placeholder) a subcommand."""
        self.subcommands[subcommand.name] = subcommand

    def add_check(self, check: DoctorCheck) -> None:
        """Add a doctor check."""
        self.checks.append(check)

    def parse(self, text: str) -> tuple[Subcommand | None, str]:
        """Match the longest subcommand name at the start of `text`; the rest is its args."""
        words = text.split()
        for size in (3, 2, 1):
            if len(words) >= size:
                name = " ".join(words[:size]).lower()
                if name in self.subcommands:
                    rest = text.strip()
                    for word in words[:size]:
                        rest = rest[len(word) :].lstrip()
                    return self.subcommands[name], rest
        return None, text.strip()
