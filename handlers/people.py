"""Who may do what: lists of people and user groups, guests, allowed channels."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.i18n import language, t

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


class Directory:
    """People as Slack describes them (`users.info` with their locale), cached for a few minutes.

    One lookup serves the guest check and the language of Sophia's own words.
    """

    def __init__(self, client: AsyncWebClient, *, cache_s: float = 300.0) -> None:
        self._client = client
        self._cache_s = cache_s
        self._users: dict[str, tuple[float, dict]] = {}

    async def user(self, user: str) -> dict:
        """The `users.info` user object; empty when Slack cannot say."""
        cached = self._users.get(user)
        if cached and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        try:
            info = (await self._client.users_info(user=user, include_locale=True)).get("user")
        except SlackApiError as exc:
            log.warning("could not look up a user", extra={"error": exc.response.get("error")})
            return {}  # not cached: ask again next time
        self._users[user] = (time.monotonic(), info or {})
        return info or {}

    async def is_guest(self, user: str) -> bool:
        """A single- or multi-channel guest; a member when Slack cannot say (no lock-out on a hiccup)."""
        info = await self.user(user)
        return bool(info.get("is_restricted") or info.get("is_ultra_restricted"))

    async def language(self, user: str | None) -> str:
        """The catalogue language for this person's Slack locale (English by default)."""
        if not user:
            return "en"
        return language((await self.user(user)).get("locale"))


class Access:
    """`SOPHIA_ALLOWED_USERS` / `SOPHIA_ALLOWED_CHANNELS`; empty lists mean everyone but guests."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        users: list[str],
        channels: list[str],
        directory: Directory | None = None,
    ) -> None:
        self._users = PeopleList(client, users)
        self._channels = set(channels)
        self.directory = directory or Directory(client)
        self._told: set[str] = set()

    async def refusal(self, user: str, channel: str | None) -> str | None:
        """Why this person may not use Sophia here (in their language), or None when they may."""
        if (
            self._channels
            and channel
            and not channel.startswith("D")
            and channel not in self._channels
        ):
            return t("access.channel", await self.directory.language(user))
        if self._users.configured:
            if not await self._users(user):
                return t("access.user", await self.directory.language(user))
            return None
        if await self.directory.is_guest(user):
            return t("access.guest", await self.directory.language(user))
        return None

    def first_refusal(self, user: str, channel: str | None) -> bool:
        """True once per person and place: a refusal is said once, not on every message."""
        key = f"{user}:{channel}"
        if key in self._told:
            return False
        self._told.add(key)
        return True
