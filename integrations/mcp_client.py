"""Other MCP servers as tools for Sophia's agent (`SOPHIA_MCP_CONFIG`, the `mcpServers` JSON).

Each server is kept connected by its own task: connect, list tools, register them as
`<server>__<tool>` (DESIGN.md §7), probe now and then, and on failure report once, then
retry with backoff. A tool the server marks `readOnlyHint: true` runs directly; every other
tool (and every tool of a server with `"approval": "all"`) is a side-effect tool, which the
agent can only turn into an approval request of kind `mcp.call`, bound to the server, the
tool's definition and the exact arguments. What a server returns is data, never instructions.

    MCPServerError   a server is not connected, or a call failed (plain message)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from bot.core.approvals import ApprovalRequest, Report
from bot.core.errors import ConfigError, SophiaError
from bot.core.tools import Tool, ToolContext, ToolRegistry
from bot.redact import redact
from bot.registry import CommandContext, Registry, Subcommand
from bot.services import Services
from integrations.mcp_config import SAFE, ServerConfig, load_config

log = logging.getLogger("sophia.mcp")

KIND = "mcp.call"
MAX_NAME = 64  # model function names: ^[a-zA-Z0-9_-]{1,64}$


class MCPServerError(SophiaError):
    """An MCP server is not connected, or a call on it failed; the message says which."""


# --- one server -------------------------------------------------------------------------------


class LinkState(StrEnum):
    """Where one server connection is."""

    CONNECTING = "connecting"  # first attempt under way
    READY = "connected"  # tools listed and registered
    FAILING = "failing"  # the last attempt failed (or the server died); retrying with backoff
    STOPPED = "stopped"  # Sophia is shutting down


def _reason(exc: BaseException) -> str:
    """A plain sentence for a connection failure (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPServerError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"the command was not found ({exc.filename or exc})"
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    text = str(getattr(exc, "message", "") or exc) or type(exc).__name__
    if "Connection closed" in text:
        return "it closed the connection (did the process exit? run its command by hand to see why)"
    return redact(f"{type(exc).__name__}: {text}"[:300])


def result_text(result: Any) -> str:
    """A `CallToolResult` as text for the model: text parts, else the structured content."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and getattr(block.resource, "text", None):
            parts.append(block.resource.text)
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


@dataclass
class Link:
    """One configured server, kept connected by `run()`."""

    config: ServerConfig
    state: LinkState = LinkState.CONNECTING
    problem: str | None = None  # why it is failing, for `/sophia mcp`
    retry_at: float | None = None
    attempts: int = 0  # connection attempts so far
    definitions: dict[str, Any] = field(default_factory=dict)  # tool name → mcp Tool
    names: dict[str, str] = field(default_factory=dict)  # tool name → registered name
    _client: Any = None
    _dead: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.config.name

    def read_only(self, tool: str) -> bool:
        """Whether `tool` may run without approval: the server says so, the operator allows it."""
        definition = self.definitions.get(tool)
        hints = getattr(definition, "annotations", None)
        return not self.config.approval_all and bool(hints and hints.read_only_hint is True)

    def fingerprint(self, tool: str, arguments: dict[str, Any]) -> str:
        """What an approval is bound to: server, the tool as defined now, and the arguments."""
        definition = self.definitions.get(tool)
        if self._client is None or definition is None:
            raise MCPServerError(self._unavailable(tool))
        shape = definition.model_dump(mode="json", exclude={"meta", "icons"}, exclude_none=True)
        blob = json.dumps([self.name, tool, shape, arguments], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _unavailable(self, tool: str) -> str:
        if self._client is None:
            why = f": {self.problem}" if self.problem else ""
            return f"MCP server `{self.name}` is not connected right now{why}. Try again later."
        return f"MCP server `{self.name}` no longer offers a tool called `{tool}`."

    async def call(self, tool: str, arguments: dict[str, Any], *, timeout_s: float) -> str:
        """Call `tool`; its text, or MCPServerError with the server's error or the failure."""
        client = self._client
        if client is None or tool not in self.definitions:
            raise MCPServerError(self._unavailable(tool))
        try:
            result = await client.call_tool(tool, arguments, read_timeout_seconds=timeout_s)
        except Exception as exc:
            if "Connection closed" in str(exc):
                self._dead.set()  # reconnect now rather than at the next probe
            raise MCPServerError(f"`{tool}` on `{self.name}` failed: {_reason(exc)}") from None
        text = result_text(result)
        if result.is_error:
            raise MCPServerError(f"`{tool}` on `{self.name}` reported an error: {text[:1000]}")
        return text

    @asynccontextmanager
    async def _connect(self, timeout_s: float) -> AsyncIterator[Any]:
        """An open `mcp.Client` for this server (its child process or HTTP client closed after)."""
        import httpx2
        from mcp import Client, StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client
        from mcp.types import Implementation

        config = self.config
        async with AsyncExitStack() as stack:
            if config.url:
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=config.headers, timeout=httpx2.Timeout(30.0, read=300.0)
                    )
                )
                target: Any = streamable_http_client(config.url, http_client=http)
            else:
                # Only the variables listed under "env" (plus PATH, HOME, …) reach the child:
                # Sophia's own tokens never do.
                target = StdioServerParameters(
                    command=config.command or "", args=config.args, env=config.env or None
                )
            client = Client(
                target, read_timeout_seconds=timeout_s,  # bounds the handshake too
                client_info=Implementation(name="sophia", version="1"),
            )  # fmt: skip
            yield await stack.enter_async_context(client)

    async def _list(self, client: Any) -> dict[str, Any]:
        tools: dict[str, Any] = {}
        cursor = None
        for _ in range(20):  # a server that paginates forever must not hang us
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.update({t.name: t for t in page.tools})
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def run(
        self, on_tools: Any, *, probe_s: float, retry_s: float, max_retry_s: float,
        timeout_s: float,
    ) -> None:  # fmt: skip
        """Stay connected until cancelled; `on_tools(link)` registers newly listed tools."""
        delay = retry_s
        while True:
            self.attempts += 1
            try:
                async with self._connect(timeout_s) as client:
                    async with asyncio.timeout(timeout_s):
                        self.definitions = await self._list(client)
                    self._client, self.state = client, LinkState.READY
                    self.problem = self.retry_at = None
                    self._dead.clear()
                    on_tools(self)
                    log.info(
                        "MCP server connected",
                        extra={"server": self.name, "tools": len(self.definitions)},
                    )
                    delay = retry_s
                    await self._watch(client, on_tools, probe_s, timeout_s)
            except asyncio.CancelledError:
                self._client, self.state = None, LinkState.STOPPED
                raise
            except Exception as exc:  # any failure: report once, keep Sophia running, retry
                self._failed(_reason(exc))
            self._client = None
            self.retry_at = time.time() + delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry_s)

    async def _watch(self, client: Any, on_tools: Any, probe_s: float, timeout_s: float) -> None:
        """Return when the server dies (a failed probe or a call that found it gone)."""
        while True:
            try:
                await asyncio.wait_for(self._dead.wait(), probe_s)
                raise MCPServerError("it closed the connection")
            except TimeoutError:
                pass
            # Listing again both checks it is alive and picks up tools it added.
            self.definitions = await asyncio.wait_for(self._list(client), timeout_s)
            on_tools(self)

    def _failed(self, reason: str) -> None:
        if self.state is not LinkState.FAILING:  # once per failure streak, not every retry
            log.warning(
                "MCP server unavailable; retrying in the background",
                extra={"server": self.name, "reason": reason},
            )
        self.state, self.problem = LinkState.FAILING, reason


# --- every server, as tools -------------------------------------------------------------------


class MCPClients:
    """The configured servers and the tools they add to the agent's registry."""

    def __init__(
        self, configs: list[ServerConfig], tools: ToolRegistry, services: Services, *,
        problem: str | None = None, probe_s: float = 30.0, retry_s: float = 2.0,
        max_retry_s: float = 300.0, timeout_s: float = 30.0,
    ) -> None:  # fmt: skip
        self.links = {c.name: Link(c) for c in configs}
        self.problem = problem  # the config could not be read (shown by `/sophia mcp`)
        self._tools, self._services = tools, services
        self._owners: dict[str, tuple[str, str]] = {}  # registered name → (server, tool)
        self._timing = {"probe_s": probe_s, "retry_s": retry_s, "max_retry_s": max_retry_s}
        self.timeout_s = timeout_s

    async def run(self) -> None:
        """Keep every server connected until cancelled (a `services.background` loop)."""
        if not self.links:
            return
        await asyncio.gather(
            *(
                link.run(self._register, timeout_s=self.timeout_s, **self._timing)
                for link in self.links.values()
            )
        )

    def owner(self, name: str) -> tuple[Link, str]:
        """The link and tool name behind a registered tool name."""
        server, tool = self._owners[name]
        return self.links[server], tool

    def _name_for(self, server: str, tool: str) -> str:
        base = SAFE.sub("_", f"{server}__{tool}")[:MAX_NAME]
        if self._tools.get(base) is None and base not in self._owners:
            return base
        suffix = hashlib.sha1(f"{server}\0{tool}".encode()).hexdigest()[:6]
        return f"{base[: MAX_NAME - 7]}_{suffix}"

    def _register(self, link: Link) -> None:
        for tool_name, definition in link.definitions.items():
            if tool_name in link.names:
                continue  # registered on an earlier connection; the name stays the same
            name = self._name_for(link.name, tool_name)
            link.names[tool_name] = name
            self._owners[name] = (link.name, tool_name)
            side_effect = not link.read_only(tool_name)
            self._tools.add(self._tool(link, tool_name, definition, name, side_effect))
            if side_effect:
                self._services.preparers[name] = partial(prepare_call, self, name)

    def _tool(self, link: Link, tool: str, definition: Any, name: str, side_effect: bool) -> Tool:
        schema = dict(definition.input_schema or {})
        schema["type"] = "object"
        schema.setdefault("properties", {})
        about = (definition.description or definition.title or tool).strip()
        note = " (needs a person's approval)" if side_effect else ""
        description = f"[MCP server {link.name}{note}] {about}"[:1024]

        async def run(ctx: ToolContext, /, **arguments: Any) -> str:
            if not link.read_only(tool):  # the server changed its mind since we registered it
                raise MCPServerError(f"`{tool}` is no longer marked read-only; it was not run.")
            return await link.call(tool, arguments, timeout_s=self.timeout_s)

        # What a server returns may be anyone's text (a ticket, a page): after it has been read,
        # side-effect tools are withdrawn for the rest of the answer, as after web research.
        return Tool(
            name, description, schema, run, side_effect=side_effect, group=f"mcp:{link.name}",
            reads_outside=True,
        )  # fmt: skip


# --- approvals --------------------------------------------------------------------------------


def _shown(arguments: dict[str, Any]) -> str:
    text = json.dumps(arguments, ensure_ascii=False, indent=1).replace("```", "'''")
    return "```" + (text if len(text) <= 1500 else text[:1500] + "\n…") + "```"


async def prepare_call(
    clients: MCPClients, name: str, services: Services, arguments: dict[str, Any],
    requester: str, channel: str | None, thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """Store an approval request for one exact call (a `services.preparers` entry)."""
    if services.approvals is None:
        raise MCPServerError("Approvals are not available, so this tool cannot be used.")
    link, tool = clients.owner(name)
    why = (
        "the operator put every tool of this server behind approval"
        if link.config.approval_all
        else "the server does not mark it read-only"
    )
    return await services.approvals.create(
        kind=KIND, target=f"{link.name}/{tool}",
        params={"server": link.name, "tool": tool, "arguments": arguments, "name": name},
        bound_version=link.fingerprint(tool, arguments),
        summary=f"Call `{tool}` on the MCP server `{link.name}`",
        requester=requester, channel=channel, thread_ts=thread_ts,
        facts=[("Server", f"{link.name} ({link.config.where})"), ("Tool", f"`{tool}`"),
               ("Why approval", why), ("Arguments", _shown(arguments))],
    )  # fmt: skip


class CallExecutor:
    """Makes an approved MCP call once; a call interrupted by a restart is never repeated."""

    def __init__(self, clients: MCPClients, store: Any) -> None:
        self._clients, self._store = clients, store

    def _link(self, request: ApprovalRequest) -> Link:
        link = self._clients.links.get(request.params["server"])
        if link is None:
            raise MCPServerError(
                f"MCP server `{request.params['server']}` is no longer configured."
            )
        return link

    async def current_version(self, request: ApprovalRequest) -> str:
        params = request.params
        return self._link(request).fingerprint(params["tool"], params["arguments"])

    async def already_done(self, request: ApprovalRequest) -> str | None:
        if self._store is not None and await self._store.kv_get(KIND, request.id):
            return (
                "This call was started before a restart; it is not repeated, because an MCP "
                "call may not be safe to make twice. Check the outcome on the server."
            )
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        params = request.params
        if self._store is not None:  # marked before calling: at most once, even across a crash
            await self._store.kv_put(KIND, request.id, {"started": time.time()})
        text = await self._link(request).call(
            params["tool"], params["arguments"], timeout_s=self._clients.timeout_s
        )
        shown = redact(text).replace("```", "'''")
        shown = shown if len(shown) <= 1500 else shown[:1500] + "\n…"
        return f"`{params['tool']}` on `{params['server']}` answered:\n```{shown or '(nothing)'}```"


# --- /sophia mcp ------------------------------------------------------------------------------


def status_text(clients: MCPClients | None, settings: Any) -> str:
    """Servers, their state and their tools, for `/sophia mcp`."""
    if clients is None:
        return "No MCP servers are configured. Set SOPHIA_MCP_CONFIG to an `mcpServers` JSON file."
    if clients.problem:
        return f":warning: {clients.problem}"
    if not clients.links:
        return f"`{settings.mcp_config}` lists no servers."
    lines = ["*MCP servers*"]
    for link in clients.links.values():
        if link.state is LinkState.READY:
            state = f":white_check_mark: connected, {len(link.definitions)} tools"
        elif link.state is LinkState.FAILING:
            wait = max(0, int((link.retry_at or time.time()) - time.time()))
            state = f":warning: unavailable: {link.problem}. Retrying in {wait} s"
        else:
            state = f":hourglass: {link.state.value}"
        lines.append(f"• *{link.name}* ({link.config.where}) — {state}")
        for tool in link.definitions:
            mark = "read-only" if link.read_only(tool) else "needs approval"
            lines.append(f"    `{link.names.get(tool, tool)}` — {mark}")
    return "\n".join(lines)


async def run_mcp(ctx: CommandContext) -> None:
    """`/sophia mcp`: the configured servers, their state and tools (only to the asker)."""
    await ctx.reply_private(status_text(ctx.services.mcp, ctx.services.settings))


def install(registry: Registry, tools: ToolRegistry, services: Services) -> None:
    """Add `/sophia mcp`, the `mcp.call` executor and the loop that keeps servers connected."""
    registry.add_subcommand(
        Subcommand("mcp", "mcp", "List connected MCP servers and their tools", run_mcp,
                   ("SOPHIA_MCP_CONFIG",))
    )  # fmt: skip
    settings = services.settings
    if settings is None or settings.mcp_config is None:
        return
    try:
        configs, problem = load_config(settings.mcp_config), None
    except ConfigError as exc:
        log.error("MCP servers are off", extra={"reason": str(exc)})
        configs, problem = [], str(exc)
    clients = MCPClients(configs, tools, services, problem=problem)
    services.mcp = clients
    if services.approvals is not None:
        services.approvals.register(KIND, CallExecutor(clients, services.store))
    services.background.append(clients.run)
