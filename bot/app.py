"""Build and run Sophia: Bolt app + Socket Mode + store + health endpoint, with clean shutdown."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot import mcp_server
from bot.commands import register_core_commands
from bot.core.approvals import Approvals
from bot.core.errors import ConfigError
from bot.core.orchestrator import CoreConfig, Orchestrator
from bot.core.ports import ApprovalGate, Observer
from bot.doctor import register_core_checks
from bot.health import HealthServer
from bot.metrics import Metrics
from bot.redact import redact
from bot.registry import Registry
from bot.services import Services
from bot.settings import Settings
from bot.store import Store
from handlers import business as business_handlers
from handlers import channel_config
from handlers import fly as fly_handlers
from handlers import gpu as gpu_handlers
from handlers import memory as memory_handlers
from handlers import monitor as monitor_handlers
from handlers.approvals import SlackApprovalGate, expiry_loop, report_reconciled, thread_reporter
from handlers.edits import AskedQuestions
from handlers.limits import RateLimiter
from handlers.people import Access, Directory, PeopleList
from integrations import (
    business_capability,
    fly_capability,
    github_capability,
    index_capability,
    lambda_capability,
    mcp_client,
    research_capability,
)
from integrations.github import GitHub, MergeExecutor
from integrations.index_capability import web_url_for
from integrations.llm import LiteLLMModels
from integrations.repo_index import RepoIndex
from integrations.research import register_checks as register_research_checks

log = logging.getLogger("sophia")

TOKEN_HELP = (
    "Create the Slack app from manifest.yml (https://api.slack.com/apps → Create New App → "
    "From a manifest), then:\n"
    "  • SLACK_APP_TOKEN: Basic Information → App-Level Tokens → Generate Token and Scopes, "
    "with the connections:write scope (starts with xapp-)\n"
    "  • SLACK_BOT_TOKEN: Install App → Install to Workspace → Bot User OAuth Token "
    "(starts with xoxb-)\n"
    "Put both in the environment or in a .env file (see .env.example)."
)


def _quiet_token_notice(record: logging.LogRecord) -> bool:
    """Drop Bolt's start-up notice that SLACK_BOT_TOKEN from the environment goes unused.

    Bolt reads the variable itself even when given a client built from the same token, and
    warns on every start; the warning is noise to an operator.
    """
    return "will be unused" not in record.getMessage()


def check_slack_tokens(settings: Settings) -> tuple[str, str]:
    """The bot and app tokens, or a ConfigError naming what is missing or malformed."""
    bot = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    app = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
    missing = [n for n, v in (("SLACK_BOT_TOKEN", bot), ("SLACK_APP_TOKEN", app)) if not v]
    if missing:
        raise ConfigError(f"Missing {' and '.join(missing)}.\n{TOKEN_HELP}", variable=missing[0])
    if not bot.startswith("xoxb-"):
        hint = (
            " It looks like an app-level token: did you swap the two?"
            if bot.startswith("xapp-")
            else ""
        )
        raise ConfigError(
            f"SLACK_BOT_TOKEN must be a bot token starting with xoxb-.{hint}\n{TOKEN_HELP}",
            variable="SLACK_BOT_TOKEN",
        )
    if not app.startswith("xapp-"):
        hint = (
            " It looks like a bot token: did you swap the two?" if app.startswith("xoxb-") else ""
        )
        raise ConfigError(
            f"SLACK_APP_TOKEN must be an app-level token starting with xapp-.{hint}\n{TOKEN_HELP}",
            variable="SLACK_APP_TOKEN",
        )
    return bot, app


def core_config(settings: Settings) -> CoreConfig:
    """The core's slice of the settings."""
    return CoreConfig(
        history_tokens=settings.history_tokens,
        log_content=settings.log_content,
        max_tool_steps=settings.max_tool_steps,
        daily_budget_usd=settings.daily_budget_usd,
        user_daily_budget_usd=settings.user_daily_budget_usd,
        max_output_tokens=settings.max_tokens_per_request,
    )


def warm_up_models(core: Orchestrator) -> None:
    """Import litellm, build its Router and load its lazy modules (seconds; run in a thread)."""
    warm = getattr(core.models, "warm_up", None)
    if warm:
        warm()


def build_core(
    settings: Settings,
    store: Store,
    approvals: ApprovalGate | None = None,
    observer: Observer | None = None,
) -> Orchestrator:
    """The orchestration core with this build's model access and tools."""
    return Orchestrator(
        models=LiteLLMModels(settings),
        requests=store,
        approvals=approvals,
        observer=observer,
        config=core_config(settings),
    )


def build_registry() -> Registry:
    """The registry with every capability this build has."""
    registry = Registry()
    register_core_commands(registry)
    register_core_checks(registry)
    github_capability.register_check(registry)
    fly_capability.register_check(registry)
    lambda_capability.register_check(registry)
    business_capability.register_check(registry)
    register_research_checks(registry)
    return registry


class TimedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, timing each envelope from arrival to its ack being sent."""

    metrics: Metrics | None = None

    async def handle(self, client: Any, req: Any) -> None:
        started = time.perf_counter()
        await super().handle(client, req)
        if self.metrics is not None:
            self.metrics.inc("sophia_envelopes_acked_total", type=str(req.type))
            self.metrics.observe("sophia_ack_seconds", time.perf_counter() - started)


class DataDirLock:
    """One process per data dir: the embedded state has a single owner."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "sophia.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or explain which setting lets a second replica run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"Another Sophia process is already using the data dir {self.path.parent}. "
                "Give each replica its own SOPHIA_DATA_DIR (replicas share state through "
                "DATABASE_URL and QDRANT_URL).",
                variable="SOPHIA_DATA_DIR",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the next process in."""
        if self._file:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass
class Sophia:
    """A running Sophia; `await start()`, then `await stop()` (or `serve()` for both)."""

    settings: Settings
    registry: Registry = field(default_factory=build_registry)
    metrics: Metrics = field(default_factory=Metrics)
    # How often Socket Mode pings; a dropped TCP connection is noticed within about this long.
    socket_ping_interval: float = 10.0

    app: AsyncApp | None = field(default=None, init=False)
    socket: AsyncSocketModeHandler | None = field(default=None, init=False)
    deps: handlers.Deps | None = field(default=None, init=False)
    health: HealthServer | None = field(default=None, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    _lock: DataDirLock | None = field(default=None, init=False)
    _warm: asyncio.Task[None] | None = field(default=None, init=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False)
    _background: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _memory_task: asyncio.Task[None] | None = field(default=None, init=False)
    _memory: Any = field(default=None, init=False)
    memory_ready: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def start(self) -> None:
        """Open state, connect to Slack over Socket Mode, and start the health endpoint."""
        settings = self.settings
        bot_token, app_token = check_slack_tokens(settings)
        redact.add(settings.secrets())
        self._lock = DataDirLock(settings.data_dir)
        self._lock.acquire()
        store = await Store.open(settings.resolved_database_url())
        # One shared aiohttp session for every Web API call: connection reuse halves
        # burst latency compared with a session per request.
        self._session = aiohttp.ClientSession()
        client = AsyncWebClient(
            token=bot_token,
            base_url=settings.slack_api_url,
            session=self._session,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),  # honours Retry-After
            ],
        )
        auth = await client.auth_test()
        token = settings.github_token.get_secret_value() if settings.github_token else None
        github = GitHub(token=token, base_url=settings.github_api_url)
        approvers = PeopleList(client, settings.approvers)
        directory = Directory(client)  # users.info, cached: guest checks and each person's locale
        approvals = Approvals(
            store, is_approver=approvers, ttl_s=settings.approval_ttl.total_seconds(),
            allow_self_approval=settings.allow_self_approval,
        )  # fmt: skip
        approvals.register("github.merge", MergeExecutor(github, method=settings.merge_method))
        approvals.reporter = thread_reporter(client)
        gate = SlackApprovalGate(client)
        core = build_core(settings, store, approvals=gate, observer=self.metrics)
        services = Services(
            core=core,
            approvals=approvals,
            github=github,
            admins=PeopleList(client, settings.admins),
            store=store,
            settings=settings,
        )
        github_capability.install(self.registry, core.tools, services)
        self.deps = handlers.Deps(
            settings=settings, core=core, store=store, registry=self.registry, metrics=self.metrics,
            services=services, approvers=approvers, bot_user_id=auth.get("user_id"),
            access=Access(client, users=settings.allowed_users, channels=settings.allowed_channels, directory=directory),
            directory=directory,
            limiter=RateLimiter(user_rpm=settings.user_rpm, workspace_rpm=settings.workspace_rpm),
            asked=AskedQuestions(),
            bot_id=auth.get("bot_id"), team_id=auth.get("team_id"),
        )  # fmt: skip
        gate.deps = self.deps
        bolt_log = logging.getLogger("sophia.bolt")
        bolt_log.addFilter(_quiet_token_notice)
        self.app = AsyncApp(client=client, logger=bolt_log)
        handlers.register(self.app, self.deps)
        memory_handlers.register(self.app, self.deps)
        # Capabilities plug in here, before the socket opens and before reconcile (which needs
        # their approval executors): subcommands, tools, executors, Slack listeners, loops.
        # Without credentials a capability installs only subcommands that say what to set.
        research_capability.install(
            self.registry, core.tools, services
        )  # /sophia research, web_research
        mcp_client.install(
            self.registry, core.tools, services
        )  # other MCP servers' tools, /sophia mcp
        mcp_server.install(services, client)  # /mcp on SOPHIA_MCP_PORT (bearer SOPHIA_MCP_TOKEN)
        lambda_capability.install(self.registry, core.tools, services, dm=gpu_handlers.direct_message(client))  # fmt: skip
        monitor_handlers.install(self.app, self.deps)  # health alerts, fly.restart, self-deploy
        fly_capability.install(
            self.registry, core.tools, services
        )  # fly status/secrets/scale, deploy
        fly_handlers.install(
            self.registry, self.deps
        )  # fly secrets set: the value comes from a form
        fly_handlers.register(self.app, self.deps)
        business_capability.install(
            self.registry, core.tools, services
        )  # /sophia account, account_brief
        business_handlers.register(
            self.app, self.deps
        )  # Slack messages as a source, who may ask, picks
        # apps.connections.open goes to SLACK_API_URL too, with the app-level token.
        socket_client = AsyncWebClient(
            token=app_token, base_url=settings.slack_api_url, session=self._session
        )
        self.socket = TimedSocketModeHandler(
            self.app, app_token, web_client=socket_client, ping_interval=self.socket_ping_interval
        )
        self.socket.metrics = self.metrics
        await self.socket.connect_async()
        self.health = HealthServer(
            port=settings.health_port, ready=self.ready, metrics=self._metrics_text
        )
        await self.health.start()
        # Actions interrupted by a crash or restart are finished (or found done) and reported.
        for outcome in await approvals.reconcile():
            await report_reconciled(client, outcome)
        self._sweeper = asyncio.create_task(expiry_loop(self.deps, client))
        self._background = [asyncio.create_task(loop()) for loop in services.background]
        memory_handlers.install(self.registry)
        channel_config.install(self.registry, self.deps)
        index_capability.install(self.registry, core.tools, services)
        services.repo_index_missing = "Repository indexing is starting up; try again in a moment."
        # The memory store (embedding model, mem0, Qdrant Edge) opens in the background: Slack
        # is answered from the first second, memories join as soon as they are ready.
        self._memory_task = asyncio.create_task(self._open_memory(store, github))
        # litellm takes seconds to import; do it now, off the event loop, not on the first question.
        self._warm = asyncio.create_task(asyncio.to_thread(warm_up_models, core))
        log.info(
            "connected to Slack",
            extra={"team": auth.get("team"), "bot_user_id": auth.get("user_id")},
        )

    async def _open_memory(self, store: Store, github: GitHub) -> None:
        """Open memory and the repository index; on failure run without them and say why."""
        services, core = self.deps.services, self.deps.core
        try:
            from integrations.memory import MemoryService, memory_tools

            memory = await MemoryService.open(self.settings, models=core.models)
        except ConfigError as exc:
            log.error("memory is off", extra={"reason": str(exc)})
            services.memory_missing = services.repo_index_missing = str(exc)
            self.memory_ready.set()
            return
        except Exception:
            log.exception("memory could not start")
            services.memory_missing = services.repo_index_missing = (
                "Memory could not start; see the logs."
            )
            self.memory_ready.set()
            return
        self._memory = memory
        for memory_tool in memory_tools(memory):
            if core.tools.get(memory_tool.name) is None:
                core.tools.add(memory_tool)
        core.memory = services.memory = memory
        edge = memory.edge
        if not github.configured:
            services.repo_index_missing = "Repository indexing needs GitHub: set GITHUB_TOKEN."
        elif edge is None:
            services.repo_index_missing = (
                "Repository indexing needs the embedded store (it does not use QDRANT_URL yet)."
            )
        else:
            collection = await asyncio.to_thread(edge.collection, "code", memory.embedder.dims)
            services.repo_index = RepoIndex(
                github=github, store=store, collection=collection, embedder=memory.embedder,
                web_url=web_url_for(self.settings.github_api_url),
            )  # fmt: skip
            services.repo_index_missing = None
            index_capability.install(self.registry, core.tools, services)
        log.info("memory ready", extra={"backend": memory.backend})
        self.memory_ready.set()

    async def ready(self) -> bool:
        """True while Socket Mode is connected and the database answers."""
        if self.socket is None or self.deps is None:
            return False
        connected = await self.socket.client.is_connected()
        return connected and await self.deps.store.ping()

    def _metrics_text(self) -> str:
        inflight = len(self.deps.inflight) if self.deps else 0
        # Replies waiting for one of the model slots: the queue depth.
        waiting = len(getattr(self.deps.reply_slots, "_waiters", None) or ()) if self.deps else 0
        queued = self.deps.limiter.queued if self.deps and self.deps.limiter else 0
        return self.metrics.render(
            {
                "sophia_inflight_replies": inflight,
                "sophia_replies_waiting": waiting,
                "sophia_requests_queued": queued,
            }
        )

    async def stop(self) -> None:
        """Stop taking events, let in-flight replies finish (bounded), then close everything."""
        grace = self.settings.shutdown_grace.total_seconds()
        if self.socket:
            await self.socket.close_async()  # Slack now sends events to other connections
        if self.deps:
            cut = await self.deps.inflight.drain(grace)
            if cut:
                log.warning("shutdown cut off in-flight replies", extra={"count": cut})
        if self._sweeper:
            self._sweeper.cancel()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._memory_task:
            await self._memory_task  # a half-open store must not outlive us
        if self.deps:
            await self.deps.core.drain_learning()
        if self._memory:
            await self._memory.close()  # releases the embedded store's file lock
        if self.deps and self.deps.services.research:
            await self.deps.services.research.close()
        if self._warm:
            await self._warm
        if self.health:
            await self.health.stop()
        if self.deps:
            await self.deps.store.close()
        if self._session:
            await self._session.close()
        if self._lock:
            self._lock.release()
        log.info("stopped")

    async def _freeze_heap(self) -> None:
        """Once litellm and the memory store are loaded, move their objects out of the cyclic
        GC's reach: a full collection over that heap paused the event loop for hundreds of ms,
        and acks waited behind it."""
        await self.memory_ready.wait()
        if self._warm:
            await asyncio.shield(self._warm)
        gc.collect()
        gc.freeze()

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down cleanly."""
        # Background threads (memory, litellm) hold the GIL for up to the switch interval
        # (5 ms by default) while an ack waits; 1 ms keeps acks quick under that load.
        sys.setswitchinterval(0.001)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await self.start()
        settle = asyncio.create_task(self._freeze_heap())
        try:
            await stopping.wait()
            log.info("shutting down")
        finally:
            settle.cancel()
            await self.stop()
