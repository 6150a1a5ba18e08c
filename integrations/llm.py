"""Chat models through litellm's Router: one model group per route, with fallbacks.

The Router does what it is good at — fallbacks between routes, a longer-window route on a
context-length error, timeouts and cooldowns of a failing provider — and this module turns
its streams into the core's events and its exception zoo into the few cases a user can act on.

litellm is imported on first use (it takes seconds, and `sophia --help` should be instant)
and told to use its bundled price map instead of downloading one at import time.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from bot.core.errors import (
    ContextTooLong,
    ModelAuthError,
    ModelError,
    ModelUnavailable,
    StreamInterrupted,
)
from bot.core.ports import ModelDone, ModelEvent, TextDelta, ToolCall
from bot.core.routing import ROUTES
from bot.core.types import Usage
from bot.settings import Settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
log = logging.getLogger("sophia.llm")

# Where each route goes when its provider fails (then `fallback`, always last).
FALLBACKS = {
    "reasoning": ["analysis", "fallback"],
    "coding": ["reasoning", "fallback"],
    "speed": ["fallback"],
    "analysis": ["reasoning", "fallback"],
    "fallback": [],
}


def _litellm() -> Any:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


# Modules litellm imports lazily on its first call (measured: ~0.4 s, with the event loop
# blocked); loading them during warm-up keeps that pause off the first question.
_FIRST_CALL_MODULES = (
    "litellm.proxy._types",
    "litellm.router_utils.client_initalization_utils",
    "anyio._backends._asyncio",
    "tiktoken_ext.openai_public",
)


def warm_up() -> None:
    """Import litellm and what its first call needs (takes seconds; call it from a thread)."""
    _litellm()
    for name in _FIRST_CALL_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # a future litellm may have moved it; warm-up is best effort
            log.debug("warm-up could not import %s", name)


class LiteLLMModels:
    """`ModelClient` over litellm's Router, honouring SOPHIA_LLM_API_BASE and per-route models."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._router: Any = None

    # -- configuration -----------------------------------------------------------------

    def model_for(self, route: str) -> str:
        """The litellm model string for a route, rewritten for a local server if one is set."""
        model = getattr(self._settings.models, route, None) or self._settings.models.reasoning
        if self._settings.llm_api_base and not model.startswith("openai/"):
            # An OpenAI-compatible server takes the model name without litellm's provider
            # prefix: `openrouter/anthropic/x` is asked for as `anthropic/x`.
            model = "openai/" + model.removeprefix("openrouter/")
        return model

    def _credentials(self, model: str) -> dict[str, Any] | None:
        s = self._settings
        if s.llm_api_base:
            key = s.llm_api_key.get_secret_value() if s.llm_api_key else "not-needed"
            return {"api_base": s.llm_api_base, "api_key": key}
        if model.startswith("openrouter/"):
            if s.openrouter_api_key is None:
                return None
            return {"api_key": s.openrouter_api_key.get_secret_value()}
        return {}  # other providers: litellm reads their own env vars (ANTHROPIC_API_KEY, …)

    def has_credentials(self, route: str) -> bool:
        """Whether the route's model has the key it needs."""
        return self._credentials(self.model_for(route)) is not None

    def key_variable(self, route: str) -> str:
        """The setting that holds the route's key, for messages."""
        if self._settings.llm_api_base:
            return "SOPHIA_LLM_API_KEY"
        model = self.model_for(route)
        if model.startswith("openrouter/"):
            return "OPENROUTER_API_KEY"
        return f"the API key variable of {model.split('/')[0]}"

    def timeout_for(self, route: str) -> float:
        """Per-route timeout: the speed route is meant to be quick."""
        base = self._settings.llm_timeout
        return min(base, 20.0) if route == "speed" else base

    def context_window(self, route: str) -> int | None:
        """The route's model's input window, from litellm's price map (None when unknown)."""
        for model in (self.model_for(route), getattr(self._settings.models, route, "")):
            try:
                info = _litellm().get_model_info(model)
            except Exception:
                continue
            if info.get("max_input_tokens"):
                return int(info["max_input_tokens"])
        return None

    def _build_router(self) -> Any:
        litellm = _litellm()
        model_list = []
        for route in ROUTES:
            credentials = self._credentials(self.model_for(route))
            if credentials is None:
                continue
            params = {
                "model": self.model_for(route),
                "timeout": self.timeout_for(route),
                **credentials,
            }
            model_list.append({"model_name": route, "litellm_params": params})
        present = {d["model_name"] for d in model_list}
        fallbacks = [
            {route: [r for r in chain if r in present]}
            for route, chain in FALLBACKS.items()
            if route in present and any(r in present for r in chain)
        ]
        windows = {route: self.context_window(route) for route in present}
        longer = []
        for route in present:
            # Known larger windows first, smallest first; then routes whose window is unknown
            # (a local server's model), which may well be larger.
            mine = windows[route] or 0
            known = sorted(
                (r for r in present if r != route and (windows[r] or 0) > mine),
                key=lambda r: windows[r] or 0,
            )
            unknown = [r for r in ROUTES if r in present and r != route and windows[r] is None]
            if known or unknown:
                longer.append({route: known + [r for r in unknown if r not in known]})
        return litellm.Router(
            model_list=model_list,
            fallbacks=fallbacks,
            context_window_fallbacks=longer,
            num_retries=0,  # a 429 or 5xx moves on to the next route at once
            allowed_fails=2,
            cooldown_time=30,
        )

    def warm_up(self) -> None:
        """Import litellm and build the Router now rather than on the first question."""
        warm_up()
        _ = self.router

    @property
    def router(self) -> Any:
        """The litellm Router, built on first use."""
        if self._router is None:
            self._router = self._build_router()
        return self._router

    # -- calls ------------------------------------------------------------------------

    async def stream(
        self,
        *,
        route: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[ModelEvent]:
        """Stream one turn: text deltas, then a `ModelDone` with usage and tool calls."""
        litellm = _litellm()
        if not self.has_credentials(route):
            raise ModelAuthError(
                "No model access is configured: set OPENROUTER_API_KEY, or point "
                "SOPHIA_LLM_API_BASE at an OpenAI-compatible server."
            )
        kwargs: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
        if tools:
            kwargs["tools"] = tools
            if tool_choice:
                kwargs["tool_choice"] = tool_choice
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        if timeout:
            kwargs["timeout"] = timeout
        chunks: list[Any] = []
        delivered = False
        try:
            response = await self.router.acompletion(model=route, messages=messages, **kwargs)
            async for chunk in response:
                chunks.append(chunk)
                if chunk.choices:
                    text = getattr(chunk.choices[0].delta, "content", None)
                    if text:
                        delivered = True
                        yield TextDelta(text)
        except Exception as exc:
            raise self._translate(exc, route, delivered) from exc
        yield self._done(litellm, response, chunks, messages, route)

    def _done(
        self, litellm: Any, response: Any, chunks: list[Any], messages: list, route: str
    ) -> ModelDone:
        headers = (getattr(response, "_hidden_params", None) or {}).get("additional_headers") or {}
        answered = headers.get("x-litellm-model-group") or route
        model = self.model_for(answered)
        usage, finish, calls = Usage(), None, ()
        try:
            built = litellm.stream_chunk_builder(chunks, messages=messages)
        except Exception:
            built = None
        if built is not None:
            choice = built.choices[0]
            finish = choice.finish_reason
            calls = tuple(
                ToolCall(c.id, c.function.name, c.function.arguments or "{}")
                for c in (choice.message.tool_calls or [])
            )
            if built.usage:
                usage.prompt_tokens = built.usage.prompt_tokens or 0
                usage.completion_tokens = built.usage.completion_tokens or 0
            try:
                # The model is passed explicitly: the price map knows `openai/gpt-4o-mini`, not
                # the bare name a local server echoes back.
                usage.cost_usd = float(
                    litellm.completion_cost(completion_response=built, model=model)
                )
            except Exception:
                usage.cost_usd = 0.0  # unknown models (local servers) cost nothing we can price
        return ModelDone(
            model=model,
            usage=usage,
            finish_reason=finish,
            route=answered,
            tool_calls=calls,
            fallbacks=int(headers.get("x-litellm-attempted-fallbacks") or 0),
        )

    def _translate(self, exc: Exception, route: str, delivered: bool) -> ModelError:
        """Turn litellm's exceptions into the few cases a user can act on."""
        litellm = _litellm()
        if isinstance(exc, ModelError):
            return exc
        log.warning("model call failed", extra={"route": route, "error_kind": type(exc).__name__})
        if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
            return ModelAuthError(
                f"The model provider rejected the API key; check {self.key_variable(route)}."
            )
        if isinstance(exc, litellm.ContextWindowExceededError):
            return ContextTooLong(
                "This conversation is too long for every configured model's window."
            )
        if delivered:
            return StreamInterrupted("The model's answer was cut off.")
        if isinstance(exc, litellm.Timeout):
            return ModelUnavailable("The model took too long to answer.")
        if isinstance(exc, litellm.RateLimitError):
            return ModelUnavailable("The model providers are rate-limiting us right now.")
        if isinstance(exc, litellm.APIConnectionError):
            return ModelUnavailable("The model server could not be reached.")
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and status >= 500:
            return ModelUnavailable("The model server had an internal error.")
        return ModelUnavailable("The model call failed.")
