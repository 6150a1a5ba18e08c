"""The files an operator copies as they are: manifest, .env.example, Dockerfile, fly.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from bot.doctor import BOT_SCOPES
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_is_a_socket_mode_app_with_the_command_events_and_scopes():
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]  # Socket Mode: no public URL
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "assistant_thread_started", "app_home_opened"} <= events
    features = manifest["features"]
    assert features["app_home"]["home_tab_enabled"] and features["app_home"]["messages_tab_enabled"]
    assert [c["command"] for c in features["slash_commands"]] == ["/sophia"]
    shortcuts = {s["callback_id"]: s for s in features["shortcuts"]}
    assert set(shortcuts) == {"summarise_thread", "translate", "ask_about", "remember_this"}
    for shortcut in shortcuts.values():  # Slack's limits on message shortcuts
        assert shortcut["type"] == "message"
        assert len(shortcut["name"]) <= 24 and len(shortcut["description"]) <= 100
    # Doctor checks the granted scopes against this list; the two must agree.
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    for name, field in Settings.model_fields.items():
        if name == "models":
            continue
        alias = field.validation_alias.choices[0]
        assert alias in documented, f"{alias} is missing from .env.example"
    for route in ("REASONING", "CODING", "SPEED", "ANALYSIS", "FALLBACK"):
        assert f"SOPHIA_MODELS__{route}" in documented


def test_dockerfile_runs_sophia_as_a_non_root_user_with_data_on_a_volume():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["sophia", "run"\]$', text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "SOPHIA_DATA_DIR=/data" in text


def test_fly_toml_mounts_the_data_dir_and_checks_healthz():
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    assert fly["env"]["SOPHIA_DATA_DIR"] == fly["mounts"][0]["destination"] == "/data"
    check = fly["checks"]["health"]
    assert check["type"] == "http" and check["path"] == "/healthz"
    assert str(check["port"]) == fly["env"]["SOPHIA_HEALTH_PORT"]
    assert "http_service" not in fly and "services" not in fly  # Socket Mode dials out
    assert fly["kill_signal"] == "SIGTERM"
