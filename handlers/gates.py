"""The checks every listener makes after acking: first delivery only, and allowed here."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from handlers.deps import Deps

log = logging.getLogger("sophia.handlers")


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
