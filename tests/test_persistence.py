"""What is stored survives a restart, and tampering with the stored trail is caught and located."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from rtc_server.api.app import create_app
from rtc_server.appkeys import SERVICES
from rtc_server.audit import verify_chain
from rtc_server.config import Config
from tests.support import Api, login, start_api


async def test_sessions_survive_a_restart(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config
) -> None:
    api = await start_api(aiohttp_client, config)
    inspection = await api.create_inspection()
    signing = await api.create_signing()
    before = {}
    for sid in (inspection["id"], signing["id"]):
        before[sid] = await (
            await api.client.get(f"/api/v1/sessions/{sid}", headers=api.auth(api.officer))
        ).json()
    trail_before = await (
        await api.client.get(f"/api/v1/sessions/{signing['id']}/events", headers=api.auth(api.officer))
    ).json()
    await api.client.close()

    # A new application on the same data dir: accounts, tokens, sessions, invites and trail are all there.
    app = create_app(config)
    client = await aiohttp_client(app)
    headers = {"Authorization": f"Bearer {api.officer}"}
    for sid, detail in before.items():
        resp = await client.get(f"/api/v1/sessions/{sid}", headers=headers)
        assert resp.status == 200
        assert await resp.json() == detail
    trail = await (await client.get(f"/api/v1/sessions/{signing['id']}/events", headers=headers)).json()
    assert trail == trail_before
    signer_token = signing["invites"]["signer"]["token"]
    resp = await client.get(
        f"/api/v1/signings/{signing['id']}/document", headers={"Authorization": f"Bearer {signer_token}"}
    )
    assert resp.status == 200
    assert await login(client, "officer1")


async def test_tampered_event_is_named(api: Api) -> None:
    created = await api.create_inspection()
    sid = created["id"]
    await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    engine = api.app[SERVICES].db.engine
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE events SET data = :d WHERE session_id = :s AND seq = 2"),
            {"d": '{"role":"observer","participant_id":"par_forged"}', "s": sid},
        )
    trail = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events", headers=api.auth(api.officer))
    ).json()
    broken = verify_chain(trail)
    assert broken is not None and broken.seq == 2
    check = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events/verify", headers=api.auth(api.officer))
    ).json()
    assert check["intact"] is False and check["first_broken_seq"] == 2


async def test_deleted_event_is_named(api: Api) -> None:
    created = await api.create_inspection()
    sid = created["id"]
    await api.client.post(
        f"/api/v1/sessions/{sid}/invites", json={"role": "observer"}, headers=api.auth(api.officer)
    )
    await api.client.post(f"/api/v1/sessions/{sid}/end", headers=api.auth(api.officer))
    async with api.app[SERVICES].db.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM events WHERE session_id = :s AND seq = 3"), {"s": sid})
    check = await (
        await api.client.get(f"/api/v1/sessions/{sid}/events/verify", headers=api.auth(api.officer))
    ).json()
    assert check["intact"] is False and check["first_broken_seq"] == 3
