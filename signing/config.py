"""The ``[signing]`` config section parsed into typed dataclasses, rejecting unknown keys loudly.

Example (TOML)::

    [signing]
    organization = "Example Bank"
    trust_roots = ["/etc/bank/root.pem"]     # extra anchors: production root, TSA root
    fetch_foreign_crls = true                # fetch the production root's CRL over HTTP

    [signing.issuing_ca]                     # absent: the dev PKI's issuing CA
    kind = "pkcs11"
    module = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "bank"
    key_label = "issuing"
    pin_env = "RTC_ISSUING_PIN"              # secrets come from the environment, or `pin = "..."`
    cert = "/etc/bank/issuing.pem"           # or cert_label = "..." to read it from the token
    chain = ["/etc/bank/root.pem"]

    [signing.seal]                           # absent: the dev PKI's seal
    kind = "pkcs12"
    path = "/etc/bank/seal.p12"
    passphrase_env = "RTC_SEAL_PASSPHRASE"

    [signing.tsa]                            # absent: the in-process dev TSA
    url = "https://tsa.example/rfc3161"
    timeout_s = 10
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SigningConfigError
from .keys import KeySourceConfig, Pkcs11KeyConfig, Pkcs12KeyConfig
from .service import SigningConfig
from .tsa import HttpTsaConfig

_TOP = {"organization", "trust_roots", "fetch_foreign_crls", "seal", "issuing_ca", "tsa"}
_PKCS12 = {"kind", "path", "passphrase", "passphrase_env", "chain"}
_PKCS11 = {"kind", "module", "token_label", "key_label", "pin", "pin_env", "cert", "cert_label", "chain"}
_TSA = {"url", "timeout_s", "username", "password", "password_env"}


class _Reader:
    def __init__(self, data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        if not isinstance(data, Mapping):
            raise SigningConfigError(f"{where} must be a table")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SigningConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
        self.data = data
        self.where = where

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise SigningConfigError(f"{self.where}.{key} must be a string")
        return value

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise SigningConfigError(f"{self.where}.{key} is required")
        return value

    def paths(self, key: str, base: Path) -> tuple[Path, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SigningConfigError(f"{self.where}.{key} must be a list of paths")
        return tuple(base / v for v in value)

    def secret(self, key: str, environ: Mapping[str, str]) -> str | None:
        inline = self.text(key)
        env_name = self.text(f"{key}_env")
        if inline is not None and env_name is not None:
            raise SigningConfigError(f"{self.where}: give {key} or {key}_env, not both")
        if env_name is not None:
            if env_name not in environ:
                raise SigningConfigError(
                    f"{self.where}.{key}_env: environment variable {env_name} is not set"
                )
            return environ[env_name]
        return inline


def _key_source(
    data: Mapping[str, Any], where: str, base: Path, environ: Mapping[str, str]
) -> KeySourceConfig:
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == "pkcs12":
        r = _Reader(data, where, _PKCS12)
        return Pkcs12KeyConfig(
            path=base / r.required("path"),
            passphrase=r.secret("passphrase", environ),
            chain_paths=r.paths("chain", base),
        )
    if kind == "pkcs11":
        r = _Reader(data, where, _PKCS11)
        pin = r.secret("pin", environ)
        if pin is None:
            raise SigningConfigError(f"{where}: pin or pin_env is required")
        cert = r.text("cert")
        return Pkcs11KeyConfig(
            module_path=Path(r.required("module")),
            token_label=r.required("token_label"),
            key_label=r.required("key_label"),
            pin=pin,
            cert_path=base / cert if cert else None,
            cert_label=r.text("cert_label"),
            chain_paths=r.paths("chain", base),
        )
    raise SigningConfigError(f'{where}.kind must be "pkcs12" or "pkcs11"')


def signing_config_from_mapping(
    section: Mapping[str, Any],
    *,
    crl_base_url: str,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> SigningConfig:
    """Build a ``SigningConfig`` from the ``[signing]`` table; relative paths are under ``base_dir``.

    ``crl_base_url`` comes from the server (its public URL plus the CRL route).
    """
    env = os.environ if environ is None else environ
    r = _Reader(section, "signing", _TOP)
    fetch = section.get("fetch_foreign_crls", False)
    if not isinstance(fetch, bool):
        raise SigningConfigError("signing.fetch_foreign_crls must be true or false")
    tsa: HttpTsaConfig | None = None
    if "tsa" in section:
        t = _Reader(section["tsa"], "signing.tsa", _TSA)
        timeout = section["tsa"].get("timeout_s", 10.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise SigningConfigError("signing.tsa.timeout_s must be a positive number")
        url = t.required("url")
        if not url.startswith(("http://", "https://")):
            raise SigningConfigError("signing.tsa.url must be an http(s) URL")
        tsa = HttpTsaConfig(
            url=url, timeout_s=float(timeout), username=t.text("username"), password=t.secret("password", env)
        )
    return SigningConfig(
        crl_base_url=crl_base_url,
        organization=r.text("organization", "rtc-server development") or "rtc-server development",
        seal=_key_source(section["seal"], "signing.seal", base_dir, env) if "seal" in section else None,
        issuing_ca=(
            _key_source(section["issuing_ca"], "signing.issuing_ca", base_dir, env)
            if "issuing_ca" in section
            else None
        ),
        tsa=tsa,
        trust_roots=r.paths("trust_roots", base_dir),
        fetch_foreign_crls=fetch,
    )
