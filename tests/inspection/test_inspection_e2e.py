"""An inspection end to end over HTTP: a real aiortc staff publisher sends generated 1280x720 VP8
video over WHIP showing checklist codes and an unknown one; the trail, the checklist, a still at
stream resolution, then the sealed report checked by pdfsig, pyhanko and pdftotext."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rtc_server.appkeys import SERVICES
from rtc_server.audit import verify_chain
from tests.inspection.media import (
    ITEMS,
    SKU_CODE128,
    SKU_EAN,
    SKU_MISSING,
    SKU_QR,
    UNKNOWN,
    codes_clip,
    staff_publisher,
)
from tests.media.media_clients import answer
from tests.signing_flow.flow_support import make_nss_db, pdfsig_blocks
from tests.support import Api, assert_error

pytestmark = pytest.mark.slow

SDP = {"Content-Type": "application/sdp"}


async def trail(api: Api, sid: str) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    assert resp.status == 200
    events: list[dict[str, Any]] = await resp.json()
    return events


async def wait_codes(api: Api, sid: str, count: int, within: float = 40.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        codes = [e for e in await trail(api, sid) if e["type"] == "code.detected"]
        if len(codes) >= count:
            return codes
        if time.monotonic() > deadline:
            raise AssertionError(f"only {[c['data']['value'] for c in codes]} read within {within} s")
        await asyncio.sleep(0.25)


async def test_codes_checklist_still_and_sealed_report(api: Api, tmp_path: Path) -> None:
    clip, shown = await asyncio.to_thread(codes_clip, 1280, 720)
    created = await api.create_inspection(
        title="Warehouse 仓库 7", site={"address": "1 Dock Road"}, items=ITEMS
    )
    sid, staff = created["id"], created["invites"]["staff"]
    officer = api.auth(api.officer)

    # Nothing to photograph yet; no report while the inspection runs.
    resp = await api.client.post(f"/api/v1/inspections/{sid}/snapshots", headers=officer)
    assert resp.status == 409
    assert_error(await resp.json(), "staff_not_publishing")
    resp = await api.client.get(f"/api/v1/inspections/{sid}/report", headers=officer)
    assert resp.status == 409
    assert_error(await resp.json(), "session_not_ended")

    # The staff's phone: signaling socket (device facts, location), camera over WHIP.
    ws = await api.client.ws_connect(f"/api/v1/sessions/{sid}/ws")
    device = {"model": "Pixel 8", "os": "Android 15", "browser": "Chrome 131"}
    await ws.send_json({"type": "hello", "token": staff["token"], "device": device})
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    await ws.send_json({"type": "location", "latitude": 31.2304, "longitude": 121.4737, "accuracy": 12})
    assert (await ws.receive_json(timeout=10))["type"] == "location_saved"
    pc, _video, offer = await staff_publisher(clip)
    try:
        resp = await api.client.post(
            f"/api/v1/sessions/{sid}/whip", data=offer, headers={**SDP, **api.auth(staff["token"])}
        )
        assert resp.status == 201, await resp.text()
        await answer(pc, await resp.text())
        codes = await wait_codes(api, sid, 4)

        # A still of the live picture, at the stream's own resolution.
        resp = await api.client.post(f"/api/v1/inspections/{sid}/snapshots", headers=officer)
        assert resp.status == 201, await resp.text()
        still = await resp.json()
        assert (still["width"], still["height"]) == (1280, 720)
        assert still["media_time"] > 0 and still["ts"].endswith("Z")
        resp = await api.client.get(still["url"], headers=officer)
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
        png = await resp.read()
        assert hashlib.sha256(png).hexdigest() == still["sha256"]
        pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert pixels is not None and pixels.shape == (720, 1280, 3)
        # Only the officer downloads stills.
        resp = await api.client.get(still["url"], headers=api.auth(staff["token"]))
        assert resp.status == 403
    finally:
        await pc.close()
        await ws.close()

    # One sighting per code shown, in order; the unknown code is flagged; media times in order.
    first = [
        (c["data"]["value"], c["data"]["format"], c["data"].get("sku"), c["data"]["unexpected"])
        for c in codes
    ]
    assert first[:4] == [
        (SKU_QR, "qr_code", SKU_QR, False),
        (SKU_EAN, "ean_13", SKU_EAN, False),
        (UNKNOWN, "qr_code", None, True),
        (SKU_CODE128, "code_128", SKU_CODE128, False),
    ]
    times = [c["data"]["media_time"] for c in codes[:4]]
    assert 0 < times[0] < times[1] < times[2] < times[3]
    # Seconds apart as shown (the clip's own timing survives the network), give or take.
    assert abs((times[1] - times[0]) - (shown[1].start - shown[0].start)) < 1.5
    assert all(
        c["actor"] == "server" and c["data"]["participant_id"] == staff["participant_id"] for c in codes
    )
    assert codes[0]["data"]["count"] == 1 and 0 <= codes[0]["data"]["bbox"]["x"] < 1

    resp = await api.client.get(f"/api/v1/sessions/{sid}", headers=officer)
    detail = await resp.json()
    items = {i["sku"]: i for i in detail["items"]}
    assert items[SKU_QR]["seen"] and items[SKU_QR]["seen_count"] >= 1 and items[SKU_QR]["first_seen_at"]
    assert items[SKU_EAN]["seen"] and items[SKU_EAN]["seen_count"] >= 1
    assert items[SKU_CODE128]["seen"]
    assert not items[SKU_MISSING]["seen"] and items[SKU_MISSING]["seen_count"] == 0
    assert [s["id"] for s in detail["stills"]] == [still["id"]]
    assert detail["stills"][0] == still | {"participant_id": staff["participant_id"]}

    resp = await api.client.post(f"/api/v1/sessions/{sid}/end", headers=officer)
    assert resp.status == 200
    resp = await api.client.get(f"/api/v1/inspections/{sid}/report", headers=officer)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "application/pdf"
    pdf = await resp.read()
    assert resp.headers["X-Content-SHA256"] == hashlib.sha256(pdf).hexdigest()
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)

    validation = await asyncio.to_thread(api.app[SERVICES].signing.validate, pdf)
    assert validation.ok, validation.to_text()
    resp = await api.client.get("/api/v1/pki/ca.pem")
    blocks = await asyncio.to_thread(pdfsig_blocks, path, make_nss_db(tmp_path / "nss", await resp.read()))
    # The bank's seal; poppler cannot check the document timestamp after it (pyhanko did, above).
    assert "Signature is Valid." in blocks["BankSeal"], blocks
    assert "Certificate is Trusted." in blocks["BankSeal"], blocks
    assert any(name.startswith("Timestamp") for name in blocks), blocks

    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=60).stdout
    for needle in (sid, SKU_QR, SKU_EAN, SKU_MISSING, UNKNOWN, "UNEXPECTED", "MISSING", "仓库", "叉车"):
        assert needle in text, needle
    assert "3 of 4 item(s) seen" in text
    assert "Pixel 8" in text and "31.230400, 121.473700" in text
    assert "1280x720" in text and still["sha256"] in text
    events = await trail(api, sid)
    assert verify_chain(events) is None
    # A sharp, lit, moving picture: no quality hint at all.
    assert [e["data"] for e in events if e["type"] == "quality.hint"] == []
    for track in detail["recordings"]:
        assert track["track_id"] in text
    sealed = [e["data"]["chain_head"] for e in events if e["type"] == "recording.sealed"]
    assert sealed and all(head in text for head in sealed)
    issued = [e for e in events if e["type"] == "report.issued"]
    assert len(issued) == 1 and issued[0]["data"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert issued[0]["data"]["audit_head"] in text
    images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True).stdout
    # The still at full resolution (a JPEG copy; the lossless PNG stays in the evidence).
    assert any(" 1280   720 " in line and " jpeg " in line for line in images.splitlines()), images

    # Issued once: the same bytes again, no second event.
    resp = await api.client.get(f"/api/v1/inspections/{sid}/report", headers=officer)
    assert await resp.read() == pdf
    assert sum(e["type"] == "report.issued" for e in await trail(api, sid)) == 1
    # Stills and the report are documents of the session (and so in its evidence package).
    purposes = sorted(
        d["purpose"]
        for d in (await (await api.client.get(f"/api/v1/sessions/{sid}", headers=officer)).json())[
            "documents"
        ]
    )
    assert purposes == ["report", "still"]
