"""The orchestration core: one request in, progress reported, one reply out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bot.core.errors import ModelError
from bot.core.history import as_message, fit_history
from bot.core.ports import ModelClient, ModelDone, RequestLog, TextDelta
from bot.core.prompts import system_prompt
from bot.core.types import Progress, Reply, Request, RequestRecord, StepStatus
from bot.redact import redact

log = logging.getLogger("sophia.core")

DEFAULT_ROUTE = "reasoning"


@dataclass(frozen=True)
class CoreConfig:
    """The few settings the core needs, so it does not depend on the settings class."""

    history_tokens: int = 12_000
    log_content: bool = False  # keep message text in the request log and logs


class Orchestrator:
    """Answers requests with a routed model, reporting each step to a `Progress`."""

    def __init__(
        self, *, models: ModelClient, requests: RequestLog, config: CoreConfig | None = None
    ) -> None:
        self._models = models
        self._requests = requests
        self._config = config or CoreConfig()

    async def handle(self, request: Request, progress: Progress) -> Reply:
        """Answer one request; failures become a plain-language `Reply.error`, never a raise."""
        started = time.perf_counter()
        route = request.route or DEFAULT_ROUTE
        reply = Reply(request_id=request.id, text="", route=route)
        reply.model = self._models.model_for(route)
        await progress.step("answer", "Thinking", StepStatus.IN_PROGRESS, detail=route)

        history, dropped = fit_history(request.history, self._config.history_tokens)
        if dropped:
            reply.notes.append(f"{dropped} older messages left out")
        messages = [
            {
                "role": "system",
                "content": system_prompt(private=request.private, source=request.source),
            },
            *(as_message(turn) for turn in history),
            {"role": "user", "content": request.text},
        ]
        for message in messages:  # a pasted token never reaches a model provider
            message["content"] = redact(message["content"])
        parts: list[str] = []
        try:
            async for event in self._models.stream(route=route, messages=messages):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    await progress.text(event.text)
                elif isinstance(event, ModelDone):
                    reply.model, reply.usage = event.model, event.usage
        except ModelError as exc:
            log.warning(
                "model call failed",
                exc_info=exc,
                extra={"request_id": request.id, "route": route, "error_kind": type(exc).__name__},
            )
            reply.error = f"{exc} Please try again in a moment. (ref `{request.id}`)"
            if parts:
                reply.notes.append("answer interrupted")
            await progress.step("answer", "Thinking", StepStatus.ERROR, detail=str(exc))
        else:
            await progress.step("answer", "Thinking", StepStatus.COMPLETE, detail=route)
        reply.text = "".join(parts)
        reply.elapsed_s = time.perf_counter() - started
        await self._record(request, reply)
        return reply

    async def _record(self, request: Request, reply: Reply) -> None:
        record = RequestRecord(
            id=request.id,
            at=time.time(),
            user_id=request.user,
            channel=request.channel,
            thread_ts=request.thread_ts,
            source=request.source,
            route=reply.route,
            model=reply.model,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            cost_usd=reply.usage.cost_usd,
            latency_ms=round(reply.elapsed_s * 1000, 1),
            status="ok" if reply.ok else "error",
            error=reply.error,
            text=request.text if self._config.log_content else None,
        )
        try:
            await self._requests.log_request(record)
        except Exception:  # the log must never cost the user their answer
            log.exception("could not write the request log", extra={"request_id": request.id})
        log.info(
            "request answered",
            extra={
                "request_id": request.id,
                "user": request.user,
                "channel": request.channel,
                "route": reply.route,
                "model": reply.model,
                "tokens": reply.usage.prompt_tokens + reply.usage.completion_tokens,
                "latency_ms": record.latency_ms,
                "status": record.status,
                **({"text": request.text} if self._config.log_content else {}),
            },
        )
