"""Chat models through litellm: one route → one model string, streamed.

litellm is imported on first use: it takes over a second to import, and `sophia --help`
should be instant. It is also told to use its bundled price map, because by default it
downloads one from the internet at import time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from bot.core.errors import ContextTooLong, ModelAuthError, ModelError, ModelUnavailable
from bot.core.ports import ModelDone, ModelEvent, TextDelta
from bot.core.types import Usage
from bot.settings import Settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _litellm() -> Any:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def warm_up() -> None:
    """Import litellm ahead of the first request (takes seconds; call it from a thread)."""
    _litellm()


class LiteLLMModels:
    """`ModelClient` over litellm, honouring SOPHIA_LLM_API_BASE and per-route models."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def model_for(self, route: str) -> str:
        """The litellm model string for a route, rewritten for a local server if one is set."""
        model = getattr(self._settings.models, route, None) or self._settings.models.reasoning
        if self._settings.llm_api_base and not model.startswith("openai/"):
            # An OpenAI-compatible server takes the model name without litellm's provider
            # prefix: `openrouter/anthropic/x` is asked for as `anthropic/x`.
            model = "openai/" + model.removeprefix("openrouter/")
        return model

    def _credentials(self, model: str) -> dict[str, Any]:
        s = self._settings
        if s.llm_api_base:
            key = s.llm_api_key.get_secret_value() if s.llm_api_key else "not-needed"
            return {"api_base": s.llm_api_base, "api_key": key}
        if model.startswith("openrouter/"):
            if s.openrouter_api_key is None:
                raise ModelAuthError(
                    "No model access is configured: set OPENROUTER_API_KEY, or point "
                    "SOPHIA_LLM_API_BASE at an OpenAI-compatible server."
                )
            return {"api_key": s.openrouter_api_key.get_secret_value()}
        return {}  # other providers: litellm reads their own env vars (ANTHROPIC_API_KEY, …)

    def _key_variable(self, model: str) -> str:
        if self._settings.llm_api_base:
            return "SOPHIA_LLM_API_KEY"
        if model.startswith("openrouter/"):
            return "OPENROUTER_API_KEY"
        return f"the API key variable for {model.split('/')[0]}"

    async def stream(
        self, *, route: str, messages: list[dict[str, Any]], max_tokens: int | None = None
    ) -> AsyncIterator[ModelEvent]:
        """Stream the answer of `route`'s model as text deltas, then a `ModelDone`."""
        litellm = _litellm()
        model = self.model_for(route)
        kwargs = self._credentials(model)
        usage = Usage()
        finish: str | None = None
        try:
            response = await litellm.acompletion(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                timeout=self._settings.llm_timeout,
                max_tokens=max_tokens,
                num_retries=0,
                **kwargs,
            )
            async for chunk in response:
                if chunk.choices:
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    text = getattr(choice.delta, "content", None)
                    if text:
                        yield TextDelta(text)
                chunk_usage = getattr(chunk, "usage", None)
                if chunk_usage:
                    usage.prompt_tokens = chunk_usage.prompt_tokens or 0
                    usage.completion_tokens = chunk_usage.completion_tokens or 0
        except Exception as exc:
            raise self._translate(exc, model) from exc
        usage.cost_usd = _cost(litellm, model, usage)
        yield ModelDone(model=model, usage=usage, finish_reason=finish)

    def _translate(self, exc: Exception, model: str) -> ModelError:
        """Turn litellm's exception zoo into the few cases a user can act on."""
        litellm = _litellm()
        if isinstance(exc, ModelError):
            return exc
        if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
            return ModelAuthError(
                f"The model provider rejected the API key; check {self._key_variable(model)}."
            )
        if isinstance(exc, litellm.ContextWindowExceededError):
            return ContextTooLong("This conversation is too long for the model's context window.")
        if isinstance(exc, litellm.Timeout):
            return ModelUnavailable("The model took too long to answer.")
        if isinstance(exc, litellm.RateLimitError):
            return ModelUnavailable("The model provider is rate-limiting us right now.")
        if isinstance(exc, litellm.APIConnectionError):
            return ModelUnavailable("The model server could not be reached.")
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and status >= 500:
            return ModelUnavailable("The model server had an internal error.")
        return ModelUnavailable("The model call failed.")


def _cost(litellm: Any, model: str, usage: Usage) -> float:
    """Price from litellm's bundled map; unknown models (local servers) cost 0."""
    try:
        prompt, completion = litellm.cost_per_token(
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
    except Exception:
        return 0.0
    return float(prompt + completion)
