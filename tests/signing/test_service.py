"""SigningService: what the server holds (dev mode), the TSA served over real HTTP, worker threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509 as cx509

from signing import (
    TSA_CONTENT_TYPE,
    HttpTsaConfig,
    SigningConfig,
    SigningService,
    TimestampError,
)
from tests.signing.helpers import make_pdf, make_request

BASE = "http://127.0.0.1:9/api/v1/pki/crl"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> SigningService:
    return SigningService(
        tmp_path_factory.mktemp("svc"), SigningConfig(crl_base_url=BASE, organization="Svc Bank")
    )


def test_dev_mode_serves_ca_crls_and_tsa(service: SigningService) -> None:
    assert service.dev_pki is not None
    assert service.ca_pem() == service.dev_pki.ca_pem()
    assert service.crl_names() == ("root", "issuing")
    for name in service.crl_names():
        cx509.load_der_x509_crl(service.crl_der(name))
    with pytest.raises(KeyError):
        service.crl_der("../../etc/passwd")
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 32},
        }
    )
    resp = tsp.TimeStampResp.load(service.handle_tsa_request(req.dump()))
    assert resp["status"]["status"].native == "granted"


async def test_signing_runs_in_a_worker_thread_while_the_loop_stays_free(service: SigningService) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        signed = await asyncio.to_thread(service.sign_contract, make_pdf(pages=5), make_request())
        report = await asyncio.to_thread(service.validate, signed.pdf)
    finally:
        task.cancel()
    assert report.ok, report.to_text()
    assert ticks > 0  # the loop kept running while pyhanko worked


@pytest.fixture(scope="module")
def tsa_over_http(service: SigningService) -> Iterator[str]:
    """The in-process TSA served at a URL, as the HTTP layer will do."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = service.handle_tsa_request(body)
            self.send_response(200)
            self.send_header("Content-Type", TSA_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/pki/tsa"
    server.shutdown()
    server.server_close()


def test_external_tsa_over_http(service: SigningService, tsa_over_http: str, tmp_path: Path) -> None:
    """Production-style config: an RFC 3161 TSA reached with pyhanko's HTTPTimeStamper."""
    assert service.dev_pki is not None
    (tmp_path / "ca.pem").write_bytes(service.ca_pem())
    remote = SigningService(
        service.dev_pki.directory.parent,  # same data dir: same dev PKI, reloaded
        SigningConfig(
            crl_base_url=BASE, organization="Svc Bank", tsa=HttpTsaConfig(tsa_over_http, timeout_s=5)
        ),
    )
    assert remote.local_tsa is None
    with pytest.raises(TimestampError):
        remote.handle_tsa_request(b"")
    signed = remote.sign_contract(make_pdf(), make_request())
    assert remote.validate(signed.pdf).ok

    down = SigningService(
        service.dev_pki.directory.parent,
        SigningConfig(crl_base_url=BASE, tsa=HttpTsaConfig("http://127.0.0.1:9/tsa", timeout_s=2)),
    )
    with pytest.raises(TimestampError):
        down.sign_contract(make_pdf(), make_request())
