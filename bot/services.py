"""The capabilities a running Sophia has, handed to subcommands and tools in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.core.approvals import ApprovalRequest, Approvals
    from bot.core.orchestrator import Orchestrator
    from integrations.github import GitHub


@dataclass
class Services:
    """What is wired up; a capability without credentials is present but says so when used."""

    core: Orchestrator
    approvals: Approvals | None = None
    github: GitHub | None = None
    memory: Any = None  # integrations.memory.MemoryService, when it opened
    memory_missing: str | None = None  # why there is no memory (shown to people who ask)
    admins: Any = None  # who may see everyone's usage and change channel settings (SOPHIA_ADMINS)
    repo_index: Any = None  # integrations.repo_index.RepoIndex, when GitHub and memory are set up
    repo_index_missing: str | None = None  # why there is no index (names the variable)
    store: Any = None  # bot.store.Store: kv caches and state shared by replicas
    settings: Any = None  # bot.settings.Settings
    research: Any = None  # integrations.research (web search + page reading), when configured
    fly: Any = None  # integrations.fly.Fly
    lambda_cloud: Any = None  # integrations.lambda_labs.LambdaCloud
    business: Any = None  # the business sources for account briefs
    mcp: Any = None  # integrations.mcp_client.MCPClients
    # Loops a capability runs while Sophia runs (monitor, reminders): started after Slack
    # connects, cancelled on shutdown. Each must survive its own errors.
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Side-effect tool name → how to turn its arguments into a stored approval request.
    preparers: dict[str, Preparer] = field(default_factory=dict)


# (services, tool arguments, requester, channel, thread_ts) → the stored request
Preparer = Callable[
    ["Services", dict[str, Any], str, "str | None", "str | None"], Awaitable["ApprovalRequest"]
]
