"""`sophia mcp serve`: Sophia's MCP tools over stdio, for local clients (Claude Desktop, Cursor).

When a running `sophia run` holds the data dir, this process relays to its `/mcp` endpoint
(the embedded vector store allows one process per path); otherwise it opens the store itself
and serves the same catalogue as `/mcp` (bot/mcp_server.py), limited to `--tools` groups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from bot.app import DataDirLock, build_core
from bot.capabilities import install_headless
from bot.core.approvals import Approvals
from bot.core.errors import ConfigError
from bot.mcp_server import GROUPS, Catalogue, build_server, group_of, slack_poster
from bot.redact import redact
from bot.services import Services
from bot.settings import Settings

log = logging.getLogger("sophia.mcp_stdio")


def parse_groups(text: str | None) -> list[str]:
    """`--tools github,research` → the groups; ValueError naming the unknown ones."""
    if not text:
        return list(GROUPS)
    groups = [g.strip().lower() for g in text.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(
            f"Unknown tool group {', '.join(unknown)}; choose from {', '.join(GROUPS)}."
        )
    return groups


def serve(settings: Settings, groups: Sequence[str]) -> int:
    """Serve stdio until the client closes it; relay when `sophia run` owns the data dir."""
    redact.add(settings.secrets())
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except ConfigError:
        return asyncio.run(_relay(settings, groups, _holder(lock)))
    try:
        if "memory" not in groups:
            lock.release()  # only the embedded memory store needs a single owner
        return asyncio.run(_headless(settings, groups))
    finally:
        lock.release()


def _holder(lock: DataDirLock) -> str:
    try:
        return lock.path.read_text().strip() or "?"
    except OSError:
        return "?"


async def _stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


# --- relay to a running Sophia ----------------------------------------------------------------


class _Remote:
    """A connection to Sophia's `/mcp`, opened on first use under the local client's name and
    held by its own task (an `mcp.Client` must close in the task that opened it)."""

    def __init__(self, url: str, token: str) -> None:
        self._url, self._token = url, token
        self._task: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[Any] | None = None
        self._done = asyncio.Event()

    async def client(self, name: str) -> Any:
        if self._task is None or (self._task.done() and not self._done.is_set()):
            self._opened = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._hold(name, self._opened))
        return await asyncio.shield(self._opened)

    async def _hold(self, name: str, opened: asyncio.Future[Any]) -> None:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.types import Implementation

        try:
            async with AsyncExitStack() as stack:
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers={"Authorization": f"Bearer {self._token}"},
                        timeout=httpx2.Timeout(30.0, read=300.0),
                    )
                )
                transport = streamable_http_client(self._url, http_client=http)
                info = Implementation(name=name, version="relayed by sophia mcp serve")
                client = await stack.enter_async_context(Client(transport, client_info=info))
                opened.set_result(client)
                await self._done.wait()
        except Exception as exc:
            if not opened.done():
                opened.set_exception(exc)
            else:
                log.warning("relay connection lost", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        self._done.set()
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)


async def _relay(settings: Settings, groups: Sequence[str], pid: str) -> int:
    from mcp import types
    from mcp.server import Server

    from bot.mcp_server import _client_name

    token = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    if not settings.mcp_port or not token:
        log.error(
            f"Sophia (pid {pid}) is running on {settings.data_dir} and owns its store. Set "
            "SOPHIA_MCP_PORT and SOPHIA_MCP_TOKEN (the same values as hers) so `sophia mcp serve` "
            "can relay to her /mcp endpoint."
        )
        return 2
    url = f"http://127.0.0.1:{settings.mcp_port}/mcp"
    remote = _Remote(url, token)
    unreachable = (
        f"Sophia (pid {pid}) owns the data dir, but her MCP endpoint at {url} did not answer"
    )

    async def list_tools(ctx: Any, params: Any) -> Any:
        try:
            listed = await (await remote.client(_client_name(ctx))).list_tools()
        except Exception as exc:
            raise RuntimeError(f"{unreachable} ({type(exc).__name__}).") from None
        return types.ListToolsResult(tools=[t for t in listed.tools if group_of(t.name) in groups])

    async def call_tool(ctx: Any, params: Any) -> Any:
        if group_of(params.name) not in groups:
            text = (
                f"Tool {params.name!r} is not among the groups served here ({', '.join(groups)})."
            )
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)  # fmt: skip
        try:
            client = await remote.client(_client_name(ctx))
            return await client.call_tool(params.name, params.arguments or {})
        except Exception as exc:
            text = f"{unreachable} ({type(exc).__name__})."
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)  # fmt: skip

    log.info("relaying to a running Sophia", extra={"pid": pid, "url": url})
    try:
        await _stdio(
            Server("sophia", version="1", on_list_tools=list_tools, on_call_tool=call_tool)
        )
    finally:
        await remote.close()
    return 0


# --- this process opens the store -------------------------------------------------------------


async def _nobody(_: str) -> bool:
    return False  # approving happens in Slack, where `sophia run` checks who clicked


async def _headless(settings: Settings, groups: Sequence[str]) -> int:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.store import Store
    from integrations.github import GitHub, MergeExecutor

    store = await Store.open(settings.resolved_database_url())
    memory = None
    try:
        core = build_core(settings, store)
        token = settings.github_token.get_secret_value() if settings.github_token else None
        github = GitHub(token=token, base_url=settings.github_api_url)
        approvals = Approvals(
            store, is_approver=_nobody, ttl_s=settings.approval_ttl.total_seconds(),
            allow_self_approval=settings.allow_self_approval,
        )  # fmt: skip
        # A request names a kind Sophia can carry out; `sophia run` executes it when approved.
        approvals.register("github.merge", MergeExecutor(github, method=settings.merge_method))
        services = Services(
            core=core, approvals=approvals, github=github, store=store, settings=settings
        )
        install_headless(services)
        if "memory" in groups:
            memory = await _open_memory(settings)
            services.memory = memory
        bot_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        poster = None
        if bot_token:  # without Slack there is nowhere to ask, so no request tools
            slack = AsyncWebClient(token=bot_token, base_url=settings.slack_api_url)
            poster = slack_poster(slack, services)
        await _stdio(build_server(Catalogue(services, groups, poster=poster)))
    finally:
        if memory is not None:
            await memory.close()
        await store.close()
    return 0


async def _open_memory(settings: Settings) -> Any:
    from integrations.memory import MemoryService

    try:
        return await MemoryService.open(settings)
    except ConfigError as exc:
        log.error("memory_search is off", extra={"reason": str(exc)})
    except Exception:
        log.exception("memory could not open; memory_search is off")
    return None
