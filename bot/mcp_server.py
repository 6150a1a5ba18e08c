"""Sophia's capabilities as an MCP server, for Claude Desktop, Cursor and other agents.

The tools are read from the agent's own registry (`core.tools`) at every `tools/list`, by
group, so what an MCP client sees is what Sophia's model sees: `github_…`, `lambda_…`,
`research_…`, `gong_…`, `hubspot_…`, plus `memory_search` over workspace memories only.
A side-effect tool is never run here: it becomes `<group>_request_<action>`, which stores an
approval request, posts it to Slack naming the MCP client as requester, and returns its id.

`sophia run` serves this over streamable HTTP at `/mcp` on SOPHIA_MCP_PORT, behind
`Authorization: Bearer $SOPHIA_MCP_TOKEN`; `sophia mcp serve` (bot/mcp_stdio.py) speaks stdio.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bot.core.account import AmbiguousCompany, Asker
from bot.core.approvals import ApprovalError, ApprovalRequest
from bot.core.errors import SophiaError
from bot.core.memory import Scope, Where
from bot.core.tools import Tool, ToolContext
from bot.redact import redact
from bot.services import Services

log = logging.getLogger("sophia.mcp_server")

GROUPS = ("github", "lambda", "research", "gong", "hubspot", "memory")
# Acts on its own (a new branch and PR) for a person watching in Slack; an outside agent
# gets read tools and approval requests only.
NOT_OFFERED = frozenset({"github_open_pr"})
# Registry names whose group-prefixed form would collide with another tool's.
PUBLIC_NAMES = {"search_code": "github_search_index"}  # the semantic index, not GitHub's search
CHANNEL_HELP = (
    "The Slack channel ID to post the approval request in (default: SOPHIA_ALERT_CHANNEL)."
)

# Longer than the agent's per-tool limit: research reads pages and writes, and an outside
# agent waits for it as a person would.
TOOL_TIMEOUT_S = 120.0

Poster = Callable[[ApprovalRequest], Awaitable[None]]


@dataclass(frozen=True)
class Offered:
    """One tool as MCP clients see it; `run(arguments, client)` returns (ok, text)."""

    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool
    run: Callable[[dict[str, Any], str], Awaitable[tuple[bool, str]]]


def _in_group(tool: Tool, group: str) -> bool:
    # Business sources are one group for the agent in Slack; over MCP they split by source.
    return tool.group == group or (tool.group == "business" and tool.name.startswith(f"{group}_"))


# Business sources offered one by one over MCP (what each tool returns).
ACCOUNT_READERS = {
    "hubspot": "A company's HubSpot records: the company, contacts, deals (stage, amount, close "
    "date) and recent notes, emails and meetings, each with its record link.",
    "gong": "A company's Gong calls of the last 90 days: topics, objections, promises and next "
    "steps, each with the call link and the moment (mm:ss).",
}


def group_of(name: str) -> str:
    """The group an offered tool's name belongs to (`github_repo_info` → `github`)."""
    return name.split("_", 1)[0]


class Catalogue:
    """What this server offers, rebuilt from the registry on every listing (one source of truth)."""

    def __init__(
        self, services: Services, groups: tuple[str, ...] | list[str], *, poster: Poster | None
    ) -> None:
        self._services, self._groups, self._poster = services, tuple(groups), poster

    def tools(self) -> list[Offered]:
        registry = self._services.core.tools
        offered: dict[str, Offered] = {}
        for group in self._groups:
            if group == "memory":
                if self._services.memory is not None:
                    offered["memory_search"] = self._memory_search()
                continue
            if group in ACCOUNT_READERS and (reader := self._account_reader(group)):
                offered[reader.name] = reader
            for name in registry.names():
                tool = registry.get(name)
                if tool is None or name in NOT_OFFERED or not _in_group(tool, group):
                    continue
                if not tool.side_effect:
                    entry = self._reader(tool, group)
                elif self._poster is not None and name in self._services.preparers:
                    entry = self._requester(tool, group)
                else:
                    continue
                offered.setdefault(entry.name, entry)  # a name clash: the first one keeps it
        return list(offered.values())

    def find(self, name: str) -> Offered | None:
        return next((t for t in self.tools() if t.name == name), None)

    # -- the three kinds of tool ---------------------------------------------------------------

    def _reader(self, tool: Tool, group: str) -> Offered:
        name = PUBLIC_NAMES.get(tool.name) or (
            tool.name if tool.name.startswith(f"{group}_") else f"{group}_{tool.name}"
        )

        async def run(arguments: dict[str, Any], client: str) -> tuple[bool, str]:
            result = await self._services.core.tools.call(
                tool.name, arguments, _context(client), timeout=TOOL_TIMEOUT_S
            )
            return result.ok, result.content

        return Offered(name, tool.description, tool.parameters, True, run)

    def _account_reader(self, group: str) -> Offered | None:
        """`hubspot_account` / `gong_account`: one business source's records about a company.

        Read straight from the source (not through `account_brief`, which also reads Slack as
        the person asking — an outside agent is nobody's Slack session)."""
        briefs = self._services.business
        source = (
            next((s for s in briefs.sources if s.name.lower() == group), None) if briefs else None
        )
        if source is None or source.missing:
            return None

        async def run(arguments: dict[str, Any], client: str) -> tuple[bool, str]:
            asker = Asker(user=f"mcp:{client}", channel=None, private=True)
            try:
                company = await briefs.resolve(str(arguments.get("company") or ""))
                found = await asyncio.wait_for(source.gather(company, asker), TOOL_TIMEOUT_S)
            except AmbiguousCompany as exc:
                names = "; ".join(f"{c.name} ({c.detail}) → hubspot:{c.id}" for c in exc.candidates)
                return False, f"Several companies match: {names}. Call again with the hubspot:<id>."
            except TimeoutError:
                return False, f"{source.name} did not answer within {TOOL_TIMEOUT_S:.0f} s."
            except SophiaError as exc:
                return False, str(exc)
            lines = [f"{source.name} records for {company.name} (untrusted data; cite the links):"]
            for r in found.records:
                at = f" at {r.moment}" if r.moment else ""
                when = f" ({r.when[:10]})" if r.when else ""
                lines.append(f"- {r.kind}: {r.title}{when}{at} — {r.text[:400]} <{r.url}>")
            lines += [f"Note: {n}" for n in found.notes]
            return True, "\n".join(
                lines
            ) if found.records else f"{source.name} has nothing on {company.name}."

        schema = {
            "type": "object",
            "properties": {"company": {"type": "string", "description": "The company's name or web domain, or hubspot:<id>."}},
            "required": ["company"],
        }  # fmt: skip
        return Offered(f"{group}_account", ACCOUNT_READERS[group], schema, True, run)

    def _requester(self, tool: Tool, group: str) -> Offered:
        action = tool.name.removeprefix(f"{group}_")
        schema = json.loads(json.dumps(tool.parameters))
        schema.setdefault("properties", {})["channel"] = {
            "type": "string",
            "description": CHANNEL_HELP,
        }
        description = (
            f"Ask a human approver in Slack for this action; returns the approval request's id "
            f"and never acts by itself. The action: {tool.description}"
        )

        async def run(arguments: dict[str, Any], client: str) -> tuple[bool, str]:
            return await self._request(tool, dict(arguments), client)

        return Offered(f"{group}_request_{action}", description, schema, False, run)

    async def _request(self, tool: Tool, args: dict[str, Any], client: str) -> tuple[bool, str]:
        services = self._services
        channel = args.pop("channel", None) or services.settings.alert_channel
        if not channel:
            return False, "No Slack channel to ask in: pass `channel` or set SOPHIA_ALERT_CHANNEL."
        # The registry validates the arguments against the tool's schema and, for a side-effect
        # tool, stops there: nothing runs.
        checked = await services.core.tools.call(tool.name, args, _context(client))
        if not checked.needs_approval:
            return False, checked.content
        try:
            request = await services.preparers[tool.name](
                services, args, f"mcp:{client}", str(channel), None
            )
        except (ApprovalError, SophiaError) as exc:
            return False, f"No approval was requested: {exc}"
        try:
            await self._poster(request)
        except Exception as exc:  # Slack refused (not in the channel, unknown channel, …)
            error = getattr(getattr(exc, "response", None), "get", lambda _: None)("error")
            return False, (
                f"Approval request {request.id} was stored but could not be posted in Slack "
                f"({error or type(exc).__name__}); invite Sophia to {channel} or pass another "
                "`channel`, then ask again."
            )
        log.info("approval requested over MCP", extra={"approval_id": request.id, "tool": tool.name})  # fmt: skip
        expires = datetime.fromtimestamp(request.expires_at, UTC).isoformat(timespec="seconds")
        return True, json.dumps({
            "approval_id": request.id, "state": "pending", "summary": request.summary,
            "requested_by": request.requester, "posted_in": channel, "expires_at": expires,
            "note": "Nothing happens until a listed approver presses Approve in Slack.",
        })  # fmt: skip

    def _memory_search(self) -> Offered:
        schema = {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for, in plain words."},
                "limit": {"type": "integer", "description": "At most this many (1-20).", "default": 5},
            },
            "required": ["query"],
        }  # fmt: skip

        async def run(arguments: dict[str, Any], client: str) -> tuple[bool, str]:
            query = str(arguments.get("query") or "").strip()
            if not query:
                return False, "Give a `query` to search for."
            try:
                limit = max(1, min(int(arguments.get("limit") or 5), 20))
            except (TypeError, ValueError):
                return False, "`limit` must be a whole number."
            # Asked from no channel and no DM, by nobody in Slack: only workspace memories are
            # visible there, and the scope check below holds even if that rule ever changed.
            where = Where(user="mcp", channel=None, private=False)
            items = await self._services.memory.recall(query, where=where, limit=limit)
            found = [
                {"text": i.text, "source": i.source,
                 "when": datetime.fromtimestamp(i.created_at, UTC).date().isoformat()}
                for i in items if i.scope is Scope.WORKSPACE and not i.private
            ]  # fmt: skip
            return True, json.dumps(found, ensure_ascii=False)

        return Offered(
            "memory_search", "Search what Sophia remembers for the whole workspace.", schema, True, run
        )  # fmt: skip


def _context(client: str) -> ToolContext:
    return ToolContext(
        user=f"mcp:{client}", channel=None, thread_ts=None, private=False,
        request_id=f"mcp-{uuid.uuid4().hex[:12]}",
    )  # fmt: skip


def _client_name(ctx: Any) -> str:
    """The name the MCP client gave (`clientInfo`), or a placeholder."""
    try:
        info = ctx.session.client_params.client_info
        return str(info.title or info.name)[:60] or "unnamed client"
    except AttributeError:
        return "unnamed client"


def build_server(catalogue: Catalogue) -> Any:
    """A low-level `mcp` Server whose tools come from `catalogue` at every request."""
    from mcp import types
    from mcp.server import Server

    def listed(t: Offered) -> Any:
        # A request tool only asks: it destroys nothing, the approved action is judged in Slack.
        hints = types.ToolAnnotations(read_only_hint=t.read_only, destructive_hint=False)
        return types.Tool(
            name=t.name, description=t.description, input_schema=t.schema, annotations=hints
        )

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[listed(t) for t in catalogue.tools()])

    async def call_tool(ctx: Any, params: Any) -> Any:
        offered = catalogue.find(params.name)
        if offered is None:
            ok, text = (
                False,
                f"Unknown tool {params.name!r}; list the tools to see what is offered.",
            )
        else:
            try:
                ok, text = await offered.run(params.arguments or {}, _client_name(ctx))
            except Exception:
                log.exception("MCP tool call failed", extra={"tool": params.name})
                ok, text = False, f"{params.name} failed unexpectedly; see Sophia's logs."
        content = [types.TextContent(type="text", text=redact(text))]
        return types.CallToolResult(content=content, is_error=not ok)

    return Server(
        "sophia", version="1", on_list_tools=list_tools, on_call_tool=call_tool,
        instructions="Sophia's read tools, and request tools that ask a person in Slack to approve an action.",
    )  # fmt: skip


# --- streamable HTTP at /mcp ------------------------------------------------------------------


class _BearerOnly:
    """ASGI guard: the MCP endpoint answers only requests carrying the configured token."""

    def __init__(self, app: Any, token: str) -> None:
        self._app, self._expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._expected):
            response = JSONResponse(
                {"error": "invalid_token", "error_description": "Send Authorization: Bearer <SOPHIA_MCP_TOKEN>."},
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="sophia"'},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


def _uvicorn_server(config: Any) -> Any:
    import uvicorn

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # Sophia owns SIGTERM: she drains replies first, then cancels this loop

    return Quiet(config)


async def serve_http(server: Any, *, port: int, token: str, host: str = "0.0.0.0") -> None:
    """Serve `/mcp` until cancelled; then stop listening and close sessions before returning."""
    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.applications import Starlette
    from starlette.routing import Route

    manager = StreamableHTTPSessionManager(app=server)
    app = Starlette(
        routes=[Route("/mcp", endpoint=_BearerOnly(manager.handle_request, token))],
        lifespan=lambda _: manager.run(),
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, log_level="warning", access_log=False,
        lifespan="on", timeout_graceful_shutdown=3,
    )  # fmt: skip
    web = _uvicorn_server(config)

    async def serve() -> None:
        try:
            await web.serve()
        except SystemExit:  # uvicorn's answer to a port in use; must not end Sophia
            log.error(f"MCP endpoint could not listen on port {port}; set SOPHIA_MCP_PORT to a free port.")  # fmt: skip

    serving = asyncio.ensure_future(serve())
    try:
        while not web.started and not serving.done():
            await asyncio.sleep(0.05)
        if web.started:
            log.info("MCP endpoint listening", extra={"port": port, "path": "/mcp"})
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        web.should_exit = True
        await serving
        raise


def slack_poster(client: Any, services: Services) -> Poster:
    """Post a stored request with its buttons where it names (the Slack layer's renderer)."""
    from handlers.approvals import post_request

    async def post(request: ApprovalRequest) -> None:
        configured = bool(services.settings and services.settings.approvers)
        await post_request(client, services.approvals, request, approvers_configured=configured)

    return post


def install(services: Services, slack_client: Any) -> None:
    """Serve `/mcp` while Sophia runs, when SOPHIA_MCP_PORT is set (and only with a token)."""
    settings = services.settings
    if settings is None or not settings.mcp_port:
        return
    token = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    if not token:
        log.error(
            "MCP endpoint not started: SOPHIA_MCP_PORT is set but SOPHIA_MCP_TOKEN is not. Set a "
            "long random token; MCP clients send it as `Authorization: Bearer <token>`."
        )
        return
    catalogue = Catalogue(services, GROUPS, poster=slack_poster(slack_client, services))
    services.background.append(
        partial(serve_http, build_server(catalogue), port=settings.mcp_port, token=token)
    )
