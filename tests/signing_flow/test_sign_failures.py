"""Failures are loud: a dead timestamp authority is a 502 and signs nothing; bad config fails at start."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from rtc_server.appkeys import SERVICES
from rtc_server.config import ConfigError
from rtc_server.lifecycle import Action
from rtc_server.signing_flow import decode_signature_png
from tests.signing_flow.flow_support import b64, png, rtc_server
from tests.support import assert_error, make_config, make_pdf, start_api


async def test_dead_tsa_is_a_502_and_nothing_is_signed(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback: connection refused at once.
    config = make_config(
        tmp_path / "data", signing={"tsa": {"url": "http://127.0.0.1:9/tsa", "timeout_s": 2}}
    )
    api = await start_api(aiohttp_client, config)
    created = await api.create_signing()
    sid = created["id"]
    sessions = api.app[SERVICES].sessions
    # The video-gated steps are covered over HTTP elsewhere; here only the signature matters.
    for action in (Action.GO_LIVE, Action.CONFIRM_IDENTITY, Action.CONSENT):
        await sessions.transition(None, sid, action, f"test.{action.value}", {})
    resp = await api.client.post(f"/api/v1/signings/{sid}/sign", headers=api.auth(api.officer))
    assert resp.status == 502, await resp.text()
    body = await resp.json()
    assert_error(body, "timestamp_failed")
    assert "timestamp" in body["error"]["message"].lower()
    detail = await (await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))).json()
    assert detail["state"] == "consented"
    assert [d["purpose"] for d in detail["documents"]] == ["original"]
    trail = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    failed = [e for e in trail if e["type"] == "signing.failed"]
    assert len(failed) == 1 and failed[0]["data"]["reason"] == "timestamp_authority"
    # The document is still the original, and this server runs no TSA of its own.
    resp = await api.client.get(f"/api/v1/signings/{sid}/document", headers=api.auth(api.officer))
    original = detail["documents"][0]["sha256"]
    assert hashlib.sha256(await resp.read()).hexdigest() == original == resp.headers["X-Content-SHA256"]
    resp = await api.client.post(
        "/api/v1/pki/tsa", data=b"x", headers={"Content-Type": "application/timestamp-query"}
    )
    assert resp.status == 404


def test_signing_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"signing\.seal: unknown key"):
        make_config(tmp_path, signing={"seal": {"kind": "pkcs12", "path": "x.p12", "bogus": 1}})
    with pytest.raises(ConfigError, match=r"signing\.colour"):
        make_config(tmp_path, signing={"colour": "blue"})
    with pytest.raises(ConfigError, match=r"signing\.tsa\.url"):
        make_config(tmp_path, signing={"tsa": {"url": "ftp://tsa"}})
    config = make_config(tmp_path, signing={"organization": "Example Bank"})
    assert config.signing.as_mapping() == {
        "organization": "Example Bank",
        "trust_roots": [],
        "fetch_foreign_crls": False,
    }


def test_signature_png_decoding() -> None:
    drawn = png()
    assert decode_signature_png(b64(drawn)) == drawn
    assert decode_signature_png("data:image/png;base64," + b64(drawn)) == drawn
    with pytest.raises(Exception, match="base64 PNG"):
        decode_signature_png("data:image/gif;base64," + b64(drawn))


def test_verify_pdf_on_something_that_is_not_a_pdf(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"hello")
    assert rtc_server("verify-pdf", str(tmp_path / "x.pdf")).returncode == 2
    assert rtc_server("verify-pdf", str(tmp_path / "missing.pdf")).returncode == 2
    unsigned = tmp_path / "plain.pdf"
    unsigned.write_bytes(make_pdf())
    result = rtc_server("verify-pdf", str(unsigned))
    assert result.returncode == 1, result.stdout
