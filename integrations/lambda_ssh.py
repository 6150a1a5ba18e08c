"""Run one command on a GPU instance over SSH (asyncssh), streaming the tail of its output.

Output is coalesced before it reaches Slack: an update goes out when `flush_lines` new lines
arrived or every `flush_every_s` seconds while output flows, each showing the last `tail_lines`
lines, and at most `max_updates` of them (a chatty command must not flood a thread or hit
Slack's rate limits). The final tail comes back in `RunResult`.

Lambda instances are new machines with no known host key, so the first key seen for an
instance is remembered by the caller and any later connection presenting another is refused
(trust on first use, like `ssh` asking once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.redact import redact
from integrations.lambda_labs import LambdaError

MAX_LINE = 300  # characters of one output line shown in Slack
MAX_BLOCK = 3_500  # characters of one tail block (well under Slack's message limits)


@dataclass(frozen=True)
class RunResult:
    """How a command ended and the last lines it printed."""

    exit_status: int | None  # None when it was cut off or killed by a signal
    tail: list[str]
    lines: int  # how many lines it printed in all
    host_key: str  # the server's host key fingerprint (SHA256:…)
    timed_out: bool = False


def code_block(lines: list[str]) -> str:
    """The lines as a Slack code block, trimmed from the top to fit one message."""
    text = redact("\n".join(lines)).replace("```", "ˋˋˋ")
    if len(text) > MAX_BLOCK:
        text = "…" + text[-MAX_BLOCK:].split("\n", 1)[-1]
    return f"```\n{text or '(no output)'}\n```"


class _Tail:
    """Keeps the last lines and posts coalesced updates through `report`."""

    def __init__(
        self, report: Callable[[str], Awaitable[None]], *, tail_lines: int, flush_lines: int,
        max_updates: int,
    ) -> None:  # fmt: skip
        self.lines: deque[str] = deque(maxlen=tail_lines)
        self.count = 0
        self._pending = 0
        self._partial = ""
        self._report = report
        self._flush_lines = flush_lines
        self._updates_left = max_updates
        self._lock = asyncio.Lock()  # the ticker and the reader both flush; keep posts in order

    async def feed(self, chunk: str) -> None:
        # `\r` ends a line too: progress bars redraw one line many times.
        parts = (self._partial + chunk).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._partial = parts.pop()
        if len(self._partial) > MAX_LINE:  # a huge line without a newline still shows
            parts.append(self._partial)
            self._partial = ""
        for line in parts:
            self.lines.append(line[:MAX_LINE])
            self.count += 1
            self._pending += 1
        if self._pending >= self._flush_lines:
            await self.flush()

    def close(self) -> None:
        if self._partial:
            self.lines.append(self._partial[:MAX_LINE])
            self.count += 1
            self._partial = ""

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending or self._updates_left <= 0:
                return
            self._pending = 0
            self._updates_left -= 1
            note = "" if self._updates_left else "\n_(more output is shown when the command ends)_"
            block = code_block(list(self.lines))
            await self._report(f"Output so far ({self.count} lines):\n{block}{note}")


async def run_streaming(
    *,
    host: str,
    port: int,
    username: str,
    key_path: Path,
    command: str,
    report: Callable[[str], Awaitable[None]],
    known_host_key: str | None = None,
    flush_every_s: float = 2.0,
    flush_lines: int = 20,
    tail_lines: int = 40,
    max_updates: int = 15,
    timeout_s: float = 3600.0,
) -> RunResult:
    """Connect, check the host key, run `command` (stderr merged into stdout) and stream its tail."""
    import asyncssh  # 60-odd modules, loaded only when a command is run

    tail = _Tail(report, tail_lines=tail_lines, flush_lines=flush_lines, max_updates=max_updates)
    try:
        conn = await asyncssh.connect(
            host, port=port, username=username, client_keys=[str(key_path)],
            known_hosts=None, agent_path=None, config=None, preferred_auth="publickey",
            connect_timeout=30,
        )  # fmt: skip
    except asyncssh.KeyImportError as exc:
        raise LambdaError(
            f"Could not use the key in LAMBDA_SSH_KEY_PATH ({exc}); it must be an unencrypted "
            "private key."
        ) from exc
    except (OSError, asyncssh.Error) as exc:
        raise LambdaError(
            f"Could not connect over SSH to {username}@{host}:{port} ({_reason(exc)})."
        ) from exc
    try:
        return await _run(conn, host, command, tail, known_host_key, flush_every_s, timeout_s)
    except (OSError, asyncssh.Error) as exc:
        raise LambdaError(
            f"The SSH connection to {host} broke ({_reason(exc)}); {tail.count} lines of output "
            "arrived before that."
        ) from exc


async def _run(
    conn: asyncssh.SSHClientConnection, host: str, command: str, tail: _Tail,
    known_host_key: str | None, flush_every_s: float, timeout_s: float,
) -> RunResult:  # fmt: skip
    import asyncssh

    timed_out = False
    async with conn:
        host_key = conn.get_server_host_key()
        fingerprint = host_key.get_fingerprint() if host_key else ""
        if known_host_key and fingerprint != known_host_key:
            raise LambdaError(
                f"The SSH host key of {host} changed (was {known_host_key}, now {fingerprint}); "
                "I did not run the command. Check the instance before trying again."
            )
        process = await conn.create_process(
            command, stderr=asyncssh.STDOUT, encoding="utf-8", errors="replace"
        )
        ticker = asyncio.create_task(_tick(tail, flush_every_s))
        try:
            async with asyncio.timeout(timeout_s):
                while chunk := await process.stdout.read(4096):
                    await tail.feed(chunk)
                await process.wait_closed()
        except TimeoutError:
            timed_out = True
            process.close()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        tail.close()
        status = None if timed_out else process.exit_status
    return RunResult(
        exit_status=status if status is None or status >= 0 else None, tail=list(tail.lines),
        lines=tail.count, host_key=fingerprint, timed_out=timed_out,
    )  # fmt: skip


async def _tick(tail: _Tail, every_s: float) -> None:
    """Post what arrived since the last update, every `every_s` seconds."""
    while True:
        await asyncio.sleep(every_s)
        await tail.flush()


def _reason(exc: BaseException) -> str:
    import asyncssh

    if isinstance(exc, asyncssh.PermissionDenied):
        return "the key in LAMBDA_SSH_KEY_PATH was refused"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return exc.strerror or type(exc).__name__
