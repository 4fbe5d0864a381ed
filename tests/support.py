"""Helpers shared by the tests: the real app factory with logged-in callers, PDFs, error checks."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pyhanko.pdf_utils import generic, writer

from rtc_server.api.app import create_app
from rtc_server.appkeys import SERVICES
from rtc_server.config import Config, load_config
from rtc_server.models import Role

PASSWORD = "correct horse battery"


def make_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    overrides: dict[str, dict[str, Any]] = {"server": {"data_dir": str(data_dir), "tls": False, "port": 8443}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(env={}, overrides=overrides)


def make_pdf(pages: int = 1, text: bytes = b"Contract") -> bytes:
    w = writer.PdfFileWriter()
    for i in range(pages):
        stream = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (" + text + b" %d) Tj ET" % i)
        w.insert_page(
            writer.PageObject(contents=w.add_object(stream), media_box=generic.ArrayObject([0, 0, 595, 842]))
        )
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


@dataclass
class Api:
    """A test client plus tokens for an officer, a second officer and an admin."""

    client: TestClient
    app: web.Application
    officer: str
    other_officer: str
    admin: str

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def create_inspection(self, token: str | None = None, **body: Any) -> dict[str, Any]:
        payload = {"title": "Warehouse 7", "items": [{"sku": "SKU-1", "expected_qty": 2}, {"sku": "SKU-2"}]}
        payload.update(body)
        resp = await self.client.post(
            "/api/v1/inspections", json=payload, headers=self.auth(token or self.officer)
        )
        assert resp.status == 201, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result

    async def create_signing(self, token: str | None = None, pdf: bytes | None = None) -> dict[str, Any]:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("document", pdf or make_pdf(), filename="loan.pdf", content_type="application/pdf")
        form.add_field(
            "signer", '{"name": "Li Wei", "id_number": "110101199003071234"}', content_type="application/json"
        )
        resp = await self.client.post("/api/v1/signings", data=form, headers=self.auth(token or self.officer))
        assert resp.status == 201, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    resp = await client.post("/api/v1/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["token"]
    return token


async def start_api(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> Api:
    app = create_app(config)
    client = await aiohttp_client(app)
    accounts = app[SERVICES].accounts
    await accounts.add_user("officer1", PASSWORD, Role.OFFICER)
    await accounts.add_user("officer2", PASSWORD, Role.OFFICER)
    await accounts.add_user("admin", PASSWORD, Role.ADMIN)
    return Api(
        client=client,
        app=app,
        officer=await login(client, "officer1"),
        other_officer=await login(client, "officer2"),
        admin=await login(client, "admin"),
    )


def assert_error(body: dict[str, Any], code: str | None = None) -> None:
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
