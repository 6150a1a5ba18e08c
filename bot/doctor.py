"""`sophia doctor`: check the configuration and every configured system, live."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SophiaError
from bot.registry import CheckResult, DoctorCheck, Registry
from bot.settings import Settings

# The bot scopes manifest.yml asks for; a test keeps the two in step.
BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "usergroups:read",
    "users:read",
)


def _secret(value: object) -> str:
    return value.get_secret_value() if value is not None else ""  # type: ignore[attr-defined]


async def check_slack_bot(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """auth.test with the bot token, and the granted scopes against the manifest's."""
    client = AsyncWebClient(
        token=_secret(settings.slack_bot_token), base_url=settings.slack_api_url, session=session
    )
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        return CheckResult(
            False, f"auth.test: {exc.response.get('error')}", "check SLACK_BOT_TOKEN"
        )
    granted = set(filter(None, (response.headers.get("x-oauth-scopes") or "").split(",")))
    missing = [s for s in BOT_SCOPES if granted and s not in granted]
    if missing:
        return CheckResult(
            False,
            f"connected as {response.get('user')} but missing scopes: {', '.join(missing)}",
            "add the scopes from manifest.yml and reinstall the app",
        )
    return CheckResult(True, f"bot {response.get('user')} in {response.get('team')}")


async def check_slack_socket(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """apps.connections.open with the app-level token (needs connections:write)."""
    client = AsyncWebClient(
        token=_secret(settings.slack_app_token), base_url=settings.slack_api_url, session=session
    )
    try:
        await client.apps_connections_open(app_token=_secret(settings.slack_app_token))
    except SlackApiError as exc:
        return CheckResult(
            False,
            f"apps.connections.open: {exc.response.get('error')}",
            "check SLACK_APP_TOKEN (an xapp- token with connections:write) and that Socket Mode is on",
        )
    return CheckResult(True, "Socket Mode connection can be opened")


async def check_model(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """A one-token call to the reasoning route."""
    from integrations.llm import LiteLLMModels

    models = LiteLLMModels(settings)
    messages = [{"role": "user", "content": "Reply with OK."}]
    try:
        async for _ in models.stream(route="reasoning", messages=messages, max_tokens=1):
            pass
    except SophiaError as exc:
        fix = "set SOPHIA_LLM_API_BASE or OPENROUTER_API_KEY" if "key" in str(exc).lower() else ""
        return CheckResult(False, str(exc), fix or "check SOPHIA_LLM_API_BASE / OPENROUTER_API_KEY")
    return CheckResult(True, f"reasoning → {models.model_for('reasoning')}")


def register_core_checks(registry: Registry) -> None:
    """Slack (both tokens) and the model server."""
    registry.add_check(
        DoctorCheck(
            "Slack bot token",
            lambda s: s.slack_bot_token is not None,
            check_slack_bot,
            missing="SLACK_BOT_TOKEN",
        )
    )
    registry.add_check(
        DoctorCheck(
            "Slack Socket Mode",
            lambda s: s.slack_app_token is not None,
            check_slack_socket,
            missing="SLACK_APP_TOKEN",
        )
    )
    registry.add_check(
        DoctorCheck(
            "Models",
            lambda s: bool(s.llm_api_base or s.openrouter_api_key),
            check_model,
            missing="OPENROUTER_API_KEY or SOPHIA_LLM_API_BASE",
        )
    )


async def run_checks(
    settings: Settings, registry: Registry
) -> list[tuple[DoctorCheck, bool, CheckResult | None]]:
    """Run every configured check; (check, configured?, result or None when not configured)."""
    results = []
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for check in registry.checks:
            if not check.configured(settings):
                results.append((check, False, None))
                continue
            try:
                result = await check.run(settings, session)
            except Exception as exc:  # a check must report, never crash doctor
                result = CheckResult(False, f"{type(exc).__name__}: {exc}", "see the message")
            results.append((check, True, result))
    return results
