"""`sophia ask` in a terminal: progress steps and the streamed answer, drawn with rich."""

from __future__ import annotations

from rich.console import Console
from rich.markdown import Markdown

from bot.core.types import Reply, StepStatus
from bot.redact import redact

_MARKS = {
    StepStatus.PENDING: "[dim]·[/]",
    StepStatus.IN_PROGRESS: "[yellow]…[/]",
    StepStatus.COMPLETE: "[green]✓[/]",
    StepStatus.ERROR: "[red]✗[/]",
}


class TerminalProgress:
    """`Progress` for a terminal: one line per step change, answer text as it arrives."""

    def __init__(self, console: Console | None = None, *, markdown: bool = True) -> None:
        self.console = console or Console(highlight=False)
        self.markdown = markdown and self.console.is_terminal
        self._text: list[str] = []

    async def step(
        self, step_id: str, title: str, status: StepStatus, *, detail: str | None = None
    ) -> None:
        """Print the step's new state (on stderr-like dim lines)."""
        suffix = f" [dim]({detail})[/]" if detail else ""
        self._end_line()
        self.console.print(f"{_MARKS[status]} {title}{suffix}", style="dim")

    async def text(self, delta: str) -> None:
        """Stream raw text as it comes; pretty Markdown is drawn once at the end if a TTY."""
        self._text.append(delta)
        if not self.markdown:
            self.console.out(delta, end="", highlight=False)

    def _end_line(self) -> None:
        if not self.markdown and self._text and not self._text[-1].endswith("\n"):
            self.console.out("")
            self._text.append("\n")

    def finish(self, reply: Reply, footer: str) -> None:
        """The whole answer (rendered), the error if any, and the footer line."""
        if self.markdown and reply.text:
            self.console.print(Markdown(redact(reply.text)))
        self._end_line()
        if reply.error:
            self.console.print(f"[red]{redact(reply.error)}[/]")
        self.console.print(footer, style="dim")
