"""Recording every published track: media taps -> `recordings.TrackRecorder`, one folder per track.

Layout: <data>/recordings/<session_id>/<participant_id>_<kind>_<n>/ (journal, segments, manifest).
A participant's audio and video share one clock base, so their segments line up in playback. A track
is recorded from the participant's first frame to the end of the session, across publisher
reconnects; a codec change (a phone that republishes with H.264) starts a new track folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import recordings
from recordings.journal import read_journal
from rtc_server.media import EncodedFrame, EncodedFrameTap, MediaService
from rtc_server.tls import write_private
from signing import SigningService

log = logging.getLogger(__name__)

_CODECS = {"VP8": "vp8", "H264": "h264", "opus": "opus"}

EventSink = Callable[[str, str, dict[str, Any]], None]  # (session_id, event type, data)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The server's manifest key (ECDSA P-256), created once with mode 0600."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an ECDSA key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return key


def manifest_certificates(
    signing: SigningService, key: ec.EllipticCurvePrivateKey, path: Path
) -> list[x509.Certificate]:
    """Blocking: the manifest key's certificate chain, issued once by the bank's CA and kept beside it."""

    def spki(public: Any) -> bytes:
        return bytes(
            public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    public_der = spki(key.public_key())
    if path.exists():
        # Reissued when the key changed or the certificate is about to expire.
        chain = x509.load_pem_x509_certificates(path.read_bytes())
        leaf = chain[0]
        if (
            spki(leaf.public_key()) == public_der
            and leaf.not_valid_after_utc.timestamp() > time.time() + 86400
        ):
            return chain
    chain = [
        x509.load_der_x509_certificate(der) for der in signing.certify_key(public_der, "rtc-server evidence")
    ]
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return chain


def public_key_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class _Participant:
    clock_base: float
    pumps: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    taps: dict[str, EncodedFrameTap] = field(default_factory=dict)


class RecordingService:
    def __init__(
        self,
        root: Path,
        signer: recordings.ManifestSigner,
        media: MediaService,
        on_event: EventSink,
        on_bytes: Callable[[int], None] | None = None,
        config: recordings.RecorderConfig | None = None,
    ) -> None:
        self.root = root
        self.signer = signer
        self.media = media
        self.on_event = on_event
        self.on_bytes = on_bytes
        self.config = config or recordings.RecorderConfig()
        self._sessions: dict[str, dict[str, _Participant]] = {}

    def session_dir(self, session_id: str) -> Path:
        return self.root / session_id

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, session_id: str, participant_id: str) -> None:
        """Record this participant's audio and video from now on (idempotent)."""
        participants = self._sessions.setdefault(session_id, {})
        if participant_id in participants:
            return
        state = _Participant(clock_base=time.time())
        participants[participant_id] = state
        for kind in ("audio", "video"):
            tap = self.media.open_tap(session_id, participant_id, kind)
            state.taps[kind] = tap
            state.pumps[kind] = asyncio.create_task(
                self._pump(session_id, participant_id, kind, tap, state.clock_base),
                name=f"record-{session_id}-{participant_id}-{kind}",
            )

    async def stop_session(self, session_id: str) -> None:
        """Seal every track of the session (the taps end, the pumps close their recorders)."""
        participants = self._sessions.pop(session_id, {})
        for state in participants.values():
            for tap in state.taps.values():
                tap.close()
        pumps = [p for state in participants.values() for p in state.pumps.values()]
        if pumps:
            await asyncio.gather(*pumps, return_exceptions=True)

    async def close(self) -> None:
        for session_id in list(self._sessions):
            await self.stop_session(session_id)

    async def _pump(
        self, session_id: str, participant_id: str, kind: str, tap: EncodedFrameTap, clock_base: float
    ) -> None:
        recorder: recordings.TrackRecorder | None = None
        anchor = _StartAnchor()
        serial = 0
        previous: EncodedFrame | None = None
        try:
            async for frame in tap:
                codec = _CODECS.get(frame.codec)
                if codec is None:
                    continue
                new_stream = previous is not None and _restarted(previous, frame)
                previous = frame
                if recorder is None or recorder.track.codec != codec or new_stream:
                    if recorder is not None:
                        _submit(recorder, anchor.release())
                        await recorder.close()
                    # After a restart the session's earlier tracks are sealed folders: never reuse one.
                    serial = await asyncio.to_thread(
                        self._next_serial, session_id, participant_id, kind, serial
                    )
                    recorder = self._recorder(session_id, participant_id, kind, serial, codec, clock_base)
                    anchor = _StartAnchor()
                _submit(recorder, anchor.add(frame))
        except recordings.RecordingError as exc:
            log.warning("recording of %s/%s %s stopped: %s", session_id, participant_id, kind, exc)
        except Exception as exc:
            # Evidence must never stop silently: the officer sees this in the session's trail.
            log.exception("recording of %s/%s %s failed", session_id, participant_id, kind)
            self.on_event(
                session_id,
                "recording.failed",
                {
                    "participant_id": participant_id,
                    "kind": kind,
                    "reason": "internal_error",
                    "message": str(exc),
                },
            )
        finally:
            if recorder is not None:
                with contextlib.suppress(recordings.RecordingError):
                    _submit(recorder, anchor.release())
                await recorder.close()

    def _next_serial(self, session_id: str, participant_id: str, kind: str, after: int) -> int:
        serial = after + 1
        while (self.session_dir(session_id) / f"{participant_id}_{kind}_{serial}").exists():
            serial += 1
        return serial

    def _recorder(
        self, session_id: str, participant_id: str, kind: str, serial: int, codec: str, clock_base: float
    ) -> recordings.TrackRecorder:
        track_id = f"{participant_id}_{kind}_{serial}"
        track_dir = self.session_dir(session_id) / track_id
        info = recordings.TrackInfo(
            track_id=track_id, codec=codec, clock_base=clock_base, participant=participant_id
        )

        def on_event(event: recordings.RecorderEvent) -> None:
            self._recorder_event(session_id, participant_id, event)

        def keyframe_needed() -> None:
            self.media.request_keyframe(session_id, participant_id)

        return recordings.TrackRecorder(
            track_dir, info, self.signer, self.config, on_event=on_event, keyframe_needed=keyframe_needed
        )

    def _recorder_event(self, session_id: str, participant_id: str, event: recordings.RecorderEvent) -> None:
        if isinstance(event, recordings.SegmentSealed):
            if self.on_bytes is not None:
                self.on_bytes(event.entry.size)
        elif isinstance(event, recordings.RecordingFailed):
            storage_full = isinstance(event.error, recordings.StorageFullError)
            self.on_event(
                session_id,
                "recording.failed",
                {
                    "participant_id": participant_id,
                    "track_id": event.track_id,
                    "reason": "disk_full" if storage_full else "write_error",
                    "message": str(event.error),
                },
            )
        elif isinstance(event, recordings.FramesDropped):
            self.on_event(
                session_id,
                "recording.frames_dropped",
                {"participant_id": participant_id, "track_id": event.track_id, "count": event.count},
            )
        elif isinstance(event, recordings.RecordingClosed) and event.manifest is not None:
            signed = event.manifest["signed"]
            self.on_event(
                session_id,
                "recording.sealed",
                {
                    "participant_id": participant_id,
                    "track_id": event.track_id,
                    "segments": signed["segment_count"],
                    "chain_head": signed["chain_head"],
                    "end_reason": signed["end_reason"],
                },
            )

    # -- crash recovery -----------------------------------------------------------------------------

    def recover_all(self) -> list[recordings.RecoveryReport]:
        """Blocking (run in a thread at start-up): seal every track a crash left open."""
        reports: list[recordings.RecoveryReport] = []
        if not self.root.exists():
            return reports
        for journal in sorted(self.root.glob("*/*/journal.jsonl")):
            track_dir = journal.parent
            try:
                report = recordings.recover(track_dir, self.signer)
            except recordings.RecordingError as exc:
                log.error("could not recover %s: %s", track_dir, exc)
                continue
            if not report.already_sealed:
                log.warning(
                    "recovered %s: %d sealed, %d recovered, %d dropped",
                    track_dir,
                    report.sealed,
                    len(report.recovered),
                    len(report.dropped),
                )
                reports.append(report)
        return reports

    # -- reading ------------------------------------------------------------------------------------

    def describe(self, session_id: str) -> list[dict[str, Any]]:
        """Blocking: one entry per recorded track, from its manifest (sealed) or journal (recording)."""
        base = self.session_dir(session_id)
        if not base.exists():
            return []
        tracks = []
        for track_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            manifest_path = track_dir / "manifest.json"
            if manifest_path.exists():
                signed = json.loads(manifest_path.read_bytes())["signed"]
                track, segments, sealed = signed["track"], signed["segments"], True
                chain_head = signed["chain_head"]
            else:
                state = read_journal(track_dir)
                if state.track is None:
                    continue
                track, sealed = state.track, False
                segments = [s.to_json() for s in state.segments]
                chain_head = segments[-1]["chain"] if segments else None
            tracks.append(
                {
                    "track_id": track_dir.name,
                    "participant_id": track.get("participant"),
                    "kind": track.get("kind"),
                    "codec": track.get("codec"),
                    "sealed": sealed,
                    "chain_head": chain_head,
                    "segments": [
                        {
                            k: s[k]
                            for k in (
                                "index",
                                "file",
                                "size",
                                "sha256",
                                "media_start_us",
                                "media_end_us",
                                "wall_start_us",
                                "wall_end_us",
                                "chain",
                            )
                        }
                        for s in segments
                    ],
                    "manifest_url": (
                        f"/api/v1/sessions/{session_id}/recordings/{track_dir.name}/manifest.json"
                        if sealed
                        else None
                    ),
                }
            )
        return tracks


class _StartAnchor:
    """Holds a new stream's first frames for a moment, to place the stream on the participant's clock
    by its least-delayed frame. Anchored on the first frame alone, a first keyframe that waited for
    a retransmission would shift the whole track, and so the lip sync, by that wait."""

    WINDOW_S = 0.5
    MAX_FRAMES = 60

    def __init__(self) -> None:
        self.held: list[EncodedFrame] = []
        self.done = False

    def add(self, frame: EncodedFrame) -> list[EncodedFrame]:
        """Frames ready to record (none while the window is still open)."""
        if self.done:
            return [frame]
        self.held.append(frame)
        if frame.received_at - self.held[0].received_at < self.WINDOW_S and len(self.held) < self.MAX_FRAMES:
            return []
        return self.release()

    def release(self) -> list[EncodedFrame]:
        self.done = True
        if not self.held:
            return []
        first = self.held[0]
        # Each frame says when the first one would have arrived had it been as quick as this one.
        start = min(f.wallclock - _rtp_delta(first, f) / f.clock_rate for f in self.held)
        ready = [dataclasses.replace(first, wallclock=start), *self.held[1:]]
        self.held = []
        return ready


def _rtp_delta(earlier: EncodedFrame, later: EncodedFrame) -> int:
    delta = (later.rtp_timestamp - earlier.rtp_timestamp) % (1 << 32)
    return delta - (1 << 32) if delta >= 1 << 31 else delta


def _submit(recorder: recordings.TrackRecorder, frames: list[EncodedFrame]) -> None:
    for frame in frames:
        recorder.submit(_frame(frame))


# RTP time may run this far from wall-clock time before we call it a new stream (a republish).
_RESTART_TOLERANCE_S = 2.0


def _restarted(previous: EncodedFrame, frame: EncodedFrame) -> bool:
    """A publisher that reconnects starts a new RTP timeline at a random timestamp: its frames must go
    to a new track folder on the participant's clock, not be read as a jump in the old one."""
    delta = _rtp_delta(previous, frame)
    expected = (frame.wallclock - previous.wallclock) * frame.clock_rate
    return abs(delta - expected) > _RESTART_TOLERANCE_S * frame.clock_rate


def _frame(frame: EncodedFrame) -> recordings.EncodedFrame:
    return recordings.EncodedFrame(
        data=frame.data, pts=frame.rtp_timestamp, keyframe=frame.keyframe, wallclock=frame.wallclock
    )
