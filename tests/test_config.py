"""Config: defaults, environment and flag overrides, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtc_server.cli import main
from rtc_server.config import ConfigError, load_config
from rtc_server.services import media_settings


def test_defaults_match_the_contract() -> None:
    config = load_config(env={})
    assert config.server.port == 8443 and config.server.host == "0.0.0.0" and config.server.tls
    assert config.server.data_dir == "./var"
    assert config.media.ice_servers == []  # never a public STUN server unasked
    assert config.http.cors_origins == []
    assert config.auth.token_ttl_s > 0 and config.auth.invite_ttl_s > 0
    assert config.base_url == "https://localhost:8443"


def test_environment_overrides() -> None:
    env = {
        "RTC_AUTH__TOKEN_TTL_S": "60",
        "RTC_SERVER__TLS": "false",
        "RTC_HTTP__CORS_ORIGINS": '["https://bank.example"]',
        "RTC_MEDIA__ICE_SERVERS": (
            '[{"urls": ["turn:turn.bank.example:3478"], "username": "u", "credential": "p"}]'
        ),
        "UNRELATED": "x",
    }
    config = load_config(env=env)
    assert config.auth.token_ttl_s == 60
    assert config.server.tls is False
    assert config.http.cors_origins == ["https://bank.example"]
    assert config.media.ice_servers[0].urls == ["turn:turn.bank.example:3478"]
    assert config.media.ice_servers[0].credential == "p"


def test_playout_delay_reaches_the_media_settings() -> None:
    assert media_settings(load_config(env={})).viewer_playout_delay_ms == (0, 0)
    config = load_config(env={"RTC_MEDIA__VIEWER_PLAYOUT_DELAY_MS": "[20, 400]"})
    assert media_settings(config).viewer_playout_delay_ms == (20, 400)
    # An empty list asks the browser for nothing: it keeps its own smoothing.
    config = load_config(env={"RTC_MEDIA__VIEWER_PLAYOUT_DELAY_MS": "[]"})
    assert media_settings(config).viewer_playout_delay_ms is None
    assert media_settings(load_config(env={})).publisher_fec is True
    assert media_settings(load_config(env={"RTC_MEDIA__PUBLISHER_FEC": "false"})).publisher_fec is False
    assert media_settings(load_config(env={})).publisher_transport_cc is False
    on = load_config(env={"RTC_MEDIA__PUBLISHER_TRANSPORT_CC": "true"})
    assert media_settings(on).publisher_transport_cc is True


def test_flags_override_environment() -> None:
    config = load_config(env={"RTC_SERVER__PORT": "9000"}, overrides={"server": {"port": 9100}})
    assert config.server.port == 9100


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"RTC_AUTH__TOKEN_TTL_S": "soon"}, "auth.token_ttl_s"),
        ({"RTC_AUTH__TOKEN_TTL_S": "-5"}, "auth.token_ttl_s"),
        ({"RTC_SERVER__TLS": "maybe"}, "server.tls"),
        ({"RTC_SERVER__PORT": "70000"}, "server.port"),
        ({"RTC_AUTH__TOKEN_TTL": "5"}, "auth.token_ttl"),
        ({"RTC_NOPE__X": "5"}, "nope.x"),
        ({"RTC_MEDIA__ICE_SERVERS": '[{"urls": ["http://x"]}]'}, "media.ice_servers[0].urls"),
        ({"RTC_MEDIA__ICE_SERVERS": '[{"url": "stun:x"}]'}, "media.ice_servers[0].url"),
        ({"RTC_HTTP__CORS_ORIGINS": '"https://a"'}, "http.cors_origins"),
        ({"RTC_LOG__LEVEL": "loud"}, "log.level"),
        ({"RTC_MEDIA__VIEWER_PLAYOUT_DELAY_MS": "[100, 50]"}, "media.viewer_playout_delay_ms"),
        ({"RTC_MEDIA__VIEWER_PLAYOUT_DELAY_MS": "[0]"}, "media.viewer_playout_delay_ms"),
        ({"RTC_MEDIA__VIEWER_PLAYOUT_DELAY_MS": "[0, 50000]"}, "media.viewer_playout_delay_ms"),
        ({"RTC_MEDIA__VIEWER_REDUNDANCY_LOSS": "1.5"}, "media.viewer_redundancy_loss"),
        ({"RTC_MEDIA__VIEWER_REDUNDANCY_LOSS": "0.2"}, "media.viewer_redundancy_loss"),
        ({"RTC_MEDIA__VIEWER_REDUNDANCY_LOSS": "-0.01"}, "media.viewer_redundancy_loss"),
    ],
)
def test_invalid_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert info.value.key == key
    assert key in str(info.value)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[auth]\ntoken_ttl_seconds = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == "auth.token_ttl_seconds"
    path.write_text("[auth\n")
    with pytest.raises(ConfigError):
        load_config(path, env={})


def test_cli_exits_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RTC_AUTH__TOKEN_TTL_S", "soon")
    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "auth.token_ttl_s" in capsys.readouterr().err


def test_cli_entry_point_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rtc_server.cli", "serve", "--data-dir", str(tmp_path), "--port", "0x10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2  # argparse rejects a non-integer port
    proc = subprocess.run(
        [sys.executable, "-m", "rtc_server.cli", "serve", "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "missing.toml" in proc.stderr
