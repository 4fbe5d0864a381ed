"""Typed configuration: rtc_server/default.toml, then RTC_SECTION__KEY environment variables, then CLI flags.

Unknown sections or keys and values of the wrong type are rejected with a `ConfigError` naming the key,
so a typo in a bank's deployment fails at start rather than silently using a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "default.toml"
ENV_PREFIX = "RTC_"


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid; `key` names it as `section.key`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config {key}: {message}")
        self.key = key


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str = ""
    credential: str = ""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8443
    tls: bool = True
    data_dir: str = "./var"
    public_url: str = ""
    shutdown_timeout_s: float = 10.0


@dataclass(frozen=True)
class StorageConfig:
    database_url: str = ""


@dataclass(frozen=True)
class AuthConfig:
    token_ttl_s: int = 28800
    invite_ttl_s: int = 86400
    login_max_failures: int = 5
    login_window_s: int = 300


@dataclass(frozen=True)
class HttpConfig:
    cors_origins: list[str] = field(default_factory=list)
    max_document_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class MediaConfig:
    ice_servers: list[IceServer] = field(default_factory=list)
    max_peers: int = 200
    # [min, max] ms of playout delay asked of viewers' browsers; [] asks nothing (browser default).
    viewer_playout_delay_ms: list[int] = field(default_factory=lambda: [0, 0])
    # Ask browser publishers for RED/ULPFEC parity with VP8 (repairs uplink loss without a round trip).
    publisher_fec: bool = True
    # Answer browser publishers' transport-cc: their own bandwidth estimator runs on our feedback.
    publisher_transport_cc: bool = False
    # Loss fraction on a viewer's link at which each video packet goes to it twice; 0 = never.
    viewer_redundancy_loss: float = 0.02


@dataclass(frozen=True)
class RecordingConfig:
    segment_duration_s: float = 4.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class SigningSection:
    """The `[signing]` table. Key sources and the TSA stay raw tables here: `signing_config_from_mapping`
    parses and checks them (unknown keys included) when the config is validated."""

    organization: str = "rtc-server development"
    trust_roots: list[str] = field(default_factory=list)
    fetch_foreign_crls: bool = False
    seal: dict[str, Any] = field(default_factory=dict)
    issuing_ca: dict[str, Any] = field(default_factory=dict)
    tsa: dict[str, Any] = field(default_factory=dict)

    def as_mapping(self) -> dict[str, Any]:
        """The table as `signing_config_from_mapping` reads it; empty sub-tables mean "not configured"."""
        table: dict[str, Any] = {
            "organization": self.organization,
            "trust_roots": list(self.trust_roots),
            "fetch_foreign_crls": self.fetch_foreign_crls,
        }
        for name in ("seal", "issuing_ca", "tsa"):
            if getattr(self, name):
                table[name] = dict(getattr(self, name))
        return table


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    signing: SigningSection = field(default_factory=SigningSection)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir).resolve()

    @property
    def base_url(self) -> str:
        """The URL the outside world reaches this server at (invite links, certificate URLs)."""
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        scheme = "https" if self.server.tls else "http"
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        return f"{scheme}://{host}:{self.server.port}"


_POSITIVE = {
    "server.shutdown_timeout_s",
    "auth.token_ttl_s",
    "auth.invite_ttl_s",
    "auth.login_max_failures",
    "auth.login_window_s",
    "http.max_document_bytes",
    "media.max_peers",
    "recording.segment_duration_s",
}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check `value` against the dataclass field type `tp`, converting where TOML and JSON differ."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(key, f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {value!r}")
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table, got {value!r}")
        return dict(value)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table, got {value!r}")
        return _build(key, tp, value)
    if isinstance(tp, types.UnionType):  # pragma: no cover - no optional fields today
        raise ConfigError(key, "unsupported type")
    raise ConfigError(key, f"unsupported type {tp!r}")


def _build(prefix: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in known:
            raise ConfigError(key, "unknown key")
        kwargs[name] = _coerce(key, hints[name], value)
    if cls is IceServer and "urls" in kwargs:
        for url in kwargs["urls"]:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ConfigError(f"{prefix}.urls", f"not a STUN/TURN URL: {url!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(prefix, str(exc)) from None


def _parse_env_value(key: str, tp: Any, raw: str) -> Any:
    if tp is str:
        return raw
    if tp is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, f"expected true or false, got {raw!r}")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(key, f"expected an integer, got {raw!r}") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {raw!r}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(key, f"expected JSON, got {raw!r}") from None


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        dotted = f"{section}.{key}"
        if section not in sections:
            raise ConfigError(dotted, f"unknown section (from environment variable {name})")
        section_hints = typing.get_type_hints(hints[section])
        if key not in section_hints:
            raise ConfigError(dotted, f"unknown key (from environment variable {name})")
        out.setdefault(section, {})[key] = _parse_env_value(dotted, section_hints[key], raw)
    return out


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Load `path` (default rtc_server/default.toml), apply environment, then explicit overrides."""
    path = path or DEFAULT_CONFIG_PATH
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file", f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"{path} is not valid TOML: {exc}") from None
    layers = [_env_overrides(os.environ if env is None else env), overrides or {}]
    for layer in layers:
        for section, values in layer.items():
            if not isinstance(data.get(section, {}), dict):
                raise ConfigError(section, "expected a table")
            data.setdefault(section, {}).update(values)
    config: Config = _build("", Config, data)
    validate(config)
    return config


def validate(config: Config) -> None:
    for dotted in _POSITIVE:
        section, key = dotted.split(".")
        if getattr(getattr(config, section), key) <= 0:
            raise ConfigError(dotted, "must be positive")
    if not 0 <= config.server.port <= 65535:
        raise ConfigError("server.port", "must be from 0 (any free port) to 65535")
    if config.log.level not in _LOG_LEVELS:
        raise ConfigError("log.level", f"must be one of {sorted(_LOG_LEVELS)}")
    for i, origin in enumerate(config.http.cors_origins):
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(f"http.cors_origins[{i}]", f"not an origin: {origin!r}")
    # 0.2 is media.redundancy.MAX_LOSS, not imported: the CLI's offline commands do not load aiortc.
    if not 0 <= config.media.viewer_redundancy_loss < 0.2:
        raise ConfigError(
            "media.viewer_redundancy_loss",
            "must be a loss fraction from 0 (never) to below 0.2 (a failing link)",
        )
    delay = config.media.viewer_playout_delay_ms
    if delay and not (len(delay) == 2 and 0 <= delay[0] <= delay[1] <= 40_950):
        raise ConfigError(
            "media.viewer_playout_delay_ms", "must be [] or [min, max] with 0 <= min <= max <= 40950"
        )
    if config.server.public_url and not config.server.public_url.startswith(("http://", "https://")):
        raise ConfigError("server.public_url", "must start with http:// or https://")
    _validate_signing(config)


def _validate_signing(config: Config) -> None:
    # Parsed here too so that a typo in a key source fails at start, naming the key.
    from signing import SigningConfigError, signing_config_from_mapping

    try:
        signing_config_from_mapping(
            config.signing.as_mapping(), crl_base_url=config.base_url, base_dir=Path.cwd()
        )
    except SigningConfigError as exc:
        raise ConfigError("signing", str(exc)) from None
