"""Render the core's progress as a Slack thread reply.

Two ways, chosen per reply:
- *stream*: Slack's native chat streaming (chat.startStream / appendStream / stopStream).
  Steps become `task_update` chunks in a timeline, the answer arrives as markdown.
- *placeholder*: where streaming is refused (older workspaces, a top-level DM, an error
  from chat.startStream), a message is posted at once and edited in place with
  chat.update, at most once per `edit_interval` per message (Slack rate-limits edits).

Either way a long answer rolls over into further replies in the thread, each well
under Slack's limits, and nothing is truncated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts import chart_png, first_table
from bot.core.types import Reply, StepStatus
from bot.redact import redact
from handlers.artefacts import FenceFilter
from handlers.formatting import (
    MESSAGE_BYTES,
    STREAM_CHUNK_BYTES,
    fallback_text,
    markdown_blocks,
)

log = logging.getLogger("sophia.render")

# Within this many bytes of a message's budget, end the message at the next paragraph break.
NEAR_FULL_BYTES = 3000

_ICONS = {
    StepStatus.PENDING: "◻️",
    StepStatus.IN_PROGRESS: "⏳",
    StepStatus.COMPLETE: "✅",
    StepStatus.ERROR: "⚠️",
}


def cut(text: str, max_bytes: int) -> tuple[str, str]:
    """Split `text` into a head of at most `max_bytes` UTF-8 bytes and the rest.

    The cut falls after a paragraph break if there is one in the second half of the
    budget, else after a line break or a space, so words are never broken when avoidable.
    """
    data = text.encode()
    if len(data) <= max_bytes:
        return text, ""
    head = data[:max_bytes].decode("utf-8", errors="ignore")
    for sep in ("\n\n", "\n", " "):
        at = head.rfind(sep)
        if at >= len(head) // 2:
            return head[: at + len(sep)], text[at + len(sep) :]
    return head, text[len(head) :]


@dataclass
class _Step:
    title: str
    status: StepStatus
    detail: str | None = None


@dataclass
class Target:
    """Where a reply goes and who asked (streaming outside DMs must name the asker)."""

    channel: str
    thread_ts: str | None  # None: a top-level message (a plain DM)
    user: str
    team: str | None
    is_dm: bool = False


@dataclass
class SlackReply:
    """A `Progress` that writes into Slack; call `open()` first and `finish()` last."""

    client: AsyncWebClient
    target: Target
    stream: bool = True  # try native streaming first
    edit_interval: float = 1.0  # seconds between chat.update calls on one message
    stream_interval: float = 0.3  # seconds between appendStream calls
    first_step: tuple[str, str] = ("context", "Reading the conversation")
    feedback_for: str | None = None  # a request id: the final message carries feedback buttons

    mode: str = field(default="none", init=False)  # "stream" | "placeholder"
    ts: str | None = field(default=None, init=False)  # the message being written now
    posted: list[str] = field(default_factory=list, init=False)  # every message ts we wrote
    _steps: dict[str, _Step] = field(default_factory=dict, init=False)
    _sent: str = field(default="", init=False)  # text already in the current message
    _pending: str = field(default="", init=False)  # text not yet sent
    _full: bool = field(default=False, init=False)  # current message ended at a paragraph
    _dirty: dict[str, None] = field(default_factory=dict, init=False)  # steps changed, not yet sent
    _fences: FenceFilter = field(default_factory=FenceFilter, init=False)
    _last_write: float = field(default=0.0, init=False)
    _timer: asyncio.Task[None] | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Show something at once: a stream with the first step, or a placeholder."""
        step_id, title = self.first_step
        self._steps[step_id] = _Step(title, StepStatus.IN_PROGRESS)
        if self.stream and self.target.thread_ts:
            try:
                await self._start_stream(chunks=[self._task_chunk(step_id)])
                return
            except SlackApiError as exc:
                log.info("streaming refused, using a placeholder", extra={"error": _err(exc)})
        await self._post_placeholder()

    async def finish(self, reply: Reply, *, footer: str | None = None) -> None:
        """Write the rest of the answer, the error if any, and the footer."""
        if self._timer:
            self._timer.cancel()
            self._timer = None
        tail = self._fences.flush()
        if reply.error:
            if reply.text:
                tail += "\n\n_(answer interrupted)_"
            tail += f"\n\n:warning: {reply.error}"
        elif not reply.text:
            tail += "_(The model returned an empty answer.)_"
        self._pending += tail
        self._pending = redact(self._pending)
        async with self._lock:
            if self.mode == "stream":
                await self._finish_stream(footer)
            else:
                await self._finish_placeholder(footer)
        await self._upload_artefacts()

    async def _upload_artefacts(self) -> None:
        """Attach held-back long blocks as files in the thread."""
        for artefact in self._fences.artefacts:
            try:
                await self.client.files_upload_v2(
                    channel=self.target.channel, thread_ts=self.target.thread_ts,
                    filename=artefact.filename, title=artefact.filename, content=redact(artefact.content),
                )  # fmt: skip
            except SlackApiError as exc:
                log.warning("could not upload an artefact", extra={"error": _err(exc)})
                await self.client.chat_postMessage(
                    channel=self.target.channel, thread_ts=self.target.thread_ts,
                    text=f"I couldn't attach {artefact.filename} as a file; here it is:",
                    blocks=markdown_blocks(f"```\n{artefact.content}\n```"),
                )  # fmt: skip

    async def attach_chart(self, answer: str, *, title: str) -> bool:
        """Draw the answer's table as a PNG and attach it in the thread; False when there is
        no table with numbers to draw."""
        table = first_table(answer)
        if table is None:
            return False
        png = await asyncio.to_thread(chart_png, table, title=title)
        if png is None:
            return False
        try:
            await self.client.files_upload_v2(
                channel=self.target.channel, thread_ts=self.target.thread_ts,
                filename="chart.png", title=title[:80] or "Chart", content=png,
            )  # fmt: skip
        except SlackApiError as exc:
            log.warning("could not upload a chart", extra={"error": _err(exc)})
            return False
        return True

    # -- Progress protocol -------------------------------------------------------------

    async def step(
        self, step_id: str, title: str, status: StepStatus, *, detail: str | None = None
    ) -> None:
        """Record a step; streamed as a task chunk, or shown on the placeholder."""
        # A new step implies the opening "reading" step is done.
        first = self._steps.get(self.first_step[0])
        if first and step_id != self.first_step[0] and first.status == StepStatus.IN_PROGRESS:
            first.status = StepStatus.COMPLETE
            await self._write_step(self.first_step[0])
        self._steps[step_id] = _Step(title, status, detail)
        await self._write_step(step_id)

    def has_step(self, step_id: str) -> bool:
        """Whether a step with this id was shown."""
        return step_id in self._steps

    async def text(self, delta: str) -> None:
        """Queue answer text (long fenced blocks are held back for upload as files)."""
        self._pending += self._fences.feed(delta)
        self._schedule()

    # -- streaming ---------------------------------------------------------------------

    async def _start_stream(self, *, chunks: list[dict[str, Any]]) -> None:
        t = self.target
        recipient = {} if t.is_dm else {"recipient_user_id": t.user, "recipient_team_id": t.team}
        response = await self.client.chat_startStream(
            channel=t.channel,
            thread_ts=t.thread_ts,
            task_display_mode="timeline",
            chunks=chunks,
            **recipient,
        )
        self.mode, self.ts, self._sent = "stream", response["ts"], ""
        self.posted.append(response["ts"])
        self._last_write = time.monotonic()

    def _task_chunk(self, step_id: str) -> dict[str, Any]:
        step = self._steps[step_id]
        chunk: dict[str, Any] = {
            "type": "task_update",
            "id": step_id,
            "title": step.title,
            "status": step.status.value,
        }
        if step.detail:
            chunk["details" if step.status != StepStatus.ERROR else "output"] = step.detail[:500]
        return chunk

    async def _write_step(self, step_id: str) -> None:
        # Coalesced with the text: one appendStream carries every change since the last one.
        if self.mode == "stream":
            self._dirty[step_id] = None
        self._schedule()

    async def _append(self, *, chunks: list[dict[str, Any]]) -> None:
        try:
            await self.client.chat_appendStream(
                channel=self.target.channel, ts=self.ts, chunks=chunks
            )
        except SlackApiError as exc:
            # The stream broke (expired, stopped elsewhere): what was streamed stays, the
            # rest continues in an ordinary message.
            log.warning(
                "stream append failed; continuing with a placeholder", extra={"error": _err(exc)}
            )
            self.mode = "placeholder"
            self._pending = "".join(c.get("text", "") for c in chunks) + self._pending
            await self._post_placeholder()
        self._last_write = time.monotonic()

    async def _flush_stream(self, *, keep_last: bool = False) -> list[dict[str, Any]]:
        """Send step changes and pending text (~3.5 KB a call), rolling over when a message is full.

        Near the end of a message's budget, the message ends at a paragraph break when one
        is in reach, so each reply in the thread reads as whole paragraphs. With `keep_last`,
        the final batch is returned instead of sent, so it can ride on chat.stopStream.
        """
        tasks = [self._task_chunk(step_id) for step_id in self._dirty]
        self._dirty.clear()
        while (self._pending or tasks) and self.mode == "stream":
            piece = ""
            if self._pending:
                room = MESSAGE_BYTES - len(self._sent.encode())
                if room < 200 or (self._full and self._sent):
                    await self._stop_stream(None)
                    await self._start_stream(chunks=[])
                    self._full = False
                    continue
                limit = min(room, STREAM_CHUNK_BYTES)
                window = self._pending.encode()[:limit].decode("utf-8", errors="ignore")
                at = window.rfind("\n\n")
                if room - limit < NEAR_FULL_BYTES and at > 0 and len(self._pending) > len(window):
                    piece, self._pending = window[: at + 2], self._pending[at + 2 :]
                    self._full = True
                else:
                    piece, self._pending = cut(self._pending, limit)
            chunks = tasks + ([{"type": "markdown_text", "text": piece}] if piece else [])
            tasks = []
            if keep_last and not self._pending:
                self._sent += piece
                return chunks
            await self._append(chunks=chunks)
            if self.mode == "stream":
                self._sent += piece
        return []

    async def _stop_stream(
        self, footer: str | None, chunks: list[dict[str, Any]] | None = None
    ) -> None:
        blocks = self._final_blocks(footer) or None
        await self.client.chat_stopStream(
            channel=self.target.channel, ts=self.ts, blocks=blocks, chunks=chunks or None
        )

    async def _finish_stream(self, footer: str | None) -> None:
        last = await self._flush_stream(keep_last=True)
        if self.mode != "stream":  # the stream broke while flushing
            await self._finish_placeholder(footer)
            return
        try:
            await self._stop_stream(footer, last)
        except SlackApiError as exc:
            log.warning("could not stop the stream", extra={"error": _err(exc)})
            text = "".join(c.get("text", "") for c in last if c.get("type") == "markdown_text")
            if text:  # nothing is lost: the last words go out as an ordinary message
                self._sent = self._sent[: len(self._sent) - len(text)]
                self._pending = text
                await self._post_placeholder()
                await self._finish_placeholder(footer)

    def _final_blocks(self, footer: str | None) -> list[dict[str, Any]]:
        blocks = [_footer_block(footer)] if footer else []
        if footer and self.feedback_for:
            blocks.append(feedback_block(self.feedback_for))
        return blocks

    # -- placeholder -------------------------------------------------------------------

    async def _post_placeholder(self) -> None:
        t = self.target
        text = self._render_placeholder() or "_Working on it…_"
        response = await self.client.chat_postMessage(
            channel=t.channel,
            thread_ts=t.thread_ts,
            text=fallback_text(text),
            blocks=markdown_blocks(text),
        )
        self.mode, self.ts, self._sent = "placeholder", response["ts"], ""
        self.posted.append(response["ts"])
        self._last_write = time.monotonic()

    def _render_placeholder(self, *, final: bool = False) -> str:
        body = self._sent + self._pending
        if final:
            return body
        steps = "\n".join(
            f"{_ICONS[s.status]} {s.title}"
            + (f" — {s.detail}" if s.detail and s.status == StepStatus.ERROR else "")
            for s in self._steps.values()
        )
        return f"{steps}\n\n{body}".strip() if body else steps

    async def _edit(self, text: str, footer: str | None = None) -> None:
        blocks = markdown_blocks(text) + self._final_blocks(footer)
        await self.client.chat_update(
            channel=self.target.channel, ts=self.ts, text=fallback_text(text), blocks=blocks
        )
        self._last_write = time.monotonic()

    async def _roll_over(self) -> None:
        """Move text beyond one message's budget into further replies in the thread."""
        while len((self._sent + self._pending).encode()) > MESSAGE_BYTES - 500:
            head, rest = cut(self._sent + self._pending, MESSAGE_BYTES - 500)
            self._sent, self._pending = head, ""
            await self._wait_edit_slot()
            await self._edit(head)
            self._pending = rest
            await self._post_placeholder()

    async def _finish_placeholder(self, footer: str | None) -> None:
        await self._roll_over()
        self._sent, self._pending = self._sent + self._pending, ""
        await self._wait_edit_slot()
        await self._edit(self._render_placeholder(final=True), footer)

    async def _wait_edit_slot(self) -> None:
        wait = self._last_write + self.edit_interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    # -- coalescing --------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        interval = self.stream_interval if self.mode == "stream" else self.edit_interval
        wait = self._last_write + interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            async with self._lock:
                if self.mode == "stream":
                    await self._flush_stream()
                else:
                    await self._roll_over()
                    await self._edit(self._render_placeholder())
        except SlackApiError as exc:  # an intermediate update failing is not fatal
            log.warning("progress update failed", extra={"error": _err(exc)})


FEEDBACK = "sophia_feedback"


def feedback_block(request_id: str) -> dict[str, Any]:
    """Slack's 👍/👎 feedback buttons for one answer; the value carries the request id."""
    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK,
                "positive_button": {"text": {"type": "plain_text", "text": "Good answer"}, "value": f"{request_id}:good"},
                "negative_button": {"text": {"type": "plain_text", "text": "Bad answer"}, "value": f"{request_id}:bad"},
            }
        ],
    }  # fmt: skip


def _footer_block(footer: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]}


def _err(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown")) if exc.response is not None else str(exc)


def footer_for(reply: Reply) -> str:
    """The small context line under an answer: route, model, tokens, cost, time."""
    parts = []
    if reply.route:
        reason = f" ({reply.route_reason})" if reply.route_reason else ""
        parts.append(f"{reply.route}{reason}")
    if reply.model:
        parts.append(f"`{reply.model.split('/')[-1]}`")
    tokens = reply.usage.prompt_tokens + reply.usage.completion_tokens
    if tokens:
        parts.append(f"{tokens:,} tokens")
    if reply.usage.cost_usd:
        parts.append(f"${reply.usage.cost_usd:.4f}")
    parts.append(f"{reply.elapsed_s:.1f}s")
    parts.extend(reply.notes)
    return " · ".join(parts)
