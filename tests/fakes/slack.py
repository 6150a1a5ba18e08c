"""A fake Slack that real slack-sdk / slack-bolt code talks to over HTTP and a websocket.

``FakeSlack`` serves on 127.0.0.1 (random port) and records everything:

* Web API at ``api_url`` (``POST``/``GET /api/<method>``, form, query or JSON bodies, bearer or
  ``token`` auth; bot methods need the bot token, ``apps.connections.open`` the app token):
  auth.test, team.info, users.info, bots.info, usergroups.list, usergroups.users.list,
  conversations.info/members/open/history/replies, chat.postMessage/update/delete/postEphemeral/
  getPermalink, chat.startStream/appendStream/stopStream (text, task_update, plan_update and
  blocks chunks accumulate on the stored message), reactions.add/remove,
  views.publish/open/push/update, assistant.threads.setStatus/setSuggestedPrompts/setTitle,
  files.getUploadURLExternal (+ the upload URL itself)/completeUploadExternal/info,
  users.conversations, search.messages (user token only, searching as ``search_user``).
  Anything else answers ``unknown_method``. Every request is kept in ``calls``.
* Socket Mode: ``apps.connections.open`` hands out ``ws://.../link/?ticket=...``; the socket
  gets a ``hello``, then whatever ``push_event`` / ``push_slash_command`` / ``push_interactive``
  send (round-robin over the live sockets, as Slack spreads envelopes); acks are recorded with
  timings. ``send_disconnect`` / ``drop_connections`` / ``close_connections`` exercise reconnects.
* ``response_url`` endpoints for slash commands and block actions (``response_url_posts``).
* Failure injection: ``fail()`` (errors, HTTP status, 429 + Retry-After) and ``set_latency()``.

Conversation state (messages, threads, streams, users, views, files) lives in ``slack_state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.slack_state import JSON_ARGS, ApiError, Call, SlackState

__all__ = ["Call", "FakeSlack"]

APP_TOKEN_METHODS = {"apps.connections.open"}
USER_TOKEN_METHODS = {"search.messages"}  # user-token only (xoxp-), as in Slack


@dataclass(eq=False)
class _Socket:
    ws: web.WebSocketResponse
    request: web.Request
    number: int  # 1-based, in order of opening
    ready: bool = False  # hello sent
    draining: bool = False  # told to disconnect / dropped: gets no more envelopes


@dataclass
class _Failure:
    error: str
    status: int
    times: int | None
    retry_after: int | None


async def _read_args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("JSON body is not an object")
            args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    value = {"filename": value.filename, "content": value.file.read()}
                args[key] = value
    for key in JSON_ARGS & args.keys():
        if isinstance(args[key], str):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args


class FakeSlack(SlackState):
    def __init__(
        self,
        *,
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_id: str = "A0001",
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        strict_stream_mode: bool = False,
        redeliver_after: float | None = None,
    ) -> None:
        """``strict_stream_mode``: a stream opened with ``markdown_text`` refuses chunks and
        vice versa (``streaming_mode_mismatch``): undocumented, as other clients report it.
        ``redeliver_after``: re-send an events_api envelope not acked within that many
        seconds, up to 3 times, with ``retry_attempt``+1 and ``retry_reason="timeout"``."""
        super().__init__(team_id=team_id, bot_user_id=bot_user_id, bot_id=bot_id, app_id=app_id)
        self.bot_token, self.app_token = bot_token, app_token
        self.user_token = "xoxp-test-user-token"  # SLACK_USER_TOKEN; its owner is `search_user`
        self.strict_stream_mode = strict_stream_mode
        self.redeliver_after = redeliver_after
        self.port = 0
        self.api_url = ""
        self.calls: list[Call] = []
        self.envelopes: list[dict] = []  # every envelope sent over a socket, in order
        self.delivered_on: dict[str, int] = {}  # envelope_id -> socket number it went to
        self.ws_messages: list[Any] = []  # every text frame the clients sent (JSON-decoded)
        self.acks: dict[str, dict] = {}  # envelope_id -> first ack
        self.ack_times: dict[str, float] = {}  # envelope_id -> perf_counter() at ack
        self.sent_times: dict[str, float] = {}  # envelope_id -> perf_counter() at send
        self.response_url_posts: list[dict] = []
        self.response_url_posts_by_envelope: dict[str, list[dict]] = {}
        self.connections_opened = 0
        self._sockets: list[_Socket] = []
        self._round_robin = 0
        self._tickets: set[str] = set()
        self._failures: dict[str, list[_Failure]] = {}
        self._latency: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/link/", self._handle_ws)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_post("/response_url/{envelope_id}", self._handle_response_url)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self.base_http = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_http}/api/"

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for sock in list(self._sockets):
            sock.draining = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.ws.close(code=WSCloseCode.GOING_AWAY), 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ waiting
    def _bump(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self,
        predicate: Callable[[], Any],
        timeout: float = 5.0,
        describe: Callable[[], str] | str = "",
    ) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked whenever the fake sees anything)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                detail = describe() if callable(describe) else describe
                raise TimeoutError(
                    f"FakeSlack: timed out after {timeout}s waiting for {detail or predicate}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return result

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[Call]:
        """Wait for ``count`` answered calls to ``method`` matching ``predicate``; returns them all."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if predicate is None or predicate(c)]

        def describe() -> str:
            seen = [c.method for c in self.calls]
            return (
                f"{count} call(s) to {method}{' matching predicate' if predicate else ''}; "
                f"got {len(matching())} matching of {len(self.calls_to(method))}. "
                f"Methods called so far: {seen}"
            )

        await self.wait_until(lambda: len(matching()) >= count, timeout, describe)
        return matching()

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict:
        def describe() -> str:
            return f"ack of envelope {envelope_id}; acked so far: {list(self.acks)}"

        await self.wait_until(lambda: envelope_id in self.acks, timeout, describe)
        return self.acks[envelope_id]

    async def wait_for_response_url_post(
        self, envelope_id: str, *, count: int = 1, timeout: float = 5.0
    ) -> list[dict]:
        posts = self.response_url_posts_by_envelope

        def enough() -> bool:
            return len(posts.get(envelope_id, [])) >= count

        await self.wait_until(enough, timeout, f"{count} response_url POST(s) for {envelope_id}")
        return posts[envelope_id]

    # ------------------------------------------------------------------ failure injection
    def fail(
        self,
        method: str,
        *,
        error: str = "internal_error",
        status: int = 200,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> None:
        """The next ``times`` calls (None: all) to ``method`` fail with ``error`` and HTTP
        ``status``; 429 answers ``ratelimited`` with ``Retry-After: retry_after`` (default 1)."""
        if times is None or times > 0:
            self._failures.setdefault(method, []).append(
                _Failure(error, status, times, retry_after)
            )

    def clear_failures(self, method: str | None = None) -> None:
        if method is None:
            self._failures.clear()
        else:
            self._failures.pop(method, None)

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay answers to ``method`` (``"*"``: every method) by ``seconds``."""
        self._latency[method] = seconds

    def _take_failure(self, method: str) -> _Failure | None:
        rules = self._failures.get(method)
        if not rules:
            return None
        rule = rules[0]
        if rule.times is not None:
            rule.times -= 1
            if rule.times <= 0:
                rules.pop(0)
        return rule

    # ------------------------------------------------------------------ Web API
    def _auth_error(self, method: str, token: str | None) -> str | None:
        wanted = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if method in USER_TOKEN_METHODS:
            wanted = self.user_token
        if not token:
            return "not_authed"
        if token == wanted:
            return None
        return (
            "not_allowed_token_type"
            if token in (self.app_token, self.bot_token, self.user_token)
            else "invalid_auth"
        )

    def _answer(self, call: Call) -> tuple[int, dict, dict[str, str]]:
        rule = self._take_failure(call.method)
        if rule is not None:
            if rule.status == 429:
                headers = {"Retry-After": str(rule.retry_after or 1)}
                return 429, {"ok": False, "error": "ratelimited"}, headers
            return rule.status, {"ok": False, "error": rule.error}, {}
        handler = getattr(self, "m_" + call.method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method", "req_method": call.method}, {}
        error = self._auth_error(call.method, call.token)
        if error:
            return 200, {"ok": False, "error": error}, {}
        try:
            return 200, {"ok": True, **handler(copy.deepcopy(call.args))}, {}
        except ApiError as exc:
            return exc.status, {"ok": False, "error": exc.error, **exc.extra}, {}

    async def _handle_api(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        bad_body = False
        try:
            args = await _read_args(request)
        except ValueError:
            args, bad_body = dict(request.query), True
        auth = request.headers.get("Authorization", "")
        token = args.pop("token", None)
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :].strip()
        method = request.match_info["method"]
        call = Call(method, args, token, dict(request.headers), arrived, request.method)
        delay = self._latency.get(method, self._latency.get("*", 0.0))
        if delay:
            await asyncio.sleep(delay)
        if bad_body:
            status, body, headers = 200, {"ok": False, "error": "invalid_json"}, {}
        else:
            status, body, headers = self._answer(call)
        call.status, call.response = status, body
        self.calls.append(call)
        self._bump()
        return web.json_response(body, status=status, headers=headers)

    def m_apps_connections_open(self, a: dict) -> dict:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"}

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.Response(status=404, text="file not found")
        if request.content_type == "multipart/form-data":
            part = await (await request.multipart()).next()
            data = await part.read() if isinstance(part, web.BodyPartReader) else b""
        else:
            data = await request.read()
        self.uploads[file_id] = bytes(data)
        self.files[file_id]["size"] = len(data)
        self._bump()
        return web.Response(text=f"OK - {len(data)}")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        envelope_id = request.match_info["envelope_id"]
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = json.loads((await request.post()).get("payload") or "{}")
        self.response_url_posts.append(body)
        self.response_url_posts_by_envelope.setdefault(envelope_id, []).append(body)
        channel = self._response_targets.get(envelope_id)
        if channel and body.get("response_type") == "in_channel":
            msg = self._bot_message(body.get("text") or "")
            msg.update({k: body[k] for k in ("blocks", "attachments", "thread_ts") if k in body})
            self._store(channel, msg)
        self._bump()
        return web.Response(text="ok")

    # ------------------------------------------------------------------ Socket Mode
    @property
    def connections(self) -> int:
        """Websockets currently open (including ones told to disconnect)."""
        return len(self._sockets)

    def _live(self) -> list[_Socket]:
        return [s for s in self._sockets if s.ready and not s.draining and not s.ws.closed]

    async def wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` sockets are open, greeted with hello, and not told to disconnect
        or dropped. So after ``send_disconnect()`` this waits for the replacement connection."""

        def describe() -> str:
            return (
                f"{count} live socket(s); live={len(self._live())} open={self.connections} "
                f"opened_total={self.connections_opened}; "
                f"apps.connections.open calls={len(self.calls_to('apps.connections.open'))}"
            )

        await self.wait_until(lambda: len(self._live()) >= count, timeout, describe)

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)  # pongs the SDK's "sdk-ping-pong:<t>" pings
        await ws.prepare(request)
        self.connections_opened += 1
        sock = _Socket(ws, request, self.connections_opened)
        self._sockets.append(sock)
        try:
            hello = {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {
                    "host": "fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
            await ws.send_str(json.dumps(hello))
            sock.ready = True
            self._bump()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_text(msg.data)
        finally:
            self._sockets.remove(sock)
            self._bump()
        return ws

    def _on_client_text(self, raw: str) -> None:
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = raw
        self.ws_messages.append(data)
        if isinstance(data, dict) and data.get("envelope_id"):
            envelope_id = data["envelope_id"]
            if envelope_id not in self.acks:
                self.acks[envelope_id] = data
                self.ack_times[envelope_id] = time.perf_counter()
        self._bump()

    async def _deliver(self, envelope: dict, timeout: float) -> str:
        """Send ``envelope`` to one live socket (round-robin); waits for one if none is live."""
        envelope_id = envelope["envelope_id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        raw = json.dumps(envelope)
        while True:
            remaining = max(0.0, deadline - loop.time())
            live = await self.wait_until(
                self._live, remaining, f"a live socket to send {envelope['type']} to"
            )
            sock = live[self._round_robin % len(live)]
            self._round_robin += 1
            try:
                self.sent_times[envelope_id] = time.perf_counter()
                await sock.ws.send_str(raw)
            except (ConnectionError, RuntimeError):
                sock.draining = True
                continue
            self.envelopes.append(envelope)
            self.delivered_on[envelope_id] = sock.number
            self._bump()
            return envelope_id

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push_event(
        self,
        event: dict,
        *,
        event_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        store: bool = True,
        timeout: float = 5.0,
    ) -> str:
        """Deliver ``event`` in an events_api envelope; returns its envelope_id.

        Message-like events get ``ts``/``team``/``event_ts`` (and ``channel_type``) filled in
        when missing, and with ``store`` new messages are added to the channel (as Slack would
        have them), so conversations.replies/history and reactions.add see them. Passing an
        ``event_id`` used before simulates a redelivery. Waits up to ``timeout`` for a socket."""
        event = self.prepare_event(event)
        if store:
            self.store_event(event)
        event_id = event_id or self.new_id("Ev")
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": self.event_payload(event, event_id),
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        envelope_id = await self._deliver(envelope, timeout)
        if self.redeliver_after is not None and retry_attempt < 3:
            self._spawn(self._redeliver(envelope_id, event, event_id, retry_attempt))
        return envelope_id

    async def _redeliver(self, envelope_id: str, event: dict, event_id: str, attempt: int) -> None:
        await asyncio.sleep(self.redeliver_after or 0)
        if envelope_id not in self.acks:
            with contextlib.suppress(TimeoutError):
                await self.push_event(
                    event,
                    event_id=event_id,
                    retry_attempt=attempt + 1,
                    retry_reason="timeout",
                    store=False,
                )

    async def push_slash_command(
        self,
        text: str,
        *,
        command: str = "/sophia",
        user_id: str = "U0USER",
        channel_id: str = "C0CHAN",
        channel_name: str = "general",
        trigger_id: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Deliver a slash command (its response_url points at this fake); returns envelope_id."""
        envelope_id = str(uuid.uuid4())
        payload = self.slash_command_payload(
            envelope_id,
            text,
            command=command,
            user_id=user_id,
            channel_id=channel_id,
            channel_name=channel_name,
            trigger_id=trigger_id,
        )
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "slash_commands",
            "accepts_response_payload": True,
        }
        return await self._deliver(envelope, timeout)

    async def push_interactive(
        self, payload: dict, *, accepts_response_payload: bool | None = None, timeout: float = 5.0
    ) -> str:
        """Deliver an interactive payload (block_actions, view_submission, shortcut, ...).
        Missing common fields (user, team, api_app_id, token, trigger_id, response_url for
        message actions) are filled in. ``accepts_response_payload`` defaults to True for
        view_submission and block_suggestion. Returns the envelope_id."""
        envelope_id = str(uuid.uuid4())
        p = self.interactive_payload(envelope_id, payload)
        if accepts_response_payload is None:
            accepts_response_payload = p["type"] in ("view_submission", "block_suggestion")
        envelope = {
            "envelope_id": envelope_id,
            "payload": p,
            "type": "interactive",
            "accepts_response_payload": accepts_response_payload,
        }
        return await self._deliver(envelope, timeout)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Tell every live socket to reconnect; they get no further envelopes."""
        message = json.dumps(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        )
        for sock in self._live():
            sock.draining = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await sock.ws.send_str(message)
        self._bump()

    async def drop_connections(self) -> None:
        """Abort every socket's TCP connection without a close frame (a network failure)."""
        for sock in list(self._sockets):
            sock.draining = True
            if sock.request.transport is not None:
                sock.request.transport.abort()
        self._bump()

    async def close_connections(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Close every socket cleanly with a close frame (no disconnect message first)."""
        for sock in list(self._sockets):
            sock.draining = True
        self._bump()
        await asyncio.gather(
            *(s.ws.close(code=code) for s in list(self._sockets)), return_exceptions=True
        )
