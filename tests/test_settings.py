"""The configuration contract: names, defaults, durations, token checks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import check_slack_tokens
from bot.core.errors import ConfigError
from bot.settings import Settings, parse_duration


def test_setting_names_and_defaults_follow_the_contract(monkeypatch):
    for name, value in {
        "SLACK_API_URL": "http://slack.internal/api/",
        "SOPHIA_DATA_DIR": "/var/sophia",
        "SOPHIA_LLM_API_BASE": "http://vllm:8000/v1",
        "SOPHIA_MODELS__CODING": "openai/qwen-coder",
        "SOPHIA_APPROVERS": "U1, U2 S0GROUP",
        "SOPHIA_APPROVAL_TTL": "90s",
        "SOPHIA_LOG_FORMAT": "JSON",
        "SOPHIA_HEALTH_PORT": "9090",
        "GITHUB_API_URL": "https://ghe.example.com/api/v3",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings(_env_file=None)
    assert s.slack_api_url == "http://slack.internal/api/"
    assert str(s.data_dir) == "/var/sophia"
    assert s.resolved_database_url() == "sqlite:////var/sophia/sophia.db"
    assert s.models.coding == "openai/qwen-coder"
    assert s.models.reasoning == "openrouter/anthropic/claude-sonnet-4"
    assert s.approvers == ["U1", "U2", "S0GROUP"]
    assert s.approval_ttl == timedelta(seconds=90)
    assert s.log_format == "json"
    assert s.health_port == 9090
    assert s.github_api_url == "https://ghe.example.com/api/v3"


def test_defaults(monkeypatch):
    for name in ("SOPHIA_APPROVERS", "SOPHIA_APPROVAL_TTL", "SLACK_API_URL", "FLY_API_URL"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.approvers == [] and s.approval_ttl == timedelta(minutes=30)
    assert s.allow_self_approval is False
    assert s.fly_api_url == "https://api.machines.dev"
    assert s.lambda_api_url == "https://cloud.lambdalabs.com/api/v1"
    assert s.health_port == 8080 and s.log_content is False


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_bad_duration_says_how_to_write_one():
    with pytest.raises(ValueError, match="90s, 30m or 2h"):
        parse_duration("soon")


def test_secrets_never_print():
    s = Settings(_env_file=None, slack_bot_token="xoxb-secret-value-123")
    assert "xoxb-secret-value-123" not in repr(s)
    assert "xoxb-secret-value-123" in s.secrets()


@pytest.mark.parametrize(
    ("bot", "app", "message"),
    [
        (None, None, "Missing SLACK_BOT_TOKEN and SLACK_APP_TOKEN"),
        ("xoxb-1", None, "Missing SLACK_APP_TOKEN"),
        ("xapp-1-abc", "xoxb-1", "did you swap the two?"),
        ("nonsense", "xapp-1", "SLACK_BOT_TOKEN must be a bot token starting with xoxb-"),
        ("xoxb-1", "nonsense", "SLACK_APP_TOKEN must be an app-level token starting with xapp-"),
    ],
)
def test_token_problems_name_the_variable_and_where_to_get_it(bot, app, message):
    s = Settings(_env_file=None, slack_bot_token=bot, slack_app_token=app)
    with pytest.raises(ConfigError) as info:
        check_slack_tokens(s)
    assert message in str(info.value)
    assert "connections:write" in str(info.value)  # says where the app token comes from
