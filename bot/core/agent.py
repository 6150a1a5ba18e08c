"""The tool-using agent loop: model → tool calls (in parallel) → results → model, bounded."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import StreamInterrupted
from bot.core.ports import ApprovalGate, ModelClient, ModelDone, Observer, TextDelta, ToolCall
from bot.core.tools import ToolContext, ToolRegistry, ToolResult, untrusted
from bot.core.types import Progress, StepStatus, Usage

log = logging.getLogger("sophia.agent")

STEP_LIMIT_NOTE = (
    "You have used every tool step allowed for this answer. Do not call tools again; answer "
    "now with what you have, and say what is left undone."
)
NO_APPROVALS = (
    "This action changes the outside world and needs a human approver, but approvals are not "
    "available in this version of Sophia. Nothing was done. Tell the user plainly."
)


@dataclass
class AgentOutcome:
    """What the loop produced, across every model turn."""

    text: str = ""
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    route: str | None = None  # the route that gave the final answer
    fallbacks: list[str] = field(default_factory=list)  # "reasoning → coding"
    tool_steps: int = 0
    stopped_at_limit: bool = False
    interrupted: bool = False


class Agent:
    """Runs one answer through the model, calling tools as the model asks."""

    def __init__(
        self,
        *,
        models: ModelClient,
        tools: ToolRegistry,
        approvals: ApprovalGate | None = None,
        max_steps: int = 8,
        observer: Observer | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self._observer = observer
        self._max_tokens = max_tokens
        self._models = models
        self._tools = tools
        self._approvals = approvals
        self._max_steps = max_steps

    async def run(
        self,
        *,
        route: str,
        messages: list[dict[str, Any]],
        ctx: ToolContext,
        progress: Progress,
        tools: ToolRegistry | None = None,
        allow_side_effects: bool = True,
        disabled_groups: frozenset[str] = frozenset(),
    ) -> AgentOutcome:
        """Answer `messages`; the last turn's text streams to `progress` as it comes."""
        registry = tools or self._tools
        groups = {registry.get(name).group for name in registry.names()} - disabled_groups
        specs = registry.specs(include_side_effects=allow_side_effects, groups=groups)
        outcome = AgentOutcome()
        while True:
            at_limit = outcome.tool_steps >= self._max_steps
            if at_limit and specs:
                messages = [*messages, {"role": "system", "content": STEP_LIMIT_NOTE}]
                outcome.stopped_at_limit = True
            choice = "none" if at_limit else None
            text, done = await self._turn(route, messages, specs, choice, progress, outcome)
            if not done.tool_calls or at_limit:
                return outcome
            outcome.tool_steps += 1
            messages = [*messages, _tool_call_message(text, done.tool_calls)]
            results = await asyncio.gather(
                *(self._call(registry, call, ctx, progress, outcome.tool_steps, i, allow_side_effects)
                  for i, call in enumerate(done.tool_calls))
            )  # fmt: skip
            if allow_side_effects and any(
                _reads_outside(registry, c.name) for c in done.tool_calls
            ):
                # Outside text is now in the conversation: nothing it says may change the world.
                allow_side_effects = False
                specs = registry.specs(include_side_effects=False, groups=groups)
            for call, result in zip(done.tool_calls, results, strict=True):
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": untrusted(call.name, result.content),
                    }
                )

    async def _turn(
        self,
        route: str,
        messages: list,
        specs: list,
        choice: str | None,
        progress: Progress,
        outcome: AgentOutcome,
    ) -> tuple[str, ModelDone]:
        parts: list[str] = []
        try:
            done = await self._stream(route, messages, specs, choice, progress, parts)
        except StreamInterrupted:
            if route == "fallback":
                raise
            # The partial text stays where the user saw it, marked; the fallback answers anew.
            outcome.interrupted = True
            await progress.text("\n\n_(interrupted; the fallback model answers below)_\n\n")
            outcome.fallbacks.append(f"{route} → fallback (stream broke)")
            parts.clear()
            done = await self._stream("fallback", messages, specs, choice, progress, parts)
        text = "".join(parts)
        outcome.text += text
        outcome.usage.prompt_tokens += done.usage.prompt_tokens
        outcome.usage.completion_tokens += done.usage.completion_tokens
        outcome.usage.cost_usd += done.usage.cost_usd
        outcome.model, outcome.route = done.model, done.route or route
        if done.route and done.route != route:
            outcome.fallbacks.append(f"{route} → {done.route}")
        return text, done

    async def _stream(
        self, route: str, messages: list, specs: list, choice: str | None, progress: Progress,
        parts: list[str],
    ) -> ModelDone:  # fmt: skip
        done: ModelDone | None = None
        stream = self._models.stream(
            route=route,
            messages=messages,
            tools=specs or None,
            tool_choice=choice if specs else None,
            max_tokens=self._max_tokens,
        )
        async for event in stream:
            if isinstance(event, TextDelta):
                parts.append(event.text)
                await progress.text(event.text)
            elif isinstance(event, ModelDone):
                done = event
        if done is None:  # a well-behaved client always ends with ModelDone
            raise StreamInterrupted("The model's answer ended without finishing.")
        return done

    async def _call(
        self, registry: ToolRegistry, call: ToolCall, ctx: ToolContext, progress: Progress,
        step: int, index: int, allow_side_effects: bool,
    ) -> ToolResult:  # fmt: skip
        step_id = f"tool-{step}-{index}"
        await progress.step(step_id, f"Using {call.name}", StepStatus.IN_PROGRESS)
        result = await registry.call(call.name, call.arguments, ctx)
        if self._observer is not None:
            outcome = (
                "approval_requested" if result.needs_approval else "ok" if result.ok else "error"
            )
            self._observer.tool_called(call.name, outcome)
        if result.needs_approval:  # valid arguments for a side-effect tool: a human decides
            content = await self._request_approval(call, ctx, allow_side_effects)
            await progress.step(step_id, f"{call.name}: needs approval", StepStatus.COMPLETE)
            return ToolResult(ok=False, content=content, needs_approval=True)
        status = StepStatus.COMPLETE if result.ok else StepStatus.ERROR
        detail = None if result.ok else result.content[:200]
        await progress.step(step_id, f"Used {call.name}", status, detail=detail)
        log.info(
            "tool called",
            extra={"request_id": ctx.request_id, "tool": call.name, "ok": result.ok},
        )
        return result

    async def _request_approval(self, call: ToolCall, ctx: ToolContext, allowed: bool) -> str:
        if not allowed:
            return "That tool is not available here. Nothing was done."
        if self._approvals is None:
            return NO_APPROVALS
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return "The arguments were not valid JSON; nothing was requested."
        return await self._approvals.request(
            tool=call.name, arguments=arguments, user=ctx.user, channel=ctx.channel,
            thread_ts=ctx.thread_ts,
        )  # fmt: skip


def _reads_outside(registry: ToolRegistry, name: str) -> bool:
    found = registry.get(name)
    return bool(found and found.reads_outside)


def _tool_call_message(text: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    """The assistant message that records a turn's tool calls in the conversation."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ],
    }
