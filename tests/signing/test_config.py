from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from signing import HttpTsaConfig, Pkcs11KeyConfig, Pkcs12KeyConfig, SigningConfig
from signing.config import signing_config_from_mapping
from signing.errors import SigningConfigError

EXAMPLE = """
[signing]
organization = "Example Bank"
trust_roots = ["root.pem"]
fetch_foreign_crls = true

[signing.issuing_ca]
kind = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "bank"
key_label = "issuing"
pin_env = "TEST_ISSUING_PIN"
cert = "issuing.pem"
chain = ["root.pem"]

[signing.seal]
kind = "pkcs12"
path = "/etc/bank/seal.p12"
passphrase_env = "TEST_SEAL_PASS"

[signing.tsa]
url = "https://tsa.example/rfc3161"
timeout_s = 7
"""

ENV = {"TEST_ISSUING_PIN": "1234", "TEST_SEAL_PASS": "s3cret"}


def _parse(text: str, env: dict[str, str] | None = None) -> SigningConfig:
    return signing_config_from_mapping(
        tomllib.loads(text)["signing"],
        crl_base_url="https://h/crl",
        base_dir=Path("/cfg"),
        environ=env or ENV,
    )


def test_full_example_parses_into_typed_config() -> None:
    cfg = _parse(EXAMPLE)
    assert cfg.organization == "Example Bank"
    assert cfg.trust_roots == (Path("/cfg/root.pem"),)
    assert cfg.fetch_foreign_crls is True
    assert cfg.issuing_ca == Pkcs11KeyConfig(
        Path("/usr/lib/softhsm/libsofthsm2.so"),
        "bank",
        "issuing",
        "1234",
        cert_path=Path("/cfg/issuing.pem"),
        chain_paths=(Path("/cfg/root.pem"),),
    )
    assert cfg.seal == Pkcs12KeyConfig(Path("/etc/bank/seal.p12"), "s3cret")
    assert cfg.tsa == HttpTsaConfig("https://tsa.example/rfc3161", 7.0)
    assert "s3cret" not in repr(cfg) and "1234" not in repr(cfg)


def test_empty_section_means_development_material() -> None:
    cfg = signing_config_from_mapping({}, crl_base_url="u", base_dir=Path("."), environ={})
    assert cfg.seal is None and cfg.issuing_ca is None and cfg.tsa is None


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('[signing]\nsael = {kind = "pkcs12", path = "x"}', "unknown key"),
        ('[signing.seal]\nkind = "pkcs12"\npath = "x"\npasword = "y"', "unknown key"),
        ('[signing.seal]\nkind = "pem"\npath = "x"', "kind must be"),
        ('[signing.seal]\nkind = "pkcs12"', "path is required"),
        ('[signing.seal]\nkind = "pkcs11"\nmodule = "m"\ntoken_label = "t"\nkey_label = "k"', "pin"),
        ('[signing.seal]\nkind = "pkcs12"\npath = "x"\npassphrase_env = "NOT_SET_ANYWHERE"', "not set"),
        ('[signing.seal]\nkind = "pkcs12"\npath = "x"\npassphrase = "a"\npassphrase_env = "B"', "not both"),
        ('[signing.tsa]\nurl = "ftp://tsa"', "http"),
        ('[signing.tsa]\nurl = "https://tsa"\ntimeout_s = -1', "positive"),
        ("[signing]\nfetch_foreign_crls = 1", "true or false"),
        ('[signing]\ntrust_roots = "root.pem"', "list of paths"),
        ("[signing]\nseal = 3", "kind must be"),
    ],
)
def test_bad_config_is_rejected_loudly(snippet: str, message: str) -> None:
    text = snippet if snippet.startswith("[signing]") else "[signing]\n" + snippet
    with pytest.raises(SigningConfigError, match=message):
        _parse(text, {})
