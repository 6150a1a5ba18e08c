"""Capabilities that work without Slack: `sophia ask` and `sophia mcp serve` install these.

`sophia run` installs every capability in its own block (bot/app.py), with the Slack listeners
some of them need; this list is the subset whose tools make sense in a terminal or over MCP.
"""

from __future__ import annotations

import importlib
import logging

from bot.registry import Registry
from bot.services import Services

log = logging.getLogger("sophia.capabilities")

# Each module has `install(registry, tools, services)`.
HEADLESS = (
    "integrations.github_capability",
    "integrations.research_capability",
    "integrations.lambda_capability",
    "integrations.business_capability",
)


def install_headless(services: Services, registry: Registry | None = None) -> None:
    """Install the Slack-free capabilities' tools (and subcommands, into `registry`)."""
    for module in HEADLESS:
        try:
            importlib.import_module(module).install(
                registry or Registry(), services.core.tools, services
            )
        except Exception:  # one capability failing must not take the others down
            log.exception("capability not available here", extra={"module": module})
