"""Sophia's configuration: one typed object read from the environment and `.env`.

The setting names are a contract (DESIGN.md §2): deployments, docs and tests rely on
them, so they are spelled out as aliases rather than derived from field names.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, BaseModel, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """Read `90s`, `30m`, `2h`, `1d` or a bare number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write it like 90s, 30m or 2h")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNITS[unit or "s"])


def _split_ids(value: object) -> list[str]:
    """Comma- or space-separated IDs, as people paste them into an env var."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part for part in re.split(r"[,\s]+", str(value)) if part]


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
IdList = Annotated[list[str], NoDecode, BeforeValidator(_split_ids)]


class Models(BaseModel):
    """litellm model string per route; `SOPHIA_MODELS__CODING=...` overrides one."""

    reasoning: str = "openrouter/anthropic/claude-sonnet-4"
    coding: str = "openrouter/deepseek/deepseek-chat"
    speed: str = "openrouter/google/gemini-2.5-flash"
    analysis: str = "openrouter/qwen/qwen3-coder"
    fallback: str = "openrouter/openai/gpt-4o-mini"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Every knob Sophia has; see `.env.example` for a line on each."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    # Slack
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("SLACK_API_URL"))
    slack_user_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_USER_TOKEN"))

    # State
    data_dir: Path = Field(Path(".sophia"), validation_alias=_env("SOPHIA_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    qdrant_url: str | None = Field(None, validation_alias=_env("QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(None, validation_alias=_env("QDRANT_API_KEY"))

    # Models
    openrouter_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENROUTER_API_KEY"))
    llm_api_base: str | None = Field(None, validation_alias=_env("SOPHIA_LLM_API_BASE"))
    llm_api_key: SecretStr | None = Field(None, validation_alias=_env("SOPHIA_LLM_API_KEY"))
    models: Models = Field(default_factory=Models, validation_alias=_env("SOPHIA_MODELS"))
    llm_timeout: float = Field(60.0, validation_alias=_env("SOPHIA_LLM_TIMEOUT"))
    history_tokens: int = Field(12_000, validation_alias=_env("SOPHIA_HISTORY_TOKENS"))
    embeddings: str | None = Field(None, validation_alias=_env("SOPHIA_EMBEDDINGS"))
    max_tool_steps: int = Field(8, validation_alias=_env("SOPHIA_MAX_TOOL_STEPS"))
    daily_budget_usd: float | None = Field(None, validation_alias=_env("SOPHIA_DAILY_BUDGET_USD"))
    user_daily_budget_usd: float | None = Field(
        None, validation_alias=_env("SOPHIA_USER_DAILY_BUDGET_USD")
    )

    # Outside systems (used by later capabilities; named here so doctor can report them)
    github_token: SecretStr | None = Field(None, validation_alias=_env("GITHUB_TOKEN"))
    github_api_url: str = Field("https://api.github.com", validation_alias=_env("GITHUB_API_URL"))
    fly_api_token: SecretStr | None = Field(None, validation_alias=_env("FLY_API_TOKEN"))
    fly_api_url: str = Field("https://api.machines.dev", validation_alias=_env("FLY_API_URL"))
    lambda_api_key: SecretStr | None = Field(None, validation_alias=_env("LAMBDA_API_KEY"))
    lambda_api_url: str = Field(
        "https://cloud.lambdalabs.com/api/v1", validation_alias=_env("LAMBDA_API_URL")
    )
    hubspot_access_token: SecretStr | None = Field(
        None, validation_alias=_env("HUBSPOT_ACCESS_TOKEN")
    )
    hubspot_api_url: str = Field("https://api.hubapi.com", validation_alias=_env("HUBSPOT_API_URL"))
    gong_access_key: SecretStr | None = Field(None, validation_alias=_env("GONG_ACCESS_KEY"))
    gong_access_key_secret: SecretStr | None = Field(
        None, validation_alias=_env("GONG_ACCESS_KEY_SECRET")
    )
    gong_api_url: str = Field("https://api.gong.io", validation_alias=_env("GONG_API_URL"))
    serper_api_key: SecretStr | None = Field(None, validation_alias=_env("SERPER_API_KEY"))
    brave_api_key: SecretStr | None = Field(None, validation_alias=_env("BRAVE_API_KEY"))
    tavily_api_key: SecretStr | None = Field(None, validation_alias=_env("TAVILY_API_KEY"))
    lambda_ssh_key_name: str | None = Field(None, validation_alias=_env("LAMBDA_SSH_KEY_NAME"))
    lambda_ssh_key_path: Path | None = Field(None, validation_alias=_env("LAMBDA_SSH_KEY_PATH"))
    hubspot_portal_id: str | None = Field(None, validation_alias=_env("HUBSPOT_PORTAL_ID"))
    asana_access_token: SecretStr | None = Field(None, validation_alias=_env("ASANA_ACCESS_TOKEN"))
    asana_api_url: str = Field(
        "https://app.asana.com/api/1.0", validation_alias=_env("ASANA_API_URL")
    )

    # Research (DESIGN.md §7: each *_API_URL is the provider's base, without the path)
    serper_api_url: str = Field(
        "https://google.serper.dev", validation_alias=_env("SERPER_API_URL")
    )
    brave_api_url: str = Field(
        "https://api.search.brave.com", validation_alias=_env("BRAVE_API_URL")
    )
    tavily_api_url: str = Field("https://api.tavily.com", validation_alias=_env("TAVILY_API_URL"))
    exa_api_key: SecretStr | None = Field(None, validation_alias=_env("EXA_API_KEY"))
    exa_api_url: str = Field("https://api.exa.ai", validation_alias=_env("EXA_API_URL"))
    serpapi_api_key: SecretStr | None = Field(None, validation_alias=_env("SERPAPI_API_KEY"))
    serpapi_api_url: str = Field("https://serpapi.com", validation_alias=_env("SERPAPI_API_URL"))
    brightdata_api_key: SecretStr | None = Field(None, validation_alias=_env("BRIGHTDATA_API_KEY"))
    brightdata_api_url: str = Field(
        "https://api.brightdata.com", validation_alias=_env("BRIGHTDATA_API_URL")
    )
    brightdata_zone: str = Field("web_unlocker1", validation_alias=_env("BRIGHTDATA_ZONE"))
    zenrows_api_key: SecretStr | None = Field(None, validation_alias=_env("ZENROWS_API_KEY"))
    zenrows_api_url: str = Field(
        "https://api.zenrows.com", validation_alias=_env("ZENROWS_API_URL")
    )
    research_providers: IdList = Field(
        default_factory=list, validation_alias=_env("SOPHIA_RESEARCH_PROVIDERS")
    )
    research_allow_private: bool = Field(
        False, validation_alias=_env("SOPHIA_RESEARCH_ALLOW_PRIVATE")
    )
    research_cache_ttl: Duration = Field(
        timedelta(hours=6), validation_alias=_env("SOPHIA_RESEARCH_CACHE_TTL")
    )
    research_concurrency: int = Field(5, validation_alias=_env("SOPHIA_RESEARCH_CONCURRENCY"))

    # Self-improvement, deploys and monitoring
    self_repo: str | None = Field(None, validation_alias=_env("SOPHIA_SELF_REPO"))
    self_fly_app: str | None = Field(None, validation_alias=_env("SOPHIA_SELF_FLY_APP"))
    monitored_apps: IdList = Field(
        default_factory=list, validation_alias=_env("SOPHIA_MONITORED_APPS")
    )
    monitored_repos: IdList = Field(
        default_factory=list, validation_alias=_env("SOPHIA_MONITORED_REPOS")
    )
    alert_channel: str | None = Field(None, validation_alias=_env("SOPHIA_ALERT_CHANNEL"))
    monitor_interval: Duration = Field(
        timedelta(seconds=60), validation_alias=_env("SOPHIA_MONITOR_INTERVAL")
    )
    deploy_check_timeout: Duration = Field(
        timedelta(seconds=120), validation_alias=_env("SOPHIA_DEPLOY_CHECK_TIMEOUT")
    )
    gpu_idle_hours: float = Field(8.0, validation_alias=_env("SOPHIA_GPU_IDLE_HOURS"))

    # Business data and MCP
    business_users: IdList = Field(
        default_factory=list, validation_alias=_env("SOPHIA_BUSINESS_USERS")
    )
    mcp_config: Path | None = Field(None, validation_alias=_env("SOPHIA_MCP_CONFIG"))
    mcp_token: SecretStr | None = Field(None, validation_alias=_env("SOPHIA_MCP_TOKEN"))
    mcp_port: int | None = Field(None, validation_alias=_env("SOPHIA_MCP_PORT"))

    # People and approvals
    approvers: IdList = Field(default_factory=list, validation_alias=_env("SOPHIA_APPROVERS"))
    approval_ttl: Duration = Field(
        timedelta(minutes=30), validation_alias=_env("SOPHIA_APPROVAL_TTL")
    )
    allow_self_approval: bool = Field(False, validation_alias=_env("SOPHIA_ALLOW_SELF_APPROVAL"))
    admins: IdList = Field(default_factory=list, validation_alias=_env("SOPHIA_ADMINS"))
    merge_method: str = Field("squash", validation_alias=_env("SOPHIA_MERGE_METHOD"))
    user_rpm: int | None = Field(None, validation_alias=_env("SOPHIA_USER_RPM"))
    workspace_rpm: int | None = Field(None, validation_alias=_env("SOPHIA_WORKSPACE_RPM"))
    max_tokens_per_request: int | None = Field(
        None, validation_alias=_env("SOPHIA_MAX_TOKENS_PER_REQUEST")
    )
    allowed_users: IdList = Field(
        default_factory=list, validation_alias=_env("SOPHIA_ALLOWED_USERS")
    )
    allowed_channels: IdList = Field(
        default_factory=list, validation_alias=_env("SOPHIA_ALLOWED_CHANNELS")
    )

    # Operations
    log_format: str = Field("text", validation_alias=_env("SOPHIA_LOG_FORMAT"))
    log_content: bool = Field(False, validation_alias=_env("SOPHIA_LOG_CONTENT"))
    log_level: str = Field("INFO", validation_alias=_env("SOPHIA_LOG_LEVEL"))
    health_port: int = Field(8080, validation_alias=_env("SOPHIA_HEALTH_PORT"))
    shutdown_grace: Duration = Field(
        timedelta(seconds=10), validation_alias=_env("SOPHIA_SHUTDOWN_GRACE")
    )

    @field_validator("merge_method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        value = value.lower()
        if value not in ("squash", "merge", "rebase"):
            raise ValueError("SOPHIA_MERGE_METHOD must be squash, merge or rebase")
        return value

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        value = value.lower()
        if value not in ("text", "json"):
            raise ValueError("SOPHIA_LOG_FORMAT must be `text` or `json`")
        return value

    @property
    def sqlite_path(self) -> Path:
        """Where the SQLite state lives when DATABASE_URL is not set."""
        return self.data_dir / "sophia.db"

    def resolved_database_url(self) -> str:
        """DATABASE_URL, or the SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    def secrets(self) -> list[str]:
        """Every configured secret value, so logs and Slack output can redact them."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and `.env`), with keyword overrides for tests."""
    return Settings(**overrides)
