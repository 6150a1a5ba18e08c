"""`SOPHIA_MCP_CONFIG`: the `mcpServers` JSON that Claude Desktop and Cursor use, read for Sophia.

    {"mcpServers": {
        "weather": {"command": "uvx", "args": ["mcp-weather"], "env": {"KEY": "${WEATHER_KEY}"}},
        "linear": {"url": "https://mcp.linear.app/mcp",
                   "headers": {"Authorization": "Bearer ${LINEAR_TOKEN}"}, "approval": "all"}}}

`${VAR}` (or `${env:VAR}`) is taken from Sophia's environment, so the file holds no secrets.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.errors import ConfigError
from bot.redact import redact

SAFE = re.compile(r"[^a-zA-Z0-9_-]")  # what may not appear in a model function name
_VAR = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ServerConfig:
    """One entry of `mcpServers`: a command to run (stdio) or a URL (streamable HTTP)."""

    name: str  # the key, made safe for tool names
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    approval_all: bool = False  # `"approval": "all"`: every tool waits for a person

    @property
    def where(self) -> str:
        """How it is reached, for people (never the env or headers: they hold secrets)."""
        if self.url:
            return f"HTTP {self.url.split('?', 1)[0]}"
        return f"stdio `{Path(self.command or '').name}`"


def _expand(value: Any, where: str) -> str:
    """`${VAR}` / `${env:VAR}` from Sophia's environment, so secrets stay out of the file."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"SOPHIA_MCP_CONFIG: {where} uses ${{{name}}}, which is not set.",
                variable="SOPHIA_MCP_CONFIG",
            )
        return os.environ[name]

    return _VAR.sub(one, str(value))


def load_config(path: Path) -> list[ServerConfig]:
    """The servers in an `mcpServers` file; a ConfigError says plainly what is wrong."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"SOPHIA_MCP_CONFIG ({path}): {problem}", variable="SOPHIA_MCP_CONFIG")

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise bad(f"cannot read the file ({exc.strerror or exc}).") from None
    except json.JSONDecodeError as exc:
        raise bad(f"not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise bad('expected an object with "mcpServers": {"name": {...}, ...}.')
    configs: list[ServerConfig] = []
    for key, entry in servers.items():
        if not isinstance(entry, dict):
            raise bad(f"server {key!r} must be an object.")
        if entry.get("disabled") is True:
            continue
        name = SAFE.sub("_", str(key))[:40] or "server"
        approval = entry.get("approval")
        if approval not in (None, "all"):
            raise bad(f'server {key!r}: "approval" may only be "all".')
        if entry.get("type") == "sse":
            raise bad(f"server {key!r}: the old SSE transport is not supported; use its streamable HTTP URL.")  # fmt: skip
        env = {k: _expand(v, f"{key}.env.{k}") for k, v in (entry.get("env") or {}).items()}
        headers = {
            k: _expand(v, f"{key}.headers.{k}") for k, v in (entry.get("headers") or {}).items()
        }
        redact.add([*env.values(), *headers.values()])  # errors may echo them back
        if entry.get("url"):
            config = ServerConfig(
                name, url=_expand(entry["url"], f"{key}.url"), headers=headers,
                approval_all=approval == "all",
            )  # fmt: skip
        elif entry.get("command"):
            args = [_expand(a, f"{key}.args") for a in entry.get("args") or []]
            config = ServerConfig(
                name, command=_expand(entry["command"], f"{key}.command"), args=args, env=env,
                approval_all=approval == "all",
            )  # fmt: skip
        else:
            raise bad(f'server {key!r} needs "command" (stdio) or "url" (streamable HTTP).')
        configs.append(config)
    return configs
