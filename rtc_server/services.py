"""The services one application owns, built and torn down together (tests build them the same way)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from recordings import ManifestSigner, RecorderConfig
from rtc_server.accounts import AccountService
from rtc_server.conference import Conference
from rtc_server.config import Config
from rtc_server.eventbus import EventBus
from rtc_server.inspection import InspectionService
from rtc_server.media import IceServer, MediaService, MediaSettings, PeerEvent
from rtc_server.metrics import Metrics
from rtc_server.recorder import RecordingService, load_or_create_key, manifest_certificates
from rtc_server.sessions import SessionService
from rtc_server.signing_flow import SigningFlow, open_signing_service
from rtc_server.storage import Database, Repository, open_database
from signing import SigningService

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    db: Database
    repo: Repository
    bus: EventBus
    metrics: Metrics
    accounts: AccountService
    sessions: SessionService
    media: MediaService
    recorder: RecordingService
    conference: Conference
    signing: SigningService
    signing_flow: SigningFlow
    inspection: InspectionService
    ready: bool = False


def media_settings(config: Config) -> MediaSettings:
    servers = tuple(
        IceServer(urls=tuple(s.urls), username=s.username or None, credential=s.credential or None)
        for s in config.media.ice_servers
    )
    delay = config.media.viewer_playout_delay_ms
    return MediaSettings(
        ice_servers=servers,
        max_peers=config.media.max_peers,
        viewer_playout_delay_ms=(delay[0], delay[1]) if delay else None,
        publisher_fec=config.media.publisher_fec,
        publisher_transport_cc=config.media.publisher_transport_cc,
        viewer_redundancy_loss=config.media.viewer_redundancy_loss or None,
    )


@contextlib.asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    config.data_path.mkdir(parents=True, exist_ok=True)
    db = await open_database(config.data_path, config.storage.database_url)
    try:
        repo = Repository(db)
        bus = EventBus()
        sessions = SessionService(repo, config, bus)
        conference: Conference | None = None

        def on_peer_closed(event: PeerEvent) -> None:
            if conference is not None:
                conference.on_peer_closed(event)

        media = MediaService(media_settings(config), on_peer_closed)
        metrics = Metrics()
        metrics.watch_media(media)
        signing = await open_signing_service(config)
        key = await asyncio.to_thread(load_or_create_key, config.data_path / "keys" / "recording-key.pem")
        # Manifests chain to the bank's published root and their chain heads are timestamped.
        certificates = await asyncio.to_thread(
            manifest_certificates, signing, key, config.data_path / "keys" / "recording-cert.pem"
        )

        def on_recording_event(session_id: str, event_type: str, data: dict[str, Any]) -> None:
            if conference is not None:
                conference.record_later(session_id, event_type, data)

        recorder = RecordingService(
            config.data_path / "recordings",
            ManifestSigner(private_key=key, certificates=certificates, timestamper=signing.timestamp_digest),
            media,
            on_recording_event,
            on_bytes=metrics.recording_bytes.inc,
            config=RecorderConfig(segment_duration_s=config.recording.segment_duration_s),
        )
        # A crash leaves the segment being written open: seal or drop it before serving.
        await asyncio.to_thread(recorder.recover_all)
        conference = Conference(sessions, media, recorder)
        inspection = InspectionService(sessions, conference, recorder, signing)
        conference.observer = inspection
        try:
            yield Services(
                config=config,
                db=db,
                repo=repo,
                bus=bus,
                metrics=metrics,
                accounts=AccountService(repo, config.auth),
                sessions=sessions,
                media=media,
                recorder=recorder,
                conference=conference,
                signing=signing,
                signing_flow=SigningFlow(sessions, conference, signing),
                inspection=inspection,
            )
        finally:
            await conference.close()
    finally:
        await db.close()
