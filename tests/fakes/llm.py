"""Fake OpenAI Chat Completions server for tests.

``FakeLLM`` is an aiohttp server on 127.0.0.1 that speaks the OpenAI wire format
(``/v1/chat/completions`` streamed and not, ``/v1/embeddings``, ``/v1/models``), records
every request, and answers with replies programmed per test::

    async with FakeLLM() as fake:
        fake.script(Text("hi"), ToolCalls([("get_time", {"tz": "UTC"})]), model="fake-model")
        await litellm.acompletion(model="openai/fake-model", api_base=fake.base_url, ...)
        assert fake.chat_requests("fake-model")[0]["messages"][-1]["content"] == "..."

Replies are taken from the model's queue, then the generic queue, then ``on`` handlers,
then the default ``Text(f"echo: {last user message}")``. Model names are those in the
request body; a leading ``openai/`` in ``script``/``on``/``chat_requests`` is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Text:
    """Assistant message with plain text content."""

    text: str


@dataclass(frozen=True)
class ToolCalls:
    """Assistant tool calls: ``(name, args)`` or ``(name, args, id)``; args dict or raw str."""

    calls: Sequence[tuple[Any, ...]]
    text: str | None = None  # optional content sent alongside the calls


@dataclass(frozen=True)
class Error:
    """HTTP error with an OpenAI-style body ``{"error": {...}}``."""

    status: int = 500
    message: str = "boom"
    type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds`` (interrupted by ``stop``), then answer with ``reply``."""

    seconds: float
    reply: Reply


@dataclass(frozen=True)
class Hang:
    """Never answer; the connection is dropped when the server stops."""


@dataclass(frozen=True)
class BrokenStream:
    """Send part of the answer, then drop the connection without finishing it."""

    text_before: str = "partial"


Reply = Text | ToolCalls | Error | Slow | Hang | BrokenStream
Handler = Callable[[dict], Reply | None]


def _key(model: str | None) -> str | None:
    return model.removeprefix("openai/") if model else model


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def _text_of(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _embedding(text: str, dims: int) -> list[float]:
    """Deterministic unit vector derived from sha256 of ``text``."""
    raw = b""
    for i in itertools.count():
        if len(raw) >= dims:
            break
        raw += hashlib.sha256(f"{i}:{text}".encode()).digest()
    vec = [b / 127.5 - 1.0 for b in raw[:dims]]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


class FakeLLM:
    chunk_size = 20  # characters of text per streamed chunk

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.handler_errors: list[Exception] = []  # exceptions raised by `on` handlers
        self.base_url = ""
        self._queues: dict[str | None, deque[Reply]] = {}
        self._handlers: list[tuple[str | None, Handler]] = []
        self._first_handlers: list[tuple[str | None, Handler]] = []
        self._models: dict[str, None] = {}
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._list_models)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.handler_errors:
            raise RuntimeError("a FakeLLM `on` handler raised") from self.handler_errors[0]

    async def __aenter__(self) -> FakeLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- programming -----------------------------------------------------------------------
    def script(self, *replies: Reply, model: str | None = None) -> None:
        """Queue replies, consumed in order, for ``model`` (or for any model if None)."""
        self._queues.setdefault(_key(model), deque()).extend(replies)
        if model:
            self._models[_key(model)] = None

    def on(self, handler: Handler, model: str | None = None, *, first: bool = False) -> None:
        """Register a handler called with the request JSON when nothing is queued.

        It returns a reply, or None to fall through. If it raises, the request gets a 500
        and ``stop()`` re-raises, so a broken handler cannot pass silently. With ``first``,
        it is asked before the queues (for requests a test does not script, such as a
        classifier call made on the side)."""
        if first:
            self._first_handlers.append((_key(model), handler))
        else:
            self._handlers.append((_key(model), handler))

    def chat_requests(self, model: str | None = None) -> list[dict]:
        """JSON bodies sent to /v1/chat/completions, optionally only for ``model``."""
        bodies = [r["json"] for r in self.requests if r["path"].endswith("/chat/completions")]
        return [b for b in bodies if model is None or b.get("model") == _key(model)]

    @staticmethod
    def context_window_error() -> Error:
        return Error(
            400,
            "This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 9000 tokens.",
            type="invalid_request_error",
            code="context_length_exceeded",
        )

    @staticmethod
    def auth_error() -> Error:
        return Error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")

    @staticmethod
    def rate_limited() -> Error:
        return Error(429, "Rate limit reached", "requests", "rate_limit_exceeded", retry_after=1)

    # -- reply selection -------------------------------------------------------------------
    def _next_reply(self, body: dict) -> Reply:
        model = _key(body.get("model"))
        reply = self._from_handlers(self._first_handlers, model, body)
        if reply is not None:
            return reply
        for key in (model, None):
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        reply = self._from_handlers(self._handlers, model, body)
        if reply is not None:
            return reply
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        return Text(f"echo: {_text_of(users[-1].get('content')) if users else ''}")

    def _from_handlers(self, handlers: list, model: str | None, body: dict) -> Reply | None:
        for key in (model, None):
            for hkey, handler in handlers:
                if hkey != key:
                    continue
                try:
                    reply = handler(body)
                except Exception as exc:  # surfaced again by stop()
                    self.handler_errors.append(exc)
                    return Error(500, f"FakeLLM handler raised {exc!r}")
                if reply is not None:
                    return reply
        return None

    async def _record(self, request: web.Request) -> dict | None:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(
            {"path": request.path, "headers": CIMultiDict(request.headers), "json": body}
        )
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            self._models[body["model"]] = None
        return body if isinstance(body, dict) else None

    # -- handlers --------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if body is None:
            return self._error(Error(400, "Invalid JSON body", "invalid_request_error"))
        reply = self._next_reply(body)
        while isinstance(reply, Slow | Hang):
            timeout = reply.seconds if isinstance(reply, Slow) else None
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout)
            except TimeoutError:
                reply = reply.reply  # type: ignore[union-attr]
                continue
            return await self._drop(request)  # server stopping: never answer
        if isinstance(reply, Error):
            return self._error(reply)
        if body.get("stream"):
            return await self._stream(request, body, reply)
        if isinstance(reply, BrokenStream):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 10_000
            await resp.prepare(request)
            await resp.write(b'{"id": "chatcmpl-broken", "choices": [')
            return await self._drop(request)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if isinstance(reply, ToolCalls):
            message["tool_calls"] = self._tool_calls(reply)
        return web.json_response(
            {
                **self._envelope(body, "chat.completion"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                    }
                ],
                "usage": self._usage(body, reply),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict, reply: Text | ToolCalls | BrokenStream
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        envelope = self._envelope(body, "chat.completion.chunk")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def send(delta: dict, finish: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            chunk = {**envelope, "choices": [choice]}
            if include_usage:
                chunk["usage"] = None
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        text = reply.text_before if isinstance(reply, BrokenStream) else reply.text
        await send({"role": "assistant", "content": ""})
        for i in range(0, len(text or ""), self.chunk_size):
            await send({"content": text[i : i + self.chunk_size]})  # type: ignore[index]
        if isinstance(reply, BrokenStream):
            return await self._drop(request)
        if isinstance(reply, ToolCalls):
            for index, call in enumerate(self._tool_calls(reply)):
                fn, args = call["function"], call["function"]["arguments"]
                head = {"index": index, "id": call["id"], "type": "function"}
                await send(
                    {"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]}
                )
                for i in range(0, len(args), self.chunk_size):
                    piece = {"arguments": args[i : i + self.chunk_size]}
                    await send({"tool_calls": [{"index": index, "function": piece}]})
        await send({}, "tool_calls" if isinstance(reply, ToolCalls) else "stop")
        if include_usage:
            chunk = {**envelope, "choices": [], "usage": self._usage(body, reply)}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if body is None or "input" not in body:
            return self._error(Error(400, "'input' is required", "invalid_request_error"))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and all(isinstance(i, int) for i in inputs):
            inputs = [inputs]  # a single list of token ids
        texts = [i if isinstance(i, str) else json.dumps(i) for i in inputs]
        dims = int(body.get("dimensions") or 8)
        data = []
        for index, text in enumerate(texts):
            vec: Any = _embedding(text, dims)
            if body.get("encoding_format") == "base64":
                vec = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vec})
        tokens = sum(_tokens(t) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _list_models(self, request: web.Request) -> web.Response:
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self._models
        ]
        return web.json_response({"object": "list", "data": models})

    # -- helpers ---------------------------------------------------------------------------
    def _envelope(self, body: dict, obj: str) -> dict:
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }

    def _tool_calls(self, reply: ToolCalls) -> list[dict]:
        calls = []
        for name, args, *rest in reply.calls:
            call_id = rest[0] if rest else f"call_{next(self._call_ids)}"
            arguments = args if isinstance(args, str) else json.dumps(args)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        return calls

    @staticmethod
    def _usage(body: dict, reply: Text | ToolCalls) -> dict:
        prompt = "".join(_text_of(m.get("content")) for m in body.get("messages") or [])
        completion = reply.text or ""
        if isinstance(reply, ToolCalls):
            completion += json.dumps([list(c[:2]) for c in reply.calls])
        usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(completion)}
        return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}

    @staticmethod
    def _error(err: Error) -> web.Response:
        headers = {} if err.retry_after is None else {"Retry-After": f"{err.retry_after:g}"}
        error = {"message": err.message, "type": err.type, "param": None, "code": err.code}
        return web.json_response({"error": error}, status=err.status, headers=headers)

    @staticmethod
    async def _drop(request: web.Request) -> web.StreamResponse:
        """Abort the TCP connection without completing the response."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
