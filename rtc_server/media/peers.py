"""One server-side peer connection each: a publisher feeding TrackSlots, or a viewer fed by them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.sdp import candidate_from_sdp

from .aiortc_tap import (
    ReceiverTap,
    accept_transport_cc,
    codec_preferences,
    hook_sender,
    install_receiver_tap,
    loopback_candidates,
    negotiated_codec,
    offered_codec,
)
from .errors import InvalidSdp
from .forwarding import ForwardTrack, TrackSlot
from .settings import MediaSettings
from .stats import MediaCounters
from .trickle import split_mdns_candidates

logger = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
AUDIO_CODECS = ("opus",)


def parse_offer(text: str, role: str) -> aiortc_sdp.SessionDescription:
    """Parse and check an offer: at most one audio and one video m-line, directions fitting the role."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSdp("empty SDP offer")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_OFFER_BYTES:
        raise InvalidSdp("SDP offer is too large")
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises assorted types on malformed input
        raise InvalidSdp(f"unparsable SDP offer: {exc}") from exc
    if not description.media:
        raise InvalidSdp("SDP offer has no media section")
    wanted = ("sendonly", "sendrecv") if role == "publisher" else ("recvonly", "sendrecv")
    seen: set[str] = set()
    for media in description.media:
        if media.kind not in ("audio", "video"):
            raise InvalidSdp(f"unsupported media section {media.kind!r}")
        if media.kind in seen:
            raise InvalidSdp(f"more than one {media.kind} section")
        seen.add(media.kind)
        if media.direction not in wanted:
            raise InvalidSdp(f"{media.kind} direction must be one of {wanted} for a {role}")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise InvalidSdp("SDP offer lacks ICE credentials")
        if media.dtls is None or not media.dtls.fingerprints:
            raise InvalidSdp("SDP offer lacks a DTLS fingerprint")
    return description


def _rtc_configuration(settings: MediaSettings) -> RTCConfiguration:
    # An explicit list, even empty: with iceServers=None aiortc would add Google's STUN server.
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in settings.ice_servers
    ]
    return RTCConfiguration(iceServers=servers)


class Peer:
    """What publishers and viewers share: the connection, its resource id, ETag and lifecycle."""

    role = "peer"

    def __init__(
        self,
        session_id: str,
        participant_id: str,
        settings: MediaSettings,
        counters: MediaCounters,
        on_failed: Callable[[Peer, str], None],
    ) -> None:
        self.resource_id = secrets.token_urlsafe(16)
        self.session_id = session_id
        self.participant_id = participant_id
        self.etag = f'"{secrets.token_hex(8)}"'
        self.created_at = time.monotonic()
        self.connected_at: float | None = None
        self.closed = False
        self.remote_ufrag: str | None = None
        self.bundle_mids: list[str] = []
        self._settings = settings
        self._counters = counters
        self._on_failed = on_failed
        self._mdns_task: asyncio.Task[None] | None = None
        self.pc = RTCPeerConnection(_rtc_configuration(settings))
        self.pc.on("connectionstatechange", self._connection_state_changed)

    def _connection_state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
        elif state in ("failed", "closed") and not self.closed:
            # "closed" without our close(): the remote hung up (DTLS close_notify) without a DELETE.
            self._on_failed(self, "connection_failed" if state == "failed" else "remote_closed")

    async def _negotiate(
        self,
        offer: str,
        description: aiortc_sdp.SessionDescription,
        before_answer: Callable[[], None] | None = None,
    ) -> str:
        ice = description.media[0].ice
        self.remote_ufrag = ice.usernameFragment if ice is not None else None
        bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
        self.bundle_mids = [str(mid) for mid in bundle.items] if bundle else []
        offer, mdns_candidates = split_mdns_candidates(offer)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if before_answer is not None:
                before_answer()
            answer = await self.pc.createAnswer()
        except InvalidSdp:
            raise
        except Exception as exc:  # aiortc signals unusable offers with ValueError/OperationError/...
            raise InvalidSdp(f"cannot answer this offer: {exc}") from exc
        with loopback_candidates(self._settings.loopback_candidates):
            await self.pc.setLocalDescription(answer)
        if mdns_candidates:
            self._mdns_task = asyncio.create_task(
                self._add_mdns_candidates(mdns_candidates), name="media-mdns"
            )
        return str(self.pc.localDescription.sdp)

    async def _add_mdns_candidates(self, candidates: list[tuple[str | None, str]]) -> None:
        """Resolve the client's mDNS candidates after answering (LAN clients), never before."""

        async def add(mid: str | None, line: str) -> None:
            with contextlib.suppress(Exception):  # unresolvable or malformed: peer-reflexive covers it
                candidate = candidate_from_sdp(line.split(":", 1)[1])
                candidate.sdpMid = self.candidate_mid(mid)
                if candidate.sdpMid is None:
                    candidate.sdpMLineIndex = 0
                await self.pc.addIceCandidate(candidate)

        await asyncio.gather(*(add(mid, line) for mid, line in candidates))

    def candidate_mid(self, mid: str | None) -> str | None:
        """With BUNDLE every m-line shares the first one's transport; aiortc only looks there."""
        if self.bundle_mids and (mid is None or mid in self.bundle_mids):
            return self.bundle_mids[0]
        return mid

    def last_activity(self) -> float | None:
        return None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._detach()
        task, self._mdns_task = self._mdns_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Shielded: aiortc may be closing the connection itself (remote hang-up) and awaits the same
        # internal future; cancelling us must not cancel that future under it.
        with contextlib.suppress(Exception):
            await asyncio.shield(self.pc.close())

    def _detach(self) -> None:
        """Unhook from slots; subclasses override."""


class PublisherPeer(Peer):
    role = "publisher"

    def __init__(
        self,
        session_id: str,
        participant_id: str,
        settings: MediaSettings,
        counters: MediaCounters,
        on_failed: Callable[[Peer, str], None],
    ) -> None:
        super().__init__(session_id, participant_id, settings, counters, on_failed)
        self.taps: dict[str, tuple[ReceiverTap, TrackSlot]] = {}

    async def start(self, offer: str, slot_for: Callable[[str], TrackSlot]) -> str:
        description = parse_offer(offer, "publisher")
        for media in description.media:
            names = AUDIO_CODECS if media.kind == "audio" else self._settings.video_codecs
            chosen = offered_codec(media.rtp.codecs, names)
            if chosen is None:
                raise InvalidSdp(f"the {media.kind} section offers none of {', '.join(names)}")
            transceiver = self.pc.addTransceiver(media.kind, direction="recvonly")
            # Video from a browser comes with ULPFEC when it can (VP8): see media/fec.py.
            transceiver.setCodecPreferences(
                codec_preferences(media.kind, (chosen,), fec=self._settings.publisher_fec)
            )
        answer = await self._negotiate(offer, description, lambda: self._accept_transport_cc(description))
        for transceiver in self.pc.getTransceivers():
            self._tap(transceiver, slot_for(transceiver.kind))
        return answer

    def _accept_transport_cc(self, description: aiortc_sdp.SessionDescription) -> None:
        if not self._settings.publisher_transport_cc:
            return
        offered = {str(m.rtp.muxId): m for m in description.media}
        for transceiver in self.pc.getTransceivers():
            media = offered.get(str(transceiver.mid))
            if transceiver.kind == "video" and media is not None:
                accept_transport_cc(transceiver, media.rtp.headerExtensions)

    def _tap(self, transceiver: RTCRtpTransceiver, slot: TrackSlot) -> None:
        tap = install_receiver_tap(
            transceiver,
            slot.deliver,
            self._counters,
            self._settings.reorder_wait_s,
            self._settings.nack_retry_interval_s,
            bitrate_limit=slot.viewer_bitrate_limit if transceiver.kind == "video" else None,
            reorder_wait_max_s=self._settings.reorder_wait_max_s,
            packet_sink=slot.forward,
        )
        tap.on_keyframe_wanted(slot.request_keyframe)
        codec = negotiated_codec(transceiver)
        assert codec is not None
        slot.attach_source(tap, codec[0], codec[1])
        self.taps[transceiver.kind] = (tap, slot)

    def last_activity(self) -> float | None:
        times = [tap.last_rtp_at for tap, _ in self.taps.values() if tap.last_rtp_at is not None]
        return max(times) if times else None

    def _detach(self) -> None:
        for tap, slot in self.taps.values():
            slot.detach_source(tap)

    async def close(self) -> None:
        await super().close()
        for tap, _ in self.taps.values():
            await tap.stop()


class ViewerPeer(Peer):
    role = "viewer"

    def __init__(
        self,
        session_id: str,
        participant_id: str,
        settings: MediaSettings,
        counters: MediaCounters,
        on_failed: Callable[[Peer, str], None],
    ) -> None:
        super().__init__(session_id, participant_id, settings, counters, on_failed)
        self.tracks: dict[str, ForwardTrack] = {}
        # None: follow whichever participant of the session publishes last.
        self.source_participant_id: str | None = None

    async def start(self, offer: str, codec_hint: Callable[[str], str | None]) -> str:
        """codec_hint(kind) names the codec the source already publishes, so the viewer can take it."""
        description = parse_offer(offer, "viewer")
        for media in description.media:
            names = AUDIO_CODECS if media.kind == "audio" else self._settings.video_codecs
            hint = codec_hint(media.kind)
            if hint is not None:
                names = (hint, *(n for n in names if n != hint))
            chosen = offered_codec(media.rtp.codecs, names)
            if chosen is None:
                raise InvalidSdp(f"the {media.kind} section offers none of {', '.join(names)}")
            size = (
                self._settings.viewer_video_queue
                if media.kind == "video"
                else self._settings.viewer_audio_queue
            )
            track = ForwardTrack(media.kind, size, self._counters, self._settings.viewer_max_queue_delay_s)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(media.kind, (chosen,)))
            hook_sender(
                transceiver.sender,
                track,
                self._keyframe_requester(track),
                self._counters,
                on_bitrate_estimate=self._estimate_recorder(track),
                playout_delay_ms=self._settings.viewer_playout_delay_ms,
                redundancy_loss=self._settings.viewer_redundancy_loss,
            )
            self.tracks[media.kind] = track
        answer = await self._negotiate(offer, description)
        for transceiver in self.pc.getTransceivers():
            codec = negotiated_codec(transceiver)
            assert codec is not None
            self.tracks[transceiver.kind].set_codec(*codec)
        return answer

    @staticmethod
    def _keyframe_requester(track: ForwardTrack) -> Callable[[], None]:
        def request() -> None:
            if track.slot is not None:
                track.slot.request_keyframe()

        return request

    @staticmethod
    def _estimate_recorder(track: ForwardTrack) -> Callable[[int], None]:
        def record(bitrate: int) -> None:
            track.bitrate_estimate = bitrate

        return record

    def last_activity(self) -> float | None:
        return None

    def _detach(self) -> None:
        for track in self.tracks.values():
            if track.slot is not None:
                track.slot.remove_viewer(track)
            track.stop()


async def close_all(peers: list[Peer]) -> None:
    """Close peers concurrently; a failure to close one never keeps the others open."""
    if peers:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
