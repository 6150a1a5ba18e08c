"""Who may do what: lists of people and user groups, guests, allowed channels."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("sophia.people")


class PeopleList:
    """A list of Slack user IDs and user-group IDs (`SOPHIA_APPROVERS`, …), checked against Slack.

    Groups are resolved with `usergroups.users.list` and cached briefly; when Slack cannot be
    asked, nobody from that group is in the list (fail closed).
    """

    def __init__(self, client: AsyncWebClient, ids: list[str], *, cache_s: float = 60.0) -> None:
        self._client = client
        self._users = {i for i in ids if not i.startswith("S")}
        self._groups = [i for i in ids if i.startswith("S")]
        self._cache_s = cache_s
        self._members: dict[str, tuple[float, set[str]]] = {}

    @property
    def configured(self) -> bool:
        return bool(self._users or self._groups)

    async def __call__(self, user: str) -> bool:
        if user in self._users:
            return True
        for group in self._groups:
            if user in await self._group_members(group):
                return True
        return False

    async def _group_members(self, group: str) -> set[str]:
        cached = self._members.get(group)
        if cached and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        try:
            response = await self._client.usergroups_users_list(usergroup=group)
            members = set(response.get("users") or [])
        except SlackApiError as exc:
            log.warning(
                "could not read a user group",
                extra={"group": group, "error": exc.response.get("error")},
            )
            members = set()  # fail closed: nobody from this group may approve
        self._members[group] = (time.monotonic(), members)
        return members


class Access:
    """`SOPHIA_ALLOWED_USERS` / `SOPHIA_ALLOWED_CHANNELS`; empty lists mean everyone but guests."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        users: list[str],
        channels: list[str],
        cache_s: float = 300.0,
    ) -> None:
        self._client = client
        self._users = PeopleList(client, users)
        self._channels = set(channels)
        self._cache_s = cache_s
        self._guests: dict[str, tuple[float, bool]] = {}
        self._told: set[str] = set()

    async def refusal(self, user: str, channel: str | None) -> str | None:
        """Why this person may not use Sophia here, or None when they may."""
        if (
            self._channels
            and channel
            and not channel.startswith("D")
            and channel not in self._channels
        ):
            return (
                "I'm not enabled in this channel. Ask an admin (SOPHIA_ALLOWED_CHANNELS), or DM me."
            )
        if self._users.configured:
            if not await self._users(user):
                return "You're not on the list of people who can use me (SOPHIA_ALLOWED_USERS); ask an admin."
            return None
        if await self._is_guest(user):
            return "Sorry, guests can't use me in this workspace."
        return None

    def first_refusal(self, user: str, channel: str | None) -> bool:
        """True once per person and place: a refusal is said once, not on every message."""
        key = f"{user}:{channel}"
        if key in self._told:
            return False
        self._told.add(key)
        return True

    async def _is_guest(self, user: str) -> bool:
        cached = self._guests.get(user)
        if cached and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        try:
            info = (await self._client.users_info(user=user)).get("user") or {}
            guest = bool(info.get("is_restricted") or info.get("is_ultra_restricted"))
        except SlackApiError as exc:
            log.warning("could not look up a user", extra={"error": exc.response.get("error")})
            guest = False  # Slack said nothing: do not lock out a member over a hiccup
        self._guests[user] = (time.monotonic(), guest)
        return guest
