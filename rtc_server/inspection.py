"""The inspection workflow: the staff's video analysed live, stills, and the signed report.

When the staff of an inspection publishes, a media tap of their video feeds a StreamAnalyser
(decoding in its own worker thread, never on the loop or the forward path). Its events become the
audit trail (`code.detected`, `quality.hint`), tick the checklist, and quality hints go to the
staff's own signaling connections as `{"type": "hint", ...}` so the phone can say "more light".
The officer takes stills of the live picture (`snapshot.taken`), and after the end gets a PDF
report sealed by the bank (`report.issued`), built once at the first request and kept.

Media time. The analyser's clock base is taken in the same publish call as the recorder's (it is
called right after `RecordingService.start`), so a code's media time points at the same instant
of the recording to within a millisecond.

No aiohttp, no aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import signing
from rtc_server import documents, report
from rtc_server.accounts import Principal
from rtc_server.analysis import (
    HINT_MESSAGES,
    AnalyserClosed,
    AnalyserSettings,
    AnalyserStats,
    AnalysisEvent,
    Checklist,
    CodeDetected,
    NoPicture,
    QualityHint,
    StreamAnalyser,
    UnsupportedCodec,
    normalise_code,
)
from rtc_server.conference import Conference
from rtc_server.errors import Conflict, NotFound
from rtc_server.lifecycle import is_active
from rtc_server.media import EncodedFrameTap
from rtc_server.models import Document, Participant, ParticipantRole, Role, Session, SessionKind, iso
from rtc_server.recorder import RecordingService
from rtc_server.sessions import SessionService, still_view
from rtc_server.signing_flow import SigningUnavailable, TimestampFailed

log = logging.getLogger(__name__)

# Analyser events waiting to be written to the trail. They are rare (new sightings, hint changes):
# a full queue means the database is stuck, and the oldest news is the least useful.
EVENT_QUEUE = 256


@dataclass
class _Stream:
    """One staff participant's video under analysis, across publisher reconnects."""

    session_id: str
    participant_id: str
    clock_base: float
    tap: EncodedFrameTap
    events: asyncio.Queue[AnalysisEvent | None] = field(default_factory=lambda: asyncio.Queue(EVENT_QUEUE))
    analyser: StreamAnalyser | None = None
    codec: str | None = None
    hints: set[str] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    lost_events: int = 0

    def post(self, event: AnalysisEvent) -> None:
        if self.events.full():
            self.events.get_nowait()
            self.lost_events += 1
            if self.lost_events == 1:
                log.warning(
                    "inspection %s: analysis events are being lost (trail writes stuck)", self.session_id
                )
        self.events.put_nowait(event)

    def finish(self) -> None:
        """Tell the writer that no more events will come (after those queued)."""
        if self.events.full():
            self.events.get_nowait()
            self.lost_events += 1
        self.events.put_nowait(None)


def hint_message(hint: str, active: bool) -> dict[str, Any]:
    """The staff page's message: the hint, whether it is on, and its words in English and Chinese."""
    return {"type": "hint", "hint": hint, "active": active, "message": dict(HINT_MESSAGES[hint])}


class InspectionService:
    def __init__(
        self,
        sessions: SessionService,
        conference: Conference,
        recorder: RecordingService,
        signer: signing.SigningService,
        settings: AnalyserSettings | None = None,
        font_path: Path | None = None,
    ) -> None:
        self.sessions = sessions
        self.conference = conference
        self.media = conference.media
        self.recorder = recorder
        self.signer = signer
        self.settings = settings or AnalyserSettings()
        self.font_path = font_path
        self._streams: dict[tuple[str, str], _Stream] = {}
        # One report built at a time: it is rare, and two at once would take both cores from media.
        self._report_lock = asyncio.Lock()

    # -- the conference's observer ------------------------------------------------------------------

    def published(self, session: Session, participant: Participant) -> None:
        """Analyse the staff's video of an inspection from now on (idempotent across reconnects)."""
        if session.kind is not SessionKind.INSPECTION or participant.role is not ParticipantRole.STAFF:
            return
        key = (session.id, participant.id)
        if key in self._streams:
            return
        # Opened here, before the first frame can arrive, so the analyser starts on the keyframe.
        tap = self.media.open_tap(session.id, participant.id, "video")
        stream = _Stream(session.id, participant.id, time.time(), tap)
        self._streams[key] = stream
        name = f"{session.id}-{participant.id}"
        stream.tasks.append(asyncio.create_task(self._pump(stream), name=f"analyse-{name}"))
        stream.tasks.append(asyncio.create_task(self._write(stream), name=f"analysis-events-{name}"))

    async def session_closed(self, session_id: str) -> None:
        """The session ended: stop its analysers and write what they still had to say."""
        for key in [k for k in self._streams if k[0] == session_id]:
            await self._stop(self._streams.pop(key))

    async def close(self) -> None:
        for key in list(self._streams):
            await self._stop(self._streams.pop(key))

    async def _stop(self, stream: _Stream) -> None:
        stream.tap.close()
        await asyncio.gather(*stream.tasks, return_exceptions=True)

    def analysed(self, session_id: str) -> list[str]:
        """The participants of the session whose video is being analysed."""
        return [pid for sid, pid in self._streams if sid == session_id]

    def stats(self, session_id: str, participant_id: str) -> AnalyserStats | None:
        stream = self._streams.get((session_id, participant_id))
        return stream.analyser.stats() if stream is not None and stream.analyser is not None else None

    def active_hints(self, session_id: str, participant_id: str) -> list[str]:
        stream = self._streams.get((session_id, participant_id))
        return sorted(stream.hints) if stream else []

    # -- analysis -----------------------------------------------------------------------------------

    async def _pump(self, stream: _Stream) -> None:
        sid, pid = stream.session_id, stream.participant_id
        try:
            checklist = await self._checklist(sid)
            dropped = stream.tap.dropped
            async for frame in stream.tap:
                if frame.codec != stream.codec:
                    # A phone that republishes with another codec gets a decoder for it.
                    if stream.analyser is not None:
                        await stream.analyser.close()
                        stream.analyser = None
                    stream.codec = frame.codec
                    dropped = stream.tap.dropped
                    try:
                        stream.analyser = self._analyser(stream, frame.codec, checklist)
                    except UnsupportedCodec:
                        log.warning("inspection %s: cannot analyse %s video", sid, frame.codec)
                elif stream.tap.dropped != dropped and stream.analyser is not None:
                    # Frames lost before this one: the decoder must resynchronise on a keyframe.
                    dropped = stream.tap.dropped
                    stream.analyser.notify_gap()
                if stream.analyser is not None:
                    stream.analyser.feed(frame)
        except Exception:
            log.exception("analysis of %s/%s failed", sid, pid)
        finally:
            if stream.analyser is not None:
                await stream.analyser.close()
            stream.finish()

    def _analyser(self, stream: _Stream, codec: str, checklist: Checklist) -> StreamAnalyser:
        sid, pid = stream.session_id, stream.participant_id

        def request_keyframe() -> None:
            self.media.request_keyframe(sid, pid)

        return StreamAnalyser(
            codec,
            checklist,
            on_event=stream.post,
            request_keyframe=request_keyframe,
            settings=self.settings,
            clock_base=stream.clock_base,
            name=f"analyser-{pid}",
        )

    async def _checklist(self, session_id: str) -> Checklist:
        async with self.sessions.repo.read() as tx:
            items = await tx.checklist(session_id)
        expected: dict[str, int | None] = {}
        keys: set[str] = set()
        for item in items:
            # The API refuses identical SKUs; two spellings of one GTIN (with and without a leading
            # zero) are one item to the reader: the first one listed gets the sightings.
            key = normalise_code(item.sku)
            if key not in keys:
                keys.add(key)
                expected[item.sku] = item.expected_qty
        return Checklist(expected)

    async def _write(self, stream: _Stream) -> None:
        while True:
            event = await stream.events.get()
            if event is None:
                return
            try:
                await self._handle(stream, event)
            except NotFound:
                return  # the session is gone
            except Exception:
                log.exception("inspection %s: analysis event %s not recorded", stream.session_id, event.type)

    async def _handle(self, stream: _Stream, event: AnalysisEvent) -> None:
        sid, pid = stream.session_id, stream.participant_id
        data = {"participant_id": pid, **event.data()}
        if isinstance(event, QualityHint):
            (stream.hints.add if event.active else stream.hints.discard)(event.hint)
            # The phone first: the trail can wait a few milliseconds, the person holding it cannot.
            self.conference.send_to(sid, pid, hint_message(event.hint, event.active))
            await self.sessions.record(sid, "quality.hint", "server", data)
        elif isinstance(event, CodeDetected):
            if event.sku is not None:
                await self.sessions.record_sighting(sid, event.sku, event.wallclock, "server", data)
            else:
                await self.sessions.record(sid, "code.detected", "server", data)

    # -- stills -------------------------------------------------------------------------------------

    async def snapshot(self, principal: Principal, session_id: str) -> dict[str, Any]:
        """A still of the staff's live video at full stream resolution, stored by content hash."""
        principal.require_user(Role.OFFICER)
        session = await self._inspection(principal, session_id)
        if not is_active(session.state):
            raise Conflict("The inspection has ended; no stills.", code="session_ended")
        staff = await self._staff(session_id)
        stream = self._streams.get((session_id, staff.id)) if staff else None
        if staff is None or stream is None or not self.media.is_live(session_id, staff.id):
            raise Conflict("The staff is not publishing video.", code="staff_not_publishing")
        analyser = stream.analyser
        if analyser is None:
            raise Conflict("The staff's video has not started yet.", code="staff_not_publishing")
        try:
            still = await analyser.snapshot()
        except (NoPicture, AnalyserClosed) as exc:
            raise Conflict(f"No picture of the staff's video yet: {exc}", code="no_picture") from exc
        path = await asyncio.to_thread(
            documents.store_blob, self.sessions.documents_dir, still.data, still.sha256, still.extension
        )
        still_id = f"stl_{secrets.token_urlsafe(12)}"
        now = self.sessions.clock()
        document = Document(
            id=still_id,
            session_id=session_id,
            purpose="still",
            filename=f"still-{still_id}{still.extension}",
            sha256=still.sha256,
            size=len(still.data),
            path=str(path),
            created_at=now,
        )
        data = {
            "still_id": still_id,
            "url": f"/api/v1/inspections/{session_id}/snapshots/{still_id}",
            "participant_id": staff.id,
            "sha256": still.sha256,
            "content_type": still.content_type,
            "size": len(still.data),
            "ts": iso(still.wallclock),
            "width": still.width,
            "height": still.height,
            "media_time": round(still.media_time, 3),
        }
        await self.sessions.record(session_id, "snapshot.taken", principal.actor, data, document=document)
        return still_view(session_id, data)

    async def still(self, principal: Principal, session_id: str, still_id: str) -> Document:
        principal.require_user(Role.OFFICER)
        await self._inspection(principal, session_id)
        for doc in await self.sessions.documents(session_id):
            if doc.purpose == "still" and doc.id == still_id:
                return doc
        raise NotFound("No such still.", code="still_not_found")

    async def stills(self, principal: Principal, session_id: str) -> list[dict[str, Any]]:
        principal.require_user(Role.OFFICER)
        await self._inspection(principal, session_id)
        async with self.sessions.repo.read() as tx:
            taken = await tx.events_of_type(session_id, "snapshot.taken")
        return [still_view(session_id, e["data"]) for e in taken]

    # -- report -------------------------------------------------------------------------------------

    async def report(self, principal: Principal, session_id: str) -> Document:
        """The sealed PDF report, built at the first request after the end and kept."""
        principal.require_user(Role.OFFICER)
        session = await self._inspection(principal, session_id)
        if is_active(session.state):
            raise Conflict("The report is issued after the inspection ends.", code="session_not_ended")
        async with self._report_lock:
            existing = await self._report_document(session_id)
            if existing is not None:
                return existing
            return await self._issue_report(principal, session)

    async def _report_document(self, session_id: str) -> Document | None:
        for doc in await self.sessions.documents(session_id):
            if doc.purpose == "report":
                return doc
        return None

    async def _issue_report(self, principal: Principal, session: Session) -> Document:
        sid = session.id
        async with self.sessions.repo.read() as tx:
            trail = await tx.events(sid)
            participants = await tx.participants(sid)
            items = await tx.checklist(sid)
            docs = await tx.documents(sid)
            officer = await tx.user_by_id(session.created_by)
        stills = {d.id: d for d in docs if d.purpose == "still"}
        recordings = await asyncio.to_thread(_recording_facts, self.recorder, sid)
        images = await asyncio.to_thread(_read_stills, stills)
        data = report.ReportData.from_records(
            session=session,
            officer=officer.username if officer else session.created_by,
            organization=self.signer.config.organization,
            participants=participants,
            items=items,
            trail=trail,
            still_images=images,
            recordings=recordings,
        )
        started = time.perf_counter()
        pdf = await asyncio.to_thread(report.build_report, data, self.font_path)
        try:
            sealed = await asyncio.to_thread(
                self.signer.seal_pdf, pdf, f"Inspection report {sid} issued by {data.organization}"
            )
        except signing.SigningError as exc:
            timestamp = isinstance(exc, signing.TimestampError)
            log.warning("sealing the report of %s failed: %s", sid, exc)
            await self.sessions.record(
                sid,
                "report.failed",
                principal.actor,
                {
                    "reason": "timestamp_authority" if timestamp else type(exc).__name__,
                    "message": str(exc)[:500],
                },
            )
            if timestamp:
                raise TimestampFailed(
                    f"The timestamp authority failed; no report was issued. ({exc})"
                ) from exc
            raise SigningUnavailable(f"The report cannot be sealed now: {exc}") from exc
        path = await asyncio.to_thread(
            documents.store_blob, self.sessions.documents_dir, sealed.pdf, sealed.sha256, ".pdf"
        )
        document = Document(
            id=f"doc_{secrets.token_urlsafe(12)}",
            session_id=sid,
            purpose="report",
            filename=f"inspection-report-{sid}.pdf",
            sha256=sealed.sha256,
            size=len(sealed.pdf),
            path=str(path),
            created_at=self.sessions.clock(),
        )
        event = {
            "sha256": sealed.sha256,
            "document_id": document.id,
            "size": len(sealed.pdf),
            "audit_head": trail[-1]["hash"],
            "audit_events": len(trail),
        }
        await self.sessions.record(sid, "report.issued", principal.actor, event, document=document)
        log.info("inspection report %s issued in %.2f s", sid, time.perf_counter() - started)
        return document

    # -- helpers ------------------------------------------------------------------------------------

    async def _inspection(self, principal: Principal, session_id: str) -> Session:
        session = await self.sessions.get(principal, session_id)
        if session.kind is not SessionKind.INSPECTION:
            raise NotFound("This session is not an inspection.", code="not_an_inspection")
        return session

    async def _staff(self, session_id: str) -> Participant | None:
        for p in await self.sessions.participants(session_id):
            if p.role is ParticipantRole.STAFF:
                return p
        return None


def _read_stills(stills: dict[str, Document]) -> dict[str, bytes]:
    out = {}
    for still_id, doc in stills.items():
        with contextlib.suppress(OSError):  # a missing file is reported as missing in the report
            out[still_id] = Path(doc.path).read_bytes()
    return out


def _recording_facts(recorder: RecordingService, session_id: str) -> list[report.RecordingFact]:
    """Blocking: each track's chain head and, once sealed, its signed manifest's SHA-256."""
    facts = []
    for track in recorder.describe(session_id):
        manifest = recorder.session_dir(session_id) / track["track_id"] / "manifest.json"
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None
        facts.append(
            report.RecordingFact(
                track_id=track["track_id"],
                participant_id=track.get("participant_id"),
                kind=track.get("kind"),
                codec=track.get("codec"),
                sealed=bool(track.get("sealed")),
                segments=len(track.get("segments", [])),
                chain_head=track.get("chain_head"),
                manifest_sha256=digest,
            )
        )
    return facts
