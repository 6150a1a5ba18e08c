"""Workspace state behind the fake Slack in ``tests/fakes/slack.py``.

``SlackState`` holds messages (with threads, reactions and chat streams), users, user groups,
channels, views, files and assistant-thread state, and implements the Web API methods that only
touch that state. A method ``a.b.c`` is the ``m_a_b_c(args)`` method: it gets the request's
merged arguments and returns the response body without ``ok``; ``raise ApiError("code")``
becomes ``{"ok": false, "error": "code"}``. Everything runs on one event loop, so nothing locks.
"""

from __future__ import annotations

import base64
import calendar
import copy
import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_MARKDOWN = 12_000  # markdown_text limit of the chat.*Stream methods (per field / per chunk)
MAX_TEXT = 40_000  # chat.postMessage / chat.update text limit
MAX_BLOCKS = 50
TASK_STATUSES = {"pending", "in_progress", "complete", "error"}
CHUNK_TYPES = {"markdown_text", "task_update", "plan_update", "blocks"}
# Arguments the SDK sends JSON-encoded inside form fields or query strings.
JSON_ARGS = {"blocks", "attachments", "chunks", "metadata", "view", "files", "prompts", "unfurls"}
# Kept on stored messages for assertions; Slack itself would not return them.
PRIVATE_KEYS = {"streaming", "stream_mode", "stopped_by_user", "tasks", "plan_title", "chunks"}
PRIVATE_KEYS |= {"recipient_user_id", "recipient_team_id", "task_display_mode"}
VERIFICATION_TOKEN = "fake-verification-token"
STORED_EVENT_SUBTYPES = {None, "thread_broadcast", "file_share", "bot_message", "me_message"}
SEARCH_CHANNEL_KEYS = ("id", "is_channel", "is_group", "is_im", "is_mpim", "is_private")


@dataclass
class Call:
    """One Web API request as the fake received it."""

    method: str
    args: dict[str, Any]  # query + form + JSON body merged; JSON-encoded fields decoded
    token: str | None  # from "Authorization: Bearer" or the ``token`` argument
    headers: dict[str, str]
    time: float  # time.perf_counter() when the request arrived
    http_method: str = "POST"
    status: int | None = None  # HTTP status the fake answered with
    response: dict[str, Any] | None = None  # JSON body the fake answered with


class ApiError(Exception):
    def __init__(self, error: str, *, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.status, self.extra = error, status, extra


def missing(*names: str) -> ApiError:
    msgs = [f"[ERROR] missing required field: {n}" for n in names]
    return ApiError("invalid_arguments", response_metadata={"messages": msgs})


def ts_key(ts: str) -> Decimal:
    try:
        return Decimal(ts)
    except (InvalidOperation, TypeError):
        return Decimal(0)


def truthy(value: Any) -> bool:
    return value in (True, 1) or str(value).lower() in ("1", "true")


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _page(items: list[dict], args: dict, default_limit: int) -> dict:
    """Cursor pagination the way Slack does it (cursor = base64 "next_ts:<ts>")."""
    start = 0
    if args.get("cursor"):
        try:
            after = base64.b64decode(args["cursor"]).decode().removeprefix("next_ts:")
        except ValueError as exc:
            raise ApiError("invalid_cursor") from exc
        start = next((i for i, m in enumerate(items) if m["ts"] == after), len(items))
    limit = int(args.get("limit") or default_limit) or default_limit
    page, rest = items[start : start + limit], items[start + limit :]
    return {
        "messages": page,
        "has_more": bool(rest),
        "response_metadata": {"next_cursor": _cursor(rest[0]["ts"]) if rest else ""},
    }


class SlackState:
    def __init__(self, *, team_id: str, bot_user_id: str, bot_id: str, app_id: str) -> None:
        self.team_id, self.bot_user_id, self.bot_id, self.app_id = (
            team_id,
            bot_user_id,
            bot_id,
            app_id,
        )
        self.base_http = ""  # "http://127.0.0.1:PORT", set by the server once bound
        self.strict_stream_mode = False
        self._channels: dict[str, dict[str, dict]] = {}  # channel -> ts -> message
        self._channel_info: dict[str, dict] = {}
        self._users: dict[str, dict] = {}
        self._usergroups: dict[str, dict] = {}
        self._dms: dict[str, str] = {}  # "U1,U2" -> conversation id
        self._last_us = 0
        self._seq = 0
        self.ephemerals: list[dict] = []  # chat.postEphemeral, in order
        self.views: dict[str, dict] = {}  # view id -> view (modals and home tabs)
        self.home_views: dict[str, dict] = {}  # user id -> published home view
        self.files: dict[str, dict] = {}  # file id -> file object
        self.uploads: dict[str, bytes] = {}  # file id -> bytes POSTed to its upload_url
        self.assistant_threads: dict[tuple[str, str], dict] = {}  # (channel, thread_ts) -> state
        self._response_targets: dict[str, str] = {}  # envelope_id -> channel of its response_url
        self.search_user = "U0ADMIN"  # the user token's owner: search.messages sees as them

    # ------------------------------------------------------------------ helpers for tests
    def new_ts(self) -> str:
        us = max(int(time.time() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:08X}"

    def add_message(
        self,
        channel: str,
        *,
        user: str | None = None,
        text: str,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
        **extra: Any,
    ) -> str:
        """Put a message in ``channel`` (as if someone had posted it); returns its ts."""
        ts = ts or self.new_ts()
        self._last_us = max(self._last_us, int(ts_key(ts) * 1_000_000))
        msg: dict[str, Any] = {"type": "message", "ts": ts, "text": text, "team": self.team_id}
        if user or not bot_id:
            msg["user"] = user or "U0USER"
        for key, value in (("thread_ts", thread_ts), ("bot_id", bot_id), ("subtype", subtype)):
            if value is not None:
                msg[key] = value
        msg.update(extra)
        self._channels.setdefault(channel, {})[ts] = msg
        return ts

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict]:
        """Messages of ``channel`` in ts order (all of them, thread replies included), or the
        thread ``thread_ts`` (parent first). Copies, with the fake's private keys."""
        msgs = sorted(self._channels.get(channel, {}).values(), key=lambda m: ts_key(m["ts"]))
        if thread_ts is not None:
            msgs = [m for m in msgs if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
        return [self._view(channel, m, private=True) for m in msgs]

    def message(self, channel: str, ts: str) -> dict:
        return self._view(channel, self._get(channel, ts), private=True)

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Override users.info data. Profile fields (display_name, email, title, status_text,
        image_*...) go to ``profile``; real_name goes to both."""
        self._users.setdefault(user_id, {}).update(fields)

    def set_usergroup(self, group_id: str, users: list[str], **fields: Any) -> None:
        self._usergroups[group_id] = {"users": list(users), **fields}

    def set_channel(self, channel_id: str, **fields: Any) -> None:
        """Override conversations.info data (name, is_private, members, topic ...)."""
        self._channel_info.setdefault(channel_id, {}).update(fields)

    def end_stream(self, channel: str, ts: str, *, by_user: bool = False) -> None:
        """End a stream server-side: expiry, or the user pressing Stop (``by_user``)."""
        msg = self._get(channel, ts)
        msg["streaming"], msg["stopped_by_user"] = False, by_user

    # ------------------------------------------------------------------ internals
    def _get(self, channel: str, ts: str | None) -> dict:
        msg = self._channels.get(channel, {}).get(ts or "")
        if msg is None:
            raise ApiError("message_not_found")
        return msg

    def _view(self, channel: str, msg: dict, *, private: bool = False) -> dict:
        out = copy.deepcopy(
            msg if private else {k: v for k, v in msg.items() if k not in PRIVATE_KEYS}
        )
        replies = [
            m
            for m in self._channels.get(channel, {}).values()
            if m.get("thread_ts") == msg["ts"] and m["ts"] != msg["ts"]
        ]
        if replies:
            replies.sort(key=lambda m: ts_key(m["ts"]))
            users = list(dict.fromkeys(m.get("user") or m.get("bot_id") for m in replies))
            out.update(
                thread_ts=msg["ts"],
                reply_count=len(replies),
                reply_users=users,
                reply_users_count=len(users),
                latest_reply=replies[-1]["ts"],
            )
        elif "thread_ts" in msg and msg["thread_ts"] != msg["ts"]:
            parent = self._channels.get(channel, {}).get(msg["thread_ts"])
            if parent and parent.get("user"):
                out["parent_user_id"] = parent["user"]
        return out

    def _bot_message(self, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": text,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": "Sophia",
                "deleted": False,
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
            },
        }

    def _store(self, channel: str, msg: dict) -> dict:
        msg["ts"] = msg.get("ts") or self.new_ts()
        self._channels.setdefault(channel, {})[msg["ts"]] = msg
        return msg

    def _channel_arg(self, args: dict, key: str = "channel") -> str:
        channel = args.get(key)
        if not channel:
            raise ApiError("channel_not_found")
        if channel[0] in "UW":  # posting to a user id lands in the DM with them
            return self._open_dm([channel])
        return channel

    def _open_dm(self, users: list[str]) -> str:
        key = ",".join(sorted(users))
        if key not in self._dms:
            self._dms[key] = "D" + users[0][1:] if len(users) == 1 else self.new_id("G")
        return self._dms[key]

    @staticmethod
    def _check_text(args: dict) -> None:
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise ApiError("no_text")
        if len(args.get("text") or "") > MAX_TEXT:
            raise ApiError("msg_too_long")
        if len(args.get("blocks") or []) > MAX_BLOCKS:
            raise ApiError("invalid_blocks")

    # ------------------------------------------------------------------ auth / team / users
    def m_auth_test(self, a: dict) -> dict:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "sophia",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def m_team_info(self, a: dict) -> dict:
        team = {
            "id": self.team_id,
            "name": "Fake Team",
            "url": "https://fake.slack.com/",
            "domain": "fake",
            "email_domain": "example.com",
            "icon": {"image_default": True, "image_68": "https://fake.slack.com/team.png"},
            "is_verified": False,
        }
        return {"team": team}

    def user_object(self, user_id: str, *, include_locale: bool = False) -> dict:
        bot = user_id == self.bot_user_id
        override = copy.deepcopy(self._users.get(user_id, {}))
        name = override.get("name") or ("sophia" if bot else user_id.lower())
        real = override.get("real_name") or ("Sophia" if bot else f"User {user_id}")
        profile: dict[str, Any] = {
            "title": "",
            "real_name": real,
            "real_name_normalized": real,
            "display_name": name,
            "display_name_normalized": name,
            "status_text": "",
            "status_emoji": "",
            "avatar_hash": "g0000000000",
            "image_48": f"https://fake.slack.com/avatars/{user_id}_48.png",
            "image_72": f"https://fake.slack.com/avatars/{user_id}_72.png",
            "team": self.team_id,
        }
        if bot:
            profile.update(bot_id=self.bot_id, api_app_id=self.app_id, always_active=True)
        else:
            profile["email"] = f"{name}@example.com"
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": real,
            "tz": "America/Los_Angeles",
            "tz_label": "Pacific Standard Time",
            "tz_offset": -28800,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": bot,
            "is_app_user": False,
            "updated": 1700000000,
            "is_email_confirmed": not bot,
        }
        profile_keys = {"display_name", "email", "title", "phone", "status_text", "status_emoji"}
        for key, value in override.items():
            if key == "profile":
                profile.update(value)
            elif key in profile_keys or key.startswith("image_"):
                profile[key] = value
            else:
                user[key] = value
                if key == "real_name":
                    profile.update(real_name=value, real_name_normalized=value)
        user["profile"] = profile
        if include_locale:
            user.setdefault("locale", "en-US")
        else:
            user.pop("locale", None)
        return user

    def m_users_info(self, a: dict) -> dict:
        uid = a.get("user") or ""
        if uid not in self._users and uid[:1] not in ("U", "W"):
            raise ApiError("user_not_found")
        return {"user": self.user_object(uid, include_locale=truthy(a.get("include_locale")))}

    def m_bots_info(self, a: dict) -> dict:
        bid = a.get("bot") or ""
        if not bid.startswith("B"):
            raise ApiError("bot_not_found")
        ours = bid == self.bot_id
        bot = {
            "id": bid,
            "deleted": False,
            "name": "Sophia" if ours else f"bot-{bid.lower()}",
            "updated": 1700000000,
            "app_id": self.app_id if ours else "A" + bid[1:],
            "user_id": self.bot_user_id if ours else "U" + bid[1:],
            "icons": {"image_48": f"https://fake.slack.com/bots/{bid}_48.png"},
        }
        return {"bot": bot}

    def m_usergroups_users_list(self, a: dict) -> dict:
        group = self._usergroups.get(a.get("usergroup") or "")
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group["users"])}

    def m_usergroups_list(self, a: dict) -> dict:
        groups = []
        for gid, g in self._usergroups.items():
            group = {"id": gid, "team_id": self.team_id, "handle": gid.lower(), "name": gid}
            group.update({k: v for k, v in g.items() if k != "users"})
            group["user_count"] = len(g["users"])
            if truthy(a.get("include_users")):
                group["users"] = list(g["users"])
            groups.append(group)
        return {"usergroups": groups}

    # ------------------------------------------------------------------ conversations
    def channel_object(self, cid: str) -> dict:
        info: dict[str, Any] = {
            "id": cid,
            "created": 1700000000,
            "is_archived": False,
            "is_org_shared": False,
            "is_shared": False,
            "is_ext_shared": False,
            "context_team_id": self.team_id,
            "updated": 1700000000000,
            "is_member": True,
        }
        if cid.startswith("D"):
            user = next((k for k, v in self._dms.items() if v == cid), "U" + cid[1:])
            info.update(is_im=True, is_channel=False, is_group=False, is_mpim=False)
            info.update(is_private=True, user=user, is_user_deleted=False, is_open=True)
        else:
            name = cid.lower()
            info.update(name=name, name_normalized=name, is_im=False, is_mpim=False)
            info.update(is_channel=True, is_group=False, is_private=cid.startswith("G"))
            info.update(is_general=False, creator="U0USER", shared_team_ids=[self.team_id])
            info.update(topic={"value": "", "creator": "", "last_set": 0})
            info.update(purpose={"value": "", "creator": "", "last_set": 0}, previous_names=[])
        info.update({k: v for k, v in self._channel_info.get(cid, {}).items() if k != "members"})
        return info

    def _members(self, cid: str) -> list[str]:
        return list(self._channel_info.get(cid, {}).get("members", [self.bot_user_id, "U0USER"]))

    def m_conversations_info(self, a: dict) -> dict:
        info = self.channel_object(self._channel_arg(a))
        if truthy(a.get("include_num_members")):
            info["num_members"] = len(self._members(info["id"]))
        if truthy(a.get("include_locale")):
            info["locale"] = "en-US"
        return {"channel": info}

    def m_conversations_members(self, a: dict) -> dict:
        members = self._members(self._channel_arg(a))
        return {"members": members, "response_metadata": {"next_cursor": ""}}

    def _conversation_ids(self) -> list[str]:
        """Every conversation the fake knows of (described with set_channel, or holding messages)."""
        return sorted(set(self._channel_info) | set(self._channels))

    def m_users_conversations(self, a: dict) -> dict:
        """Channels ``user`` (default: the bot) is in; a private one only when the bot is in it too
        (a bot token sees no other private channels). ``types`` filters, archived ones may be left out."""
        user = a.get("user") or self.bot_user_id
        kinds = set((a.get("types") or "public_channel").split(","))
        out = []
        for cid in self._conversation_ids():
            info = self.channel_object(cid)
            kind = "private_channel" if info.get("is_private") else "public_channel"
            if info.get("is_im") or info.get("is_mpim"):
                kind = "im" if info.get("is_im") else "mpim"
            members = self._members(cid)
            if kind not in kinds or user not in members:
                continue
            if kind != "public_channel" and self.bot_user_id not in members:
                continue
            if truthy(a.get("exclude_archived")) and info.get("is_archived"):
                continue
            out.append(info)
        return {"channels": out, "response_metadata": {"next_cursor": ""}}

    def _search_match(self, cid: str, info: dict, msg: dict) -> dict:
        channel = {k: info.get(k, False) for k in SEARCH_CHANNEL_KEYS}
        channel.update(name=info.get("name") or info.get("user"), pending_shared=[])
        link = self.m_chat_getPermalink({"channel": cid, "message_ts": msg["ts"]})["permalink"]
        return {
            "iid": str(uuid.uuid4()),
            "team": self.team_id,
            "score": 0,
            "channel": {**channel, "is_shared": False, "is_pending_ext_shared": False},
            "type": "message",
            "user": msg.get("user"),
            "username": (msg.get("user") or "").lower(),
            "ts": msg["ts"],
            "text": msg.get("text") or "",
            "permalink": link,
        }

    def m_search_messages(self, a: dict) -> dict:
        """Messages containing the query's words (``"quoted phrase"`` kept together), as
        ``search_user`` may see them: every public channel, and private channels and DMs they are
        in. ``after:YYYY-MM-DD`` is honoured (other modifiers ignored); sort=timestamp: newest first."""
        query = a.get("query") or ""
        after = next((w[6:] for w in query.split() if w.startswith("after:")), None)
        text = " ".join(w for w in query.split() if ":" not in w or w.startswith('"'))
        phrase = text.strip().strip('"').lower()
        oldest = calendar.timegm(time.strptime(after, "%Y-%m-%d")) + 86400 if after else 0
        matches = []
        for cid in self._conversation_ids():
            info = self.channel_object(cid)
            public = not info.get("is_private")
            if not public and self.search_user not in self._members(cid):
                continue
            for msg in self._channels.get(cid, {}).values():
                if phrase in (msg.get("text") or "").lower() and float(msg["ts"]) >= oldest:
                    matches.append(self._search_match(cid, info, msg))
        if a.get("sort") == "timestamp":
            matches.sort(key=lambda m: ts_key(m["ts"]), reverse=a.get("sort_dir") != "asc")
        count = int(a.get("count") or 20)
        page = int(a.get("page") or 1)
        shown = matches[(page - 1) * count : page * count]
        pages = max(1, -(-len(matches) // count))
        return {
            "query": query,
            "messages": {
                "total": len(matches),
                "matches": shown,
                "pagination": {
                    "total_count": len(matches),
                    "page": page,
                    "per_page": count,
                    "page_count": pages,
                    "first": (page - 1) * count + 1,
                    "last": (page - 1) * count + len(shown),
                },
                "paging": {"count": count, "total": len(matches), "page": page, "pages": pages},
            },
        }

    def m_conversations_open(self, a: dict) -> dict:
        if a.get("channel"):
            return {"channel": {"id": a["channel"]}, "no_op": True, "already_open": True}
        users = [u for u in (a.get("users") or "").split(",") if u]
        if not users:
            raise ApiError("users_list_not_supplied")
        existed = ",".join(sorted(users)) in self._dms
        cid = self._open_dm(users)
        channel = self.channel_object(cid) if truthy(a.get("return_im")) else {"id": cid}
        return {"no_op": existed, "already_open": existed, "channel": channel}

    def m_conversations_replies(self, a: dict) -> dict:
        channel, ts = self._channel_arg(a), a.get("ts")
        if not ts:
            raise missing("ts")
        stored = self._channels.get(channel, {})
        if ts in stored and stored[ts].get("thread_ts") not in (None, ts):
            ts = stored[ts]["thread_ts"]  # a reply's ts stands for its whole thread
        thread = self.messages(channel, ts)
        if not thread:
            raise ApiError("thread_not_found")
        return _page([self._view(channel, m) for m in thread], a, 1000)

    def m_conversations_history(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        inclusive = truthy(a.get("inclusive"))
        oldest, latest = ts_key(a.get("oldest") or "0"), a.get("latest")

        def wanted(m: dict) -> bool:
            top = m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
            k = ts_key(m["ts"])
            after = k >= oldest if inclusive else k > oldest
            before = latest is None or (k <= ts_key(latest) if inclusive else k < ts_key(latest))
            return top and after and before

        msgs = [m for m in self._channels.get(channel, {}).values() if wanted(m)]
        msgs.sort(key=lambda m: ts_key(m["ts"]), reverse=True)
        out = _page([self._view(channel, m) for m in msgs], a, 100)
        return {**out, "pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0}

    # ------------------------------------------------------------------ chat
    def m_chat_postMessage(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        self._check_text(a)
        msg = self._bot_message(a.get("text") or "")
        for key in ("blocks", "attachments", "metadata", "thread_ts", "username", "icon_emoji"):
            if a.get(key) is not None:
                msg[key] = a[key]
        if a.get("thread_ts") and truthy(a.get("reply_broadcast")):
            msg["subtype"] = "thread_broadcast"
        self._store(channel, msg)
        return {"channel": channel, "ts": msg["ts"], "message": self._view(channel, msg)}

    def m_chat_update(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        msg = self._get(channel, a.get("ts"))
        if msg.get("bot_id") != self.bot_id:
            raise ApiError("cant_update_message")
        if msg.get("streaming"):  # undocumented; as other clients report
            raise ApiError("streaming_state_conflict")
        if len(a.get("text") or "") > MAX_TEXT:
            raise ApiError("msg_too_long")
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in a:
                msg[key] = a[key]
        msg["edited"] = {"user": self.bot_user_id, "ts": self.new_ts()}
        view = self._view(channel, msg)
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"], "message": view}

    def m_chat_delete(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        msg = self._get(channel, a.get("ts"))
        if msg.get("bot_id") != self.bot_id:
            raise ApiError("cant_delete_message")
        if self._view(channel, msg).get("reply_count"):  # threads keep a tombstone parent
            msg.clear()
            msg.update(type="message", subtype="tombstone", text="This message was deleted.")
            msg.update(ts=a["ts"], thread_ts=a["ts"], user="USLACKBOT", hidden=True)
        else:
            del self._channels[channel][a["ts"]]
        return {"channel": channel, "ts": a["ts"]}

    def m_chat_postEphemeral(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        if not a.get("user"):
            raise missing("user")
        self._check_text(a)
        ts = self.new_ts()
        keep = ("user", "text", "blocks", "attachments", "thread_ts")
        self.ephemerals.append({"channel": channel, "ts": ts, **{k: a[k] for k in keep if k in a}})
        return {"message_ts": ts}

    def m_chat_getPermalink(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        msg = self._get(channel, a.get("message_ts"))
        link = f"https://fake.slack.com/archives/{channel}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts") not in (None, msg["ts"]):
            link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    # ------------------------------------------------------------------ chat streaming
    def _validate_stream_content(self, msg: dict | None, a: dict) -> None:
        text, chunks = a.get("markdown_text"), a.get("chunks")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_MARKDOWN):
            raise ApiError("msg_too_long" if isinstance(text, str) else "invalid_arguments")
        if chunks is not None and not isinstance(chunks, list):
            raise ApiError("invalid_chunks")
        for ch in chunks or []:
            kind = ch.get("type") if isinstance(ch, dict) else None
            if kind not in CHUNK_TYPES:
                raise ApiError("invalid_chunks")
            if kind == "markdown_text" and len(ch.get("text") or "") > MAX_MARKDOWN:
                raise ApiError("msg_too_long")
            bad_task = (
                not ch.get("id") or not ch.get("title") or ch.get("status") not in TASK_STATUSES
            )
            if (kind == "task_update" and bad_task) or (
                kind == "plan_update" and not ch.get("title")
            ):
                raise ApiError("invalid_chunks")
            if kind == "blocks" and not isinstance(ch.get("blocks"), list):
                raise ApiError("invalid_chunks")
        mode = "chunks" if chunks else "markdown" if text is not None else None
        if self.strict_stream_mode and msg and mode and msg["stream_mode"] not in (None, mode):
            raise ApiError("streaming_mode_mismatch")  # undocumented; as other clients report

    @staticmethod
    def _apply_stream_content(msg: dict, a: dict) -> None:
        if a.get("markdown_text"):
            msg["text"] += a["markdown_text"]
        for ch in a.get("chunks") or []:
            msg["chunks"].append(ch)
            if ch["type"] == "markdown_text":
                msg["text"] += ch.get("text") or ""
            elif ch["type"] == "task_update":
                msg["tasks"][ch["id"]] = {**msg["tasks"].get(ch["id"], {}), **ch}
            elif ch["type"] == "plan_update":
                msg["plan_title"] = ch["title"]
            else:
                msg.setdefault("blocks", []).extend(ch["blocks"])

    def _streaming_message(self, a: dict) -> tuple[str, dict]:
        channel = self._channel_arg(a)
        msg = self._get(channel, a.get("ts"))
        if "streaming" not in msg:
            raise ApiError("message_not_in_streaming_state")
        if not msg["streaming"]:
            by_user = msg.get("stopped_by_user")
            raise ApiError("stopped_by_user" if by_user else "message_not_in_streaming_state")
        return channel, msg

    def m_chat_startStream(self, a: dict) -> dict:
        channel = self._channel_arg(a)
        if not a.get("thread_ts"):
            raise missing("thread_ts")
        if not channel.startswith("D"):
            if not a.get("recipient_user_id"):
                raise ApiError("missing_recipient_user_id")
            if not a.get("recipient_team_id"):
                raise ApiError("missing_recipient_team_id")
        if a.get("task_display_mode") not in (None, "timeline", "plan"):
            raise ApiError("invalid_arguments")
        self._validate_stream_content(None, a)
        msg = self._bot_message("")
        msg.update(thread_ts=a["thread_ts"], streaming=True, tasks={}, plan_title=None, chunks=[])
        msg["stream_mode"] = (
            "chunks" if a.get("chunks") else "markdown" if "markdown_text" in a else None
        )
        for key in ("recipient_user_id", "recipient_team_id", "task_display_mode"):
            msg[key] = a.get(key)
        self._apply_stream_content(msg, a)
        self._store(channel, msg)
        return {"channel": channel, "ts": msg["ts"]}

    def m_chat_appendStream(self, a: dict) -> dict:
        channel, msg = self._streaming_message(a)
        if a.get("markdown_text") is None and not a.get("chunks"):
            raise missing("markdown_text")
        self._validate_stream_content(msg, a)
        msg["stream_mode"] = msg["stream_mode"] or ("chunks" if a.get("chunks") else "markdown")
        self._apply_stream_content(msg, a)
        return {"channel": channel, "ts": msg["ts"]}

    def m_chat_stopStream(self, a: dict) -> dict:
        channel, msg = self._streaming_message(a)
        self._validate_stream_content(msg, a)
        if a.get("blocks") is not None and (
            not isinstance(a["blocks"], list) or len(a["blocks"]) > MAX_BLOCKS
        ):
            raise ApiError("invalid_blocks")
        self._apply_stream_content(msg, a)
        if a.get("blocks"):
            msg.setdefault("blocks", []).extend(a["blocks"])
        if a.get("metadata") is not None:
            msg["metadata"] = a["metadata"]
        msg["streaming"] = False
        return {"channel": channel, "ts": msg["ts"], "message": self._view(channel, msg)}

    # ------------------------------------------------------------------ reactions
    def m_reactions_add(self, a: dict) -> dict:
        msg = self._get(self._channel_arg(a), a.get("timestamp"))
        name = a.get("name") or ""
        if not name:
            raise ApiError("invalid_name")
        reaction = next((r for r in msg.setdefault("reactions", []) if r["name"] == name), None)
        if reaction is None:
            msg["reactions"].append({"name": name, "users": [self.bot_user_id], "count": 1})
        elif self.bot_user_id in reaction["users"]:
            raise ApiError("already_reacted")
        else:
            reaction["users"].append(self.bot_user_id)
            reaction["count"] += 1
        return {}

    def m_reactions_remove(self, a: dict) -> dict:
        msg = self._get(self._channel_arg(a), a.get("timestamp"))
        for r in msg.get("reactions", []):
            if r["name"] == a.get("name") and self.bot_user_id in r["users"]:
                r["users"].remove(self.bot_user_id)
                r["count"] -= 1
                msg["reactions"] = [x for x in msg["reactions"] if x["count"]]
                return {}
        raise ApiError("no_reaction")

    # ------------------------------------------------------------------ views
    def _view_object(self, view: Any, view_id: str, *, user_id: str | None = None) -> dict:
        if not isinstance(view, dict) or "type" not in view:
            raise ApiError("invalid_arguments")
        v = copy.deepcopy(view)
        for key, default in (("private_metadata", ""), ("callback_id", ""), ("external_id", "")):
            v.setdefault(key, default)
        v.update(id=view_id, team_id=self.team_id, app_id=self.app_id, bot_id=self.bot_id)
        v.update(state={"values": {}}, hash=f"{int(time.time())}.{uuid.uuid4().hex[:8]}")
        v.update(root_view_id=view_id, previous_view_id=None, app_installed_team_id=self.team_id)
        if user_id:
            v["user_id"] = user_id
        self.views[view_id] = v
        return v

    def m_views_publish(self, a: dict) -> dict:
        if not a.get("user_id"):
            raise missing("user_id")
        old = self.home_views.get(a["user_id"])
        if old and a.get("hash") and a["hash"] != old["hash"]:
            raise ApiError("hash_conflict")
        view_id = old["id"] if old else self.new_id("V")
        self.home_views[a["user_id"]] = v = self._view_object(
            a.get("view"), view_id, user_id=a["user_id"]
        )
        return {"view": v}

    def m_views_open(self, a: dict) -> dict:
        if not a.get("trigger_id") and not a.get("interactivity_pointer"):
            raise missing("trigger_id")
        return {"view": self._view_object(a.get("view"), self.new_id("V"))}

    def m_views_push(self, a: dict) -> dict:
        return self.m_views_open(a)

    def m_views_update(self, a: dict) -> dict:
        by_ext = {v.get("external_id"): k for k, v in self.views.items() if v.get("external_id")}
        view_id = a.get("view_id") or by_ext.get(a.get("external_id"))
        if view_id not in self.views:
            raise ApiError("not_found")
        if a.get("hash") and a["hash"] != self.views[view_id]["hash"]:
            raise ApiError("hash_conflict")
        return {"view": self._view_object(a.get("view"), view_id)}

    # ------------------------------------------------------------------ assistant threads
    def _assistant(self, a: dict) -> dict:
        if not a.get("channel_id") or not a.get("thread_ts"):
            raise missing("channel_id", "thread_ts")
        return self.assistant_threads.setdefault((a["channel_id"], a["thread_ts"]), {})

    def m_assistant_threads_setStatus(self, a: dict) -> dict:
        state = self._assistant(a)
        state["status"] = a.get("status", "")
        state.setdefault("status_history", []).append(a.get("status", ""))
        if a.get("loading_messages") is not None:
            state["loading_messages"] = a["loading_messages"]
        return {}

    def m_assistant_threads_setSuggestedPrompts(self, a: dict) -> dict:
        if not isinstance(a.get("prompts"), list):
            raise missing("prompts")
        self._assistant(a).update(prompts=a["prompts"], prompts_title=a.get("title"))
        return {}

    def m_assistant_threads_setTitle(self, a: dict) -> dict:
        self._assistant(a)["title"] = a.get("title", "")
        return {}

    # ------------------------------------------------------------------ files
    def m_files_getUploadURLExternal(self, a: dict) -> dict:
        if not a.get("filename") or not a.get("length"):
            raise missing("filename", "length")
        fid = self.new_id("F")
        self.files[fid] = {
            "id": fid,
            "name": a["filename"],
            "title": a["filename"],
            "size": int(a["length"]),
            "user": self.bot_user_id,
            "created": int(time.time()),
            "mimetype": "application/octet-stream",
            "url_private": f"https://files.fake.slack.com/files-pri/{self.team_id}-{fid}/{a['filename']}",
            "permalink": f"https://fake.slack.com/files/{self.bot_user_id}/{fid}/{a['filename']}",
            "shares": {},
            "channels": [],
        }
        return {"upload_url": f"{self.base_http}/upload/v1/{fid}", "file_id": fid}

    def m_files_completeUploadExternal(self, a: dict) -> dict:
        wanted = a.get("files")
        if not isinstance(wanted, list) or not wanted:
            raise missing("files")
        if any(f.get("id") not in self.uploads for f in wanted):
            raise ApiError("file_not_found")
        done = []
        for f in wanted:
            obj = self.files[f["id"]]
            obj["title"] = f.get("title") or obj["title"]
            done.append({"id": obj["id"], "title": obj["title"]})
        channels = [c for c in [a.get("channel_id"), *(a.get("channels") or "").split(",")] if c]
        for channel in channels:
            for f in wanted:
                self.files[f["id"]]["channels"].append(channel)
            msg = self._bot_message(a.get("initial_comment") or "")
            msg.update(files=[copy.deepcopy(self.files[f["id"]]) for f in wanted], upload=True)
            if a.get("thread_ts"):
                msg["thread_ts"] = a["thread_ts"]
            self._store(channel, msg)
        return {"files": done}

    def m_files_info(self, a: dict) -> dict:
        if a.get("file") not in self.files:
            raise ApiError("file_not_found")
        return {"file": copy.deepcopy(self.files[a["file"]])}

    # ------------------------------------------------------------------ Socket Mode payloads
    def new_trigger_id(self) -> str:
        return f"{int(time.time() * 1000)}.{self.team_id[1:]}.{uuid.uuid4().hex}"

    def prepare_event(self, event: dict) -> dict:
        """A copy of ``event`` with the fields Slack always sends filled in."""
        event = copy.deepcopy(event)
        channel = event.get("channel")
        if event.get("type") in ("message", "app_mention"):
            event.setdefault("ts", self.new_ts())
            event.setdefault("team", self.team_id)
            if event["type"] == "message" and isinstance(channel, str):
                kinds = {"D": "im", "G": "group", "C": "channel"}
                event.setdefault("channel_type", kinds.get(channel[:1], "channel"))
        event.setdefault("event_ts", event.get("ts") or self.new_ts())
        return event

    def store_event(self, event: dict) -> None:
        """Apply a message event to the stored conversation, as Slack already has it."""
        channel = event.get("channel")
        if not isinstance(channel, str):
            return
        stored = self._channels.setdefault(channel, {})
        kind, subtype = event.get("type"), event.get("subtype")
        if kind in ("message", "app_mention") and subtype in STORED_EVENT_SUBTYPES:
            skip = ("channel", "event_ts", "channel_type")
            stored.setdefault(event["ts"], {k: v for k, v in event.items() if k not in skip})
            stored[event["ts"]]["type"] = "message"
        elif subtype == "message_changed" and isinstance(event.get("message"), dict):
            stored[event["message"]["ts"]] = copy.deepcopy(event["message"])
        elif subtype == "message_deleted":
            stored.pop(event.get("deleted_ts", ""), None)

    def event_payload(self, event: dict, event_id: str) -> dict:
        ctx = {"et": event.get("type"), "tid": self.team_id, "aid": self.app_id}
        if isinstance(event.get("channel"), str):
            ctx["cid"] = event["channel"]
        raw_ctx = json.dumps(ctx, separators=(",", ":")).encode()
        authorization = {"enterprise_id": None, "team_id": self.team_id}
        authorization.update(user_id=self.bot_user_id, is_bot=True, is_enterprise_install=False)
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [authorization],
            "is_ext_shared_channel": False,
            "event_context": "4-" + base64.urlsafe_b64encode(raw_ctx).decode().rstrip("="),
        }

    def slash_command_payload(
        self,
        envelope_id: str,
        text: str,
        *,
        command: str,
        user_id: str,
        channel_id: str,
        channel_name: str,
        trigger_id: str | None,
    ) -> dict:
        if not channel_id.startswith("D"):
            self._channel_info.setdefault(channel_id, {}).setdefault("name", channel_name)
        self._response_targets[envelope_id] = channel_id
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": self.user_object(user_id)["name"],
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": f"{self.base_http}/response_url/{envelope_id}",
            "trigger_id": trigger_id or self.new_trigger_id(),
        }

    def interactive_payload(self, envelope_id: str, payload: dict) -> dict:
        p = copy.deepcopy(payload)
        kind = p.setdefault("type", "block_actions")
        user = p.setdefault("user", {"id": "U0USER"})
        user.setdefault("username", self.user_object(user["id"])["name"])
        user.setdefault("name", user["username"])
        user.setdefault("team_id", self.team_id)
        p.setdefault("api_app_id", self.app_id)
        p.setdefault("token", VERIFICATION_TOKEN)
        p.setdefault("team", {"id": self.team_id, "domain": "fake"})
        p.setdefault("enterprise", None)
        p.setdefault("is_enterprise_install", False)
        if kind in ("block_actions", "shortcut", "message_action", "view_submission"):
            p.setdefault("trigger_id", self.new_trigger_id())
        container = p.get("container") or {}
        if kind == "message_action" or (
            kind == "block_actions" and container.get("type") == "message"
        ):
            p.setdefault("response_url", f"{self.base_http}/response_url/{envelope_id}")
            channel = (p.get("channel") or {}).get("id") or container.get("channel_id")
            if channel:
                self._response_targets[envelope_id] = channel
        return p
