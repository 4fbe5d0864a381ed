"""The remote signing workflow: identity on video, consent, then the PAdES signature with its evidence.

It sits between the HTTP edge and three engines: the session state machine (every step is a
transition with its audit event), the media engine (is the signer live on video right now?) and
the ``signing`` package (one-shot certificate, seal, timestamps). No aiohttp here.

Media time. The engine exposes no per-track media clock, so a step's media time is measured from
the signer's first ``media.published`` event in the audit trail: the recorder takes its clock base
(``time.time()``) in the same publish call, so this is the signer's recording timeline to within a
few milliseconds, and anyone can recompute it from the exported trail. Steps also keep their
wall-clock time and the age of the signer's last video frame, which shows they were on camera.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import signing
from recordings.journal import read_journal
from rtc_server import documents
from rtc_server.accounts import Principal
from rtc_server.conference import Conference
from rtc_server.config import Config
from rtc_server.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from rtc_server.lifecycle import Action, next_state
from rtc_server.models import Document, ParticipantRole, Role, Session, SessionKind, iso
from rtc_server.sessions import SessionService

log = logging.getLogger(__name__)

LIVE_WITHIN_S = 2.0
MAX_SIGNATURE_PNG_BYTES = 200 * 1024
MAX_SIGNATURE_PIXELS = 2000 * 1000
CRL_PATH = "/api/v1/pki/crl"


class TimestampFailed(ApiError):
    """The timestamp authority did not answer properly: nothing was signed."""

    status = 502
    code = "timestamp_failed"


class SigningUnavailable(ApiError):
    """The signing keys or PKI cannot be used right now (HSM down, certificate invalid...)."""

    status = 503
    code = "signing_unavailable"


@dataclass(frozen=True)
class SignOutcome:
    document: Document
    seconds: float


def signing_config(config: Config) -> signing.SigningConfig:
    """The ``[signing]`` section, with CRLs published under this server's public URL."""
    return signing.signing_config_from_mapping(
        config.signing.as_mapping(), crl_base_url=config.base_url + CRL_PATH, base_dir=Path.cwd()
    )


async def open_signing_service(config: Config) -> signing.SigningService:
    # The first start creates the dev PKI (key generation, file writes): not on the event loop.
    return await asyncio.to_thread(signing.SigningService, config.data_path, signing_config(config))


def _parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def check_signature_png(png: bytes) -> None:
    """Raise BadRequest unless `png` is a readable PNG of reasonable dimensions (worker thread)."""
    from PIL import Image, UnidentifiedImageError

    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BadRequest("The handwritten signature must be a PNG image.", code="invalid_signature_image")
    try:
        with Image.open(io.BytesIO(png)) as img:
            if img.format != "PNG" or img.width * img.height > MAX_SIGNATURE_PIXELS:
                raise BadRequest(
                    f"The handwritten signature must be a PNG of at most {MAX_SIGNATURE_PIXELS} pixels.",
                    code="invalid_signature_image",
                )
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(
            "The handwritten signature is not a readable PNG image.", code="invalid_signature_image"
        ) from exc


def decode_signature_png(value: str) -> bytes:
    """Base64 (optionally a ``data:image/png;base64,`` URL) to bytes, size-limited."""
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        if header not in ("data:image/png;base64",):
            raise BadRequest("signature_png must be a base64 PNG.", code="invalid_signature_image")
    if len(value) > (MAX_SIGNATURE_PNG_BYTES * 4) // 3 + 8:
        raise PayloadTooLarge(
            f"The handwritten signature is larger than {MAX_SIGNATURE_PNG_BYTES} bytes.",
            code="signature_too_large",
        )
    try:
        png = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("signature_png is not valid base64.", code="invalid_signature_image") from None
    if len(png) > MAX_SIGNATURE_PNG_BYTES:
        raise PayloadTooLarge(
            f"The handwritten signature is larger than {MAX_SIGNATURE_PNG_BYTES} bytes.",
            code="signature_too_large",
        )
    return png


class SigningFlow:
    def __init__(
        self,
        sessions: SessionService,
        conference: Conference,
        service: signing.SigningService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.conference = conference
        self.media = conference.media
        self.service = service
        self.clock = clock
        self.recordings_dir = sessions.config.data_path / "recordings"
        self._in_progress: set[str] = set()

    # -- identity -----------------------------------------------------------------------------------

    async def identity(
        self, principal: Principal, session_id: str, confirmed: bool, notes: str | None
    ) -> Session:
        """Confirmation needs the signer live on video now; rejection ends the signing whatever the video."""
        principal.require_user(Role.OFFICER)
        session = await self._signing(principal, session_id)
        action = Action.CONFIRM_IDENTITY if confirmed else Action.REJECT_IDENTITY
        next_state(session.kind, session.state, action)  # the state's 409 before the video's
        signer = await self._signer_id(session_id)
        now = self.clock()
        frame_at = self.media.last_video_frame_at(session_id, signer)
        live = self.media.is_live(session_id, signer, LIVE_WITHIN_S)
        if confirmed and not live:
            raise Conflict(
                "The signer is not live on video: identity can be confirmed only while their camera is on.",
                code="signer_not_live",
            )
        step = {
            "status": "confirmed" if confirmed else "rejected",
            "at": iso(now),
            "by": principal.actor,
            "notes": notes,
            "media_time_s": await self._media_time(session_id, signer, now),
            "video_frame_age_s": round(now - frame_at, 3) if frame_at is not None else None,
        }
        event = "signing.identity_confirmed" if confirmed else "signing.identity_rejected"
        data = {"participant_id": signer, **{k: v for k, v in step.items() if k not in ("status", "by")}}
        updated = await self.sessions.transition(
            principal, session_id, action, event, data, {"identity": step}
        )
        if not confirmed:
            await self.conference.close_media(session_id)
        return updated

    # -- consent ------------------------------------------------------------------------------------

    async def consent(self, principal: Principal, session_id: str, signature_png: bytes | None) -> Session:
        invite = principal.invite
        if invite is None or invite.role is not ParticipantRole.SIGNER:
            raise Forbidden("Only the signer, with their own invite, can consent.", code="signer_only")
        session = await self._signing(principal, session_id)
        next_state(session.kind, session.state, Action.CONSENT)
        if not self.media.is_live(session_id, invite.participant_id, LIVE_WITHIN_S):
            # Consent is evidence only when it is given on camera: the recording shows who gave it.
            raise Conflict(
                "Consent must be given on live video: turn the camera on and try again.",
                code="signer_not_live",
            )
        png_sha256 = None
        if signature_png is not None:
            await asyncio.to_thread(check_signature_png, signature_png)
            png_sha256 = hashlib.sha256(signature_png).hexdigest()
            await asyncio.to_thread(
                documents.store_blob, self.sessions.documents_dir, signature_png, png_sha256, ".png"
            )
        now = self.clock()
        signer = invite.participant_id
        frame_at = self.media.last_video_frame_at(session_id, signer)
        step = {
            "status": "given",
            "at": iso(now),
            "by": principal.actor,
            "media_time_s": await self._media_time(session_id, signer, now),
            "on_video": self.media.is_live(session_id, signer, LIVE_WITHIN_S),
            "video_frame_age_s": round(now - frame_at, 3) if frame_at is not None else None,
            "handwritten_signature_sha256": png_sha256,
        }
        data = {"participant_id": signer, **{k: v for k, v in step.items() if k not in ("status", "by")}}
        return await self.sessions.transition(
            principal, session_id, Action.CONSENT, "signing.consent_given", data, {"consent": step}
        )

    # -- signature ----------------------------------------------------------------------------------

    async def sign(self, principal: Principal, session_id: str) -> SignOutcome:
        user = principal.require_user(Role.OFFICER)
        session = await self._signing(principal, session_id)
        next_state(session.kind, session.state, Action.SIGN)
        if session_id in self._in_progress:
            raise Conflict("This contract is being signed already.", code="signing_in_progress")
        self._in_progress.add(session_id)
        try:
            return await self._sign(principal, user.username, session)
        finally:
            self._in_progress.discard(session_id)

    async def _sign(self, principal: Principal, officer: str, session: Session) -> SignOutcome:
        sid = session.id
        async with self.sessions.repo.read() as tx:
            original = next((d for d in await tx.documents(sid) if d.purpose == "original"), None)
        if original is None:  # pragma: no cover - create_signing stores it with the session
            raise NotFound("The signing has no contract.", code="document_not_found")
        tracks, manifests = await asyncio.to_thread(_recording_evidence, self.recordings_dir / sid)
        await self.sessions.record(
            sid,
            "signing.started",
            principal.actor,
            {"document_sha256": original.sha256, "recordings": [t["track_id"] for t in tracks]},
        )
        async with self.sessions.repo.read() as tx:
            trail = await tx.events(sid)
        # Serialising a long trail is CPU work like the signing itself: both off the loop.
        request = await asyncio.to_thread(self._request, session, officer, original, trail, tracks, manifests)
        pdf = await asyncio.to_thread(Path(original.path).read_bytes)
        consent = session.details.get("consent") or {}
        if consent.get("handwritten_signature_sha256"):
            digest = consent["handwritten_signature_sha256"]
            path = self.sessions.documents_dir / digest[:2] / f"{digest}.png"
            request = _with_png(request, await asyncio.to_thread(path.read_bytes))
        started = time.perf_counter()
        try:
            signed = await asyncio.to_thread(self.service.sign_contract, pdf, request)
        except signing.SigningError as exc:
            await self._failed(principal, sid, exc)
            raise _api_error(exc) from exc
        seconds = time.perf_counter() - started
        path = await asyncio.to_thread(
            documents.store_blob, self.sessions.documents_dir, signed.pdf, signed.sha256, ".pdf"
        )
        now = self.clock()
        stem = original.filename.rsplit(".", 1)[0]
        document = Document(
            id=f"doc_{secrets.token_urlsafe(12)}",
            session_id=sid,
            purpose="signed",
            filename=f"{stem}-signed.pdf"[:120],
            sha256=signed.sha256,
            size=len(signed.pdf),
            path=str(path),
            created_at=now,
        )
        cert_sha256 = hashlib.sha256(signed.signer_certificate or b"").hexdigest()
        step = {
            "status": "signed",
            "at": iso(now),
            "by": principal.actor,
            "sha256": signed.sha256,
            "document_id": document.id,
            "signer_certificate_sha256": cert_sha256,
            "evidence_head": trail[-1]["hash"],
            "sign_ms": round(seconds * 1000),
        }
        data = {k: v for k, v in step.items() if k not in ("status", "by")}
        await self.sessions.transition(
            principal, sid, Action.SIGN, "signing.signed", data, {"signature": step}, document=document
        )
        log.info("signed %s in %.2f s (%d bytes)", sid, seconds, len(signed.pdf))
        return SignOutcome(document=document, seconds=seconds)

    async def _failed(self, principal: Principal, session_id: str, exc: signing.SigningError) -> None:
        reason = "timestamp_authority" if isinstance(exc, signing.TimestampError) else type(exc).__name__
        log.warning("signing %s failed: %s", session_id, exc)
        await self.sessions.record(
            session_id, "signing.failed", principal.actor, {"reason": reason, "message": str(exc)[:500]}
        )

    def _request(
        self,
        session: Session,
        officer: str,
        original: Document,
        trail: list[dict[str, Any]],
        tracks: list[dict[str, Any]],
        manifests: dict[str, bytes],
    ) -> signing.ContractSigningRequest:
        details = session.details
        signer_info = details.get("signer", {})
        signer_id = _first(trail, "invite.created", lambda d: d.get("role") == "signer", "participant_id")
        location = _location(trail, signer_id)
        identity, consent = details.get("identity", {}), details.get("consent", {})
        steps = [
            signing.CompletionStep(
                at=_dt(_parse_ts(trail[0]["ts"])), label="Signing created", actor=trail[0]["actor"]
            ),
        ]
        published = _first(trail, "media.published", lambda d: d.get("participant_id") == signer_id, "")
        if published:
            steps.append(
                signing.CompletionStep(
                    at=_dt(_parse_ts(published["ts"])),
                    label="Signer on video",
                    actor=published["actor"],
                    media_time_s=0.0,
                )
            )
        for label, step in (("Identity confirmed on video", identity), ("Consent given", consent)):
            if "at" not in step:  # a state reached without this API (an operator's repair)
                continue
            detail = step.get("notes") or ""
            if step.get("handwritten_signature_sha256"):
                detail = f"handwritten signature sha256 {step['handwritten_signature_sha256']}"
            steps.append(
                signing.CompletionStep(
                    at=_dt(_parse_ts(step["at"])),
                    label=label,
                    actor=step.get("by", ""),
                    media_time_s=step.get("media_time_s"),
                    detail=detail,
                )
            )
        evidence = {
            "format": "rtc-server.signing-evidence/1",
            "session_id": session.id,
            "title": session.title,
            "document": {"filename": original.filename, "sha256": original.sha256, "size": original.size},
            "signer": {k: v for k, v in signer_info.items() if k != "id_number_salt"}
            | {"participant_id": signer_id},
            "id_number_salt": signer_info.get("id_number_salt"),
            "identity": identity,
            "consent": consent,
            "location": location,
            "media_time": "seconds since the signer's first media.published event (recording clock base)",
            "audit_trail_head": trail[-1]["hash"],
            "recordings": tracks,
        }
        attachments = [
            signing.EvidenceAttachment(
                "audit-trail.json",
                json.dumps(trail, indent=1, ensure_ascii=False).encode(),
                "application/json",
                "Hash-chained audit trail of the session up to the signature",
            ),
            signing.EvidenceAttachment(
                "signing-evidence.json",
                json.dumps(evidence, indent=1, ensure_ascii=False).encode(),
                "application/json",
                "Identity and consent steps with media times, location, recording chain heads",
            ),
        ]
        for track_id, manifest in manifests.items():
            attachments.append(
                signing.EvidenceAttachment(
                    f"recording-{track_id}-manifest.json",
                    manifest,
                    "application/json",
                    "Signed recording manifest",
                )
            )
        notes = [f"Audit trail head (SHA-256 chain): {trail[-1]['hash']}"]
        if signer_info.get("id_number_masked"):
            notes.append(
                f"Signer ID number {signer_info['id_number_masked']} checked by the officer; its salted "
                f"SHA-256 is {signer_info.get('id_number_sha256')} (salt in signing-evidence.json)."
            )
        salt = signer_info.get("id_number_salt")
        completion = signing.CompletionRecord(
            transaction_id=session.id,
            document_name=original.filename,
            signer_name=signer_info.get("name", "signer"),
            officer=officer,
            signer_location=_location_text(location),
            completed_at=_dt(self.clock()),
            organization=self.service.config.organization,
            signer_id_verified=identity.get("status") == "confirmed",
            steps=steps,
            recordings=[signing.RecordingDigest(t["label"], t["sha256"]) for t in tracks],
            notes=notes,
        )
        return signing.ContractSigningRequest(
            transaction_id=session.id,
            signer=signing.SignerIdentity(
                name=signer_info.get("name", "signer"),
                email=signer_info.get("email"),
                id_number_sha256=signer_info.get("id_number_sha256"),
            ),
            completion=completion,
            id_salt=bytes.fromhex(salt) if salt else secrets.token_bytes(16),
            attachments=attachments,
            location=_location_text(location) if location else None,
        )

    # -- helpers ------------------------------------------------------------------------------------

    async def _signing(self, principal: Principal, session_id: str) -> Session:
        session = await self.sessions.get(principal, session_id)
        if session.kind is not SessionKind.SIGNING:
            raise NotFound("This session is not a signing.", code="not_a_signing")
        return session

    async def _signer_id(self, session_id: str) -> str:
        for p in await self.sessions.participants(session_id):
            if p.role is ParticipantRole.SIGNER:
                return p.id
        raise Conflict("The signing has no signer.", code="no_signer")  # pragma: no cover

    async def _media_time(self, session_id: str, participant_id: str, now: float) -> float | None:
        async with self.sessions.repo.read() as tx:
            trail = await tx.events(session_id)
        published = _first(trail, "media.published", lambda d: d.get("participant_id") == participant_id, "")
        if not published:
            return None
        return round(max(0.0, now - _parse_ts(published["ts"])), 3)


def _first(
    trail: Sequence[dict[str, Any]], kind: str, match: Callable[[dict[str, Any]], bool], key: str
) -> Any:
    for event in trail:
        if event["type"] == kind and match(event["data"]):
            return event["data"].get(key) if key else event
    return None


def _location(trail: Sequence[dict[str, Any]], participant_id: str | None) -> dict[str, Any] | None:
    found = None
    for event in trail:
        if event["type"] == "participant.location" and event["data"].get("participant_id") == participant_id:
            found = {**event["data"], "reported_at": event["ts"]}
    return found


def _location_text(location: dict[str, Any] | None) -> str:
    if not location:
        return "not shared by the signer's device"
    text = f"{location['latitude']:.5f}, {location['longitude']:.5f}"
    if location.get("accuracy") is not None:
        text += f" (+/- {location['accuracy']:.0f} m)"
    return f"{text}, reported by the signer's device at {location['reported_at']}"


def _with_png(request: signing.ContractSigningRequest, png: bytes) -> signing.ContractSigningRequest:
    from dataclasses import replace

    return replace(request, handwritten_png=png)


def _recording_evidence(session_dir: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Per recorded track: its sealed manifest and hash, or while still recording its chain head so far.

    A signing happens while the camera is still on: tracks are usually open, and their chain head
    at this moment is what the final manifest will extend.
    """
    tracks: list[dict[str, Any]] = []
    manifests: dict[str, bytes] = {}
    if not session_dir.is_dir():
        return tracks, manifests
    for track_dir in sorted(p for p in session_dir.iterdir() if p.is_dir()):
        manifest = track_dir / "manifest.json"
        if manifest.is_file():
            data = manifest.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            tracks.append(
                {
                    "track_id": track_dir.name,
                    "state": "sealed",
                    "label": f"{track_dir.name} manifest",
                    "sha256": digest,
                }
            )
            manifests[track_dir.name] = data
            continue
        try:
            journal = read_journal(track_dir)
        except Exception as exc:  # a damaged journal is reported, not fatal to the signature
            log.warning("recording journal of %s unreadable: %s", track_dir, exc)
            continue
        if journal.segments:
            last = journal.segments[-1]
            tracks.append(
                {
                    "track_id": track_dir.name,
                    "state": "recording",
                    "segments": len(journal.segments),
                    "label": f"{track_dir.name} chain head after {len(journal.segments)} segment(s)",
                    "sha256": last.chain,
                }
            )
    return tracks, manifests


def _api_error(exc: signing.SigningError) -> ApiError:
    if isinstance(exc, signing.TimestampError):
        return TimestampFailed(
            f"The timestamp authority failed; nothing was signed. Try again later. ({exc})",
        )
    if isinstance(exc, signing.PdfInputError):
        return BadRequest(f"The contract cannot be signed: {exc}", code="document_not_signable")
    return SigningUnavailable(f"Signing is unavailable: {exc}")
