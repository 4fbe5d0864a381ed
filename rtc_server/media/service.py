"""MediaService: the facade the HTTP layer drives (WHIP publish, WHEP subscribe, trickle, teardown).

Lifecycle: construct with MediaSettings inside a running loop, call the async methods, `await close()`.
Every peer connection and task the service starts is stopped by cancel-and-await in delete,
end_session or close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .errors import AtCapacity, IceRestartUnsupported, InvalidSdp, SessionEnded, StaleETag, UnknownResource
from .forwarding import EncodedFrameTap, TrackSlot
from .peers import Peer, PublisherPeer, ViewerPeer
from .settings import MediaSettings
from .stats import MediaCounters, MediaStats
from .trickle import parse_sdpfrag

logger = logging.getLogger(__name__)

_ENDED_MEMORY = 10_000


@dataclass(frozen=True, slots=True)
class PeerHandle:
    """What publish/subscribe return. etag is a complete entity-tag, quotes included."""

    resource_id: str
    answer_sdp: str
    etag: str
    session_id: str
    participant_id: str
    role: str


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A peer went away. reason: deleted, replaced, session_ended, shutdown, no_media,
    connect_timeout, connection_failed or remote_closed."""

    resource_id: str
    session_id: str
    participant_id: str
    role: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who a resource belongs to, so the HTTP layer can check a token against it before PATCH/DELETE."""

    resource_id: str
    session_id: str
    participant_id: str
    role: str
    connected: bool


@dataclass(slots=True)
class _SessionMedia:
    slots: dict[tuple[str, str], TrackSlot] = field(default_factory=dict)
    publishers: dict[str, PublisherPeer] = field(default_factory=dict)
    viewers: dict[ViewerPeer, str | None] = field(default_factory=dict)
    latest_publisher: str | None = None
    # Offers being answered: the record must outlive them even if every other peer leaves meanwhile.
    negotiating: int = 0

    @property
    def empty(self) -> bool:
        return not self.slots and not self.publishers and not self.viewers and not self.negotiating


def _etag_value(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


class MediaService:
    """The SFU. One instance per process (or per media worker); no global state."""

    def __init__(self, settings: MediaSettings, on_peer_closed: Callable[[PeerEvent], None] | None = None):
        self.settings = settings
        self.counters = MediaCounters()
        self._on_peer_closed = on_peer_closed
        self._peers: dict[str, Peer] = {}
        self._sessions: dict[str, _SessionMedia] = {}
        self._ended: deque[str] = deque(maxlen=_ENDED_MEMORY)
        self._reserved = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False

    # --- publish / subscribe ----------------------------------------------------------------------

    async def publish(self, session_id: str, participant_id: str, offer_sdp: str) -> PeerHandle:
        """Answer a WHIP offer (sendonly audio and/or video). Replaces this participant's previous
        publisher; viewers already watching it switch to the new one without renegotiation."""
        self._check_open(session_id)
        with self._reservation():
            previous = self._sessions.get(session_id, _SessionMedia()).publishers.get(participant_id)
            if previous is not None:
                await self._close_peer(previous, "replaced")
            # Looked up after the close: closing the last peer of a session drops its record.
            session = self._sessions.setdefault(session_id, _SessionMedia())
            peer = PublisherPeer(session_id, participant_id, self.settings, self.counters, self._peer_failed)
            self._peers[peer.resource_id] = peer

            def slot_for(kind: str) -> TrackSlot:
                return self._slot(session, participant_id, kind)

            answer = await self._negotiate(session_id, session, peer, peer.start(offer_sdp, slot_for))
            session.publishers[participant_id] = peer
            session.latest_publisher = participant_id
            for viewer, bound in list(session.viewers.items()):
                if bound is None:
                    self._bind(session, viewer, participant_id)
        self._ensure_watchdog()
        return PeerHandle(peer.resource_id, answer, peer.etag, session_id, participant_id, peer.role)

    async def subscribe(
        self, session_id: str, viewer_id: str, offer_sdp: str, source_participant_id: str | None = None
    ) -> PeerHandle:
        """Answer a WHEP offer (recvonly). Source: the given participant, else the session's latest
        publisher, else whoever publishes first. Media flows as soon as the source publishes."""
        self._check_open(session_id)
        with self._reservation():
            session = self._sessions.setdefault(session_id, _SessionMedia())
            source = source_participant_id or session.latest_publisher
            peer = ViewerPeer(session_id, viewer_id, self.settings, self.counters, self._peer_failed)
            self._peers[peer.resource_id] = peer

            def codec_hint(kind: str) -> str | None:
                slot = session.slots.get((source, kind)) if source is not None else None
                return slot.codec if slot is not None and slot.source is not None else None

            answer = await self._negotiate(session_id, session, peer, peer.start(offer_sdp, codec_hint))
            session.viewers[peer] = None
            # The source may have started publishing while we negotiated.
            source = source_participant_id or session.latest_publisher
            if source is not None:
                self._bind(session, peer, source)
        self._ensure_watchdog()
        return PeerHandle(peer.resource_id, answer, peer.etag, session_id, viewer_id, peer.role)

    async def _negotiate(
        self, session_id: str, session: _SessionMedia, peer: Peer, start: Awaitable[str]
    ) -> str:
        """Run a peer's offer/answer; on any failure close it and drop an emptied session record."""
        session.negotiating += 1
        try:
            answer = await start
            self._check_open(session_id)  # end_session() may have run meanwhile
        except BaseException:
            session.negotiating -= 1
            await self._close_peer(peer, "rejected", notify=False)
            await self._discard(session_id, session)
            raise
        session.negotiating -= 1
        return answer

    # --- trickle, teardown ------------------------------------------------------------------------

    async def add_ice_candidates(self, resource_id: str, sdpfrag: str, if_match: str | None) -> str:
        """Apply a trickle-ice-sdpfrag PATCH body (RFC 9725 4.3). Returns the (unchanged) ETag.

        if_match None or "*" matches any. New ICE credentials mean an ICE restart: refused."""
        peer = self._peers.get(resource_id)
        if peer is None or peer.closed:
            raise UnknownResource(f"no media resource {resource_id!r}")
        if if_match is not None and if_match.strip() != "*":
            if _etag_value(if_match) != _etag_value(peer.etag):
                raise StaleETag("If-Match does not match the resource's ETag")
        frag = parse_sdpfrag(sdpfrag)
        if frag.ice_ufrag is not None and frag.ice_ufrag != peer.remote_ufrag:
            raise IceRestartUnsupported("ICE restart is not supported: re-publish instead")
        for candidate in frag.candidates:
            candidate.sdpMid = peer.candidate_mid(candidate.sdpMid)
            if candidate.sdpMid is not None:
                candidate.sdpMLineIndex = None
            try:
                await peer.pc.addIceCandidate(candidate)
            except Exception as exc:  # aiortc/aioice reject odd candidates with assorted errors
                raise InvalidSdp(f"candidate refused: {exc}") from exc
        if frag.end_of_candidates:
            await peer.pc.addIceCandidate(None)
        return peer.etag

    async def delete(self, resource_id: str) -> None:
        """Stop a publisher or viewer (WHIP/WHEP DELETE)."""
        peer = self._peers.get(resource_id)
        if peer is None:
            raise UnknownResource(f"no media resource {resource_id!r}")
        await self._close_peer(peer, "deleted")

    async def end_session(self, session_id: str) -> None:
        """Close every peer of the session and its taps (recorders see end of stream); no media after."""
        self._ended.append(session_id)
        session = self._sessions.get(session_id)
        if session is None:
            return
        peers: list[Peer] = [*session.publishers.values(), *session.viewers]
        await asyncio.gather(*(self._close_peer(p, "session_ended") for p in peers))
        for slot in list(session.slots.values()):
            await slot.close()
        session.slots.clear()
        self._sessions.pop(session_id, None)

    async def close(self) -> None:
        """Stop everything: peers, slots, watchdog and helper tasks."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            # Closes already under way (remote hang-ups): let them finish rather than cut them short.
            await asyncio.gather(*self._tasks, return_exceptions=True)
        peers = list(self._peers.values())
        await asyncio.gather(*(self._close_peer(p, "shutdown") for p in peers))
        for session in list(self._sessions.values()):
            for slot in list(session.slots.values()):
                await slot.close()
        self._sessions.clear()
        tasks = [t for t in (self._watchdog, *self._tasks) if t is not None]
        self._watchdog = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # --- queries, taps ----------------------------------------------------------------------------

    def last_video_frame_at(self, session_id: str, participant_id: str) -> float | None:
        """time.time() at which the participant's last complete video frame arrived, or None."""
        session = self._sessions.get(session_id)
        slot = session.slots.get((participant_id, "video")) if session else None
        return slot.last_frame_wallclock if slot is not None else None

    def is_live(self, session_id: str, participant_id: str, within_s: float = 2.0) -> bool:
        """True if a video frame of this participant arrived within the last `within_s` seconds."""
        at = self.last_video_frame_at(session_id, participant_id)
        return at is not None and time.time() - at <= within_s

    def open_tap(self, session_id: str, participant_id: str, kind: str) -> EncodedFrameTap:
        """A bounded queue of this participant's encoded frames of `kind` (audio or video), fed from
        now on, across publisher reconnects, until tap.close() or end_session()."""
        if kind not in ("audio", "video"):
            raise ValueError("kind must be 'audio' or 'video'")
        self._check_open(session_id)
        session = self._sessions.setdefault(session_id, _SessionMedia())
        slot = self._slot(session, participant_id, kind)

        def on_close(tap: EncodedFrameTap) -> None:
            slot.taps.discard(tap)

        tap = EncodedFrameTap(self.settings.tap_queue, self.counters, on_close)
        slot.taps.add(tap)
        return tap

    def request_keyframe(self, session_id: str, participant_id: str) -> bool:
        """Ask a publisher for a keyframe (rate-limited), e.g. for a snapshot. False if not publishing."""
        session = self._sessions.get(session_id)
        slot = session.slots.get((participant_id, "video")) if session else None
        if slot is None or slot.source is None:
            return False
        slot.request_keyframe()
        return True

    def has_resource(self, resource_id: str) -> bool:
        return resource_id in self._peers

    def peer_info(self, resource_id: str) -> PeerInfo | None:
        peer = self._peers.get(resource_id)
        if peer is None:
            return None
        connected = peer.pc.connectionState == "connected"
        return PeerInfo(peer.resource_id, peer.session_id, peer.participant_id, peer.role, connected)

    @property
    def peer_count(self) -> int:
        return len(self._peers)

    def stats(self) -> MediaStats:
        publishers = sum(1 for p in self._peers.values() if isinstance(p, PublisherPeer))
        return self.counters.snapshot(publishers=publishers, viewers=len(self._peers) - publishers)

    # --- internals --------------------------------------------------------------------------------

    def _check_open(self, session_id: str) -> None:
        if self._closed:
            raise SessionEnded("media service is closed")
        if session_id in self._ended:
            raise SessionEnded(f"session {session_id!r} has ended")

    @contextlib.contextmanager
    def _reservation(self) -> Any:
        # Counted before the first await so that concurrent offers cannot overshoot max_peers.
        if len(self._peers) + self._reserved >= self.settings.max_peers:
            raise AtCapacity(f"media server is at capacity ({self.settings.max_peers} peers)")
        self._reserved += 1
        try:
            yield
        finally:
            self._reserved -= 1

    def _slot(self, session: _SessionMedia, participant_id: str, kind: str) -> TrackSlot:
        slot = session.slots.get((participant_id, kind))
        if slot is None:
            slot = TrackSlot(
                kind,
                self.counters,
                self.settings.keyframe_min_interval_s,
                self.settings.viewer_bitrate_floor_bps,
            )
            session.slots[(participant_id, kind)] = slot
        return slot

    async def _discard(self, session_id: str, session: _SessionMedia) -> None:
        """After a failed offer: drop the record if nothing else uses it; if end_session() already
        dropped it, close the slots this negotiation attached to the orphaned record."""
        if self._sessions.get(session_id) is not session:
            for slot in list(session.slots.values()):
                await slot.close()
            session.slots.clear()
            return
        for key, slot in list(session.slots.items()):
            if slot.idle and session.slots.get(key) is slot:
                del session.slots[key]
                await slot.close()
        self._drop_if_empty(session_id, session)

    def _drop_if_empty(self, session_id: str, session: _SessionMedia) -> None:
        if session.empty and self._sessions.get(session_id) is session:
            del self._sessions[session_id]

    def _bind(self, session: _SessionMedia, viewer: ViewerPeer, participant_id: str) -> None:
        session.viewers[viewer] = participant_id
        for kind, track in viewer.tracks.items():
            if track.slot is not None:
                track.slot.remove_viewer(track)
            self._slot(session, participant_id, kind).add_viewer(track)

    async def _close_peer(self, peer: Peer, reason: str, notify: bool = True) -> None:
        if self._peers.get(peer.resource_id) is not peer:
            return
        del self._peers[peer.resource_id]
        session = self._sessions.get(peer.session_id)
        if session is not None:
            if isinstance(peer, PublisherPeer) and session.publishers.get(peer.participant_id) is peer:
                del session.publishers[peer.participant_id]
            if isinstance(peer, ViewerPeer):
                session.viewers.pop(peer, None)
        await peer.close()
        if session is not None:
            for key, slot in list(session.slots.items()):
                # Concurrent closes (end_session) may race here: whoever pops the slot closes it.
                if slot.idle and session.slots.get(key) is slot:
                    del session.slots[key]
                    await slot.close()
            self._drop_if_empty(peer.session_id, session)
        if notify and self._on_peer_closed is not None:
            event = PeerEvent(peer.resource_id, peer.session_id, peer.participant_id, peer.role, reason)
            try:
                self._on_peer_closed(event)
            except Exception:
                logger.exception("on_peer_closed callback failed")

    def _peer_failed(self, peer: Peer, reason: str) -> None:
        self._spawn(self._close_peer(peer, reason))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None and not self._closed:
            self._watchdog = asyncio.create_task(self._run_watchdog(), name="media-watchdog")

    async def _run_watchdog(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.watchdog_interval_s)
            now = time.monotonic()
            for peer in list(self._peers.values()):
                if peer.closed:
                    continue
                if peer.connected_at is None:
                    if now - peer.created_at > settings.connect_timeout_s:
                        await self._close_peer(peer, "connect_timeout")
                    continue
                if isinstance(peer, PublisherPeer):
                    last = peer.last_activity() or peer.connected_at
                    if now - last > settings.liveness_timeout_s:
                        self.counters.peers_closed_dead += 1
                        logger.info("closing publisher %s: no RTP for %.1f s", peer.resource_id, now - last)
                        await self._close_peer(peer, "no_media")
