"""The checks every listener makes after acking: first delivery only, and allowed here."""

from __future__ import annotations

import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.channel import ChannelSettings
from bot.core.types import Request
from handlers.deps import Deps

log = logging.getLogger("sophia.handlers")
SETTINGS_CACHE_S = 10.0


async def allowed(
    deps: Deps,
    client: AsyncWebClient,
    user: str | None,
    channel: str | None,
    thread_ts: str | None = None,
) -> bool:
    """Whether this person may use Sophia here; a refusal is said once, privately."""
    if deps.access is None or user is None:
        return True
    reason = await deps.access.refusal(user, channel)
    if reason is None:
        return True
    deps.metrics.inc("sophia_refusals_total")
    if channel and deps.access.first_refusal(user, channel):
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, text=reason, thread_ts=thread_ts
            )
        except Exception:
            log.info("could not tell a refused user why")
    return False


async def first_time(deps: Deps, key: str | None) -> bool:
    """Claim an event in the database; False when it was already handled (redelivery)."""
    deps.metrics.inc("sophia_events_total")
    # No "shutting down" shortcut here: an event that reached us was acked, so Slack will not
    # send it elsewhere; dropping it now would lose it. Shutdown closes the socket first, then
    # lets what arrived finish.
    if not key:
        return True
    if await deps.store.claim_event(key):
        return True
    deps.metrics.inc("sophia_events_duplicate_total")
    log.info("duplicate event ignored", extra={"event_id": key})
    return False


async def channel_settings(deps: Deps, channel: str | None) -> ChannelSettings:
    """A channel's `/sophia config` settings, cached for a few seconds (DMs have none)."""
    if not channel or channel.startswith("D"):
        return ChannelSettings()
    cached = deps.channel_cache.get(channel)
    if cached and time.monotonic() - cached[0] < SETTINGS_CACHE_S:
        return cached[1]
    settings = await deps.store.channel_settings(channel)
    deps.channel_cache[channel] = (time.monotonic(), settings)
    return settings


def apply_settings(request: Request, settings: ChannelSettings) -> Request:
    """Give a request its channel's instructions, default route and disabled tool groups."""
    request.instructions = settings.prompt_addition
    request.default_route = settings.default_route
    request.disabled_groups = settings.disabled_groups
    return request
