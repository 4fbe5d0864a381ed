"""Every use of aiortc/aioice internals lives here, pinned to aiortc 1.16 by tests/media/test_aiortc_tap.py.

aiortc decodes all it receives and encodes all it sends. The pass-through path uses three seams:

* receive: `RTCRtpReceiver._handle_rtp_packet` unwraps RTX, sends NACKs, depayloads into
  `packet._data` and then calls `self.__jitter_buffer.add(packet)`, decoding whatever frame that
  returns. `ReceiverTap` replaces the jitter buffer: it assembles frames at the marker bit, hands them
  to a TrackSlot and returns no frame, so aiortc's decoder thread stays idle.
* send: `RTCRtpSender._run_rtp` (which would pull frames from the track, encode and packetise them)
  is replaced per sender by `forward_packets`, which sends the publisher's own packets as a
  ForwardTrack renumbered them, and keeps aiortc's RTP history and Sender Report counters up to
  date. PLI/FIR from a viewer call `sender._send_keyframe()` and NACKs call `sender._retransmit(seq)`
  (answered from that history, over RTX when negotiated); both are hooked here.
* FEC: aiortc knows neither red nor ulpfec. They are added to its video codec list (offered only to
  publishers, see `codec_preferences`), and the DTLS transport's RtpPacket keeps the decrypted
  datagram as `packet.raw`, which ULPFEC recovery XORs over (see fec.py).
* ICE: aioice's `get_host_addresses` never returns 127.0.0.1; `loopback_candidates()` adds it for
  the gathering done inside the context, nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from struct import pack
from typing import Any

import aioice.ice
import aiortc
import aiortc.codecs
import aiortc.rtcdtlstransport
from aioice.ice import StunProtocol
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, clock
from aiortc.codecs.vpx import vp8_depayload as depayload_vp8
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpsender import RTP_HISTORY_SIZE
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from .assembler import AudioAssembler, VideoAssembler
from .errors import UnsupportedAiortc
from .fec import UlpfecReceiver, standin
from .forwarding import ForwardTrack, OutPacket
from .frames import H264, VP8
from .redundancy import RedundancyControl
from .redundancy import State as RedundancyState
from .stats import MediaCounters
from .twcc import TransportFeedback

logger = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16."
H264_FMTP = {"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42e01f"}


def check_aiortc_version(version: str | None = None) -> None:
    """The tap reaches into aiortc's private attributes: refuse any other minor version."""
    found = aiortc.__version__ if version is None else version
    if not found.startswith(SUPPORTED_AIORTC):
        raise UnsupportedAiortc(
            f"rtc_server.media needs aiortc {SUPPORTED_AIORTC}x (found {found}); "
            "re-check rtc_server/media/aiortc_tap.py against the new aiortc source"
        )


check_aiortc_version()

_JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_NACK_GENERATOR_ATTR = "_RTCRtpReceiver__nack_generator"
_RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"
_RECEIVER_KIND_ATTR = "_RTCRtpReceiver__kind"
_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"

# aiortc answers only with header extensions it lists; a viewer's browser offers playout-delay.
if not any(ext.uri == PLAYOUT_DELAY_URI for ext in aiortc.codecs.HEADER_EXTENSIONS["video"]):
    aiortc.codecs.HEADER_EXTENSIONS["video"].append(
        RTCRtpHeaderExtensionParameters(id=6, uri=PLAYOUT_DELAY_URI)
    )
# Spacing of a redundant copy: past a short burst of loss, far below a round trip.
REDUNDANT_DELAY_S = 0.01
RED = "red"
ULPFEC = "ulpfec"
TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
_FEC_CODECS = (
    RTCRtpCodecParameters(mimeType="video/red", clockRate=90000, payloadType=123),
    RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=124, parameters={"apt": 123}),
    RTCRtpCodecParameters(mimeType="video/ulpfec", clockRate=90000, payloadType=125),
)
if not any(c.name.lower() == RED for c in aiortc.codecs.CODECS["video"]):
    aiortc.codecs.CODECS["video"].extend(_FEC_CODECS)


class _RtpPacketWithRaw(RtpPacket):
    """RtpPacket that remembers the datagram it was parsed from (ULPFEC recovery needs the bytes)."""

    raw: bytes

    @classmethod
    def parse(cls, data: bytes, extensions_map: HeaderExtensionsMap = HeaderExtensionsMap()) -> RtpPacket:  # noqa: B008 - aiortc's signature
        packet = super().parse(data, extensions_map)
        packet.raw = data  # type: ignore[attr-defined]
        return packet


aiortc.rtcdtlstransport.RtpPacket = _RtpPacketWithRaw  # type: ignore[misc]

# RTCRtpSender's private state that its replaced send loop used to maintain.
_SENDER = "_RTCRtpSender__"
_SENDER_ATTRS = (
    "rtp_started",
    "rtp_exited",
    "rtp_history",
    "rtp_header_extensions_map",
    "mid",
    "ntp_timestamp",
    "rtp_timestamp",
    "octet_count",
    "packet_count",
    "lsr",
    "lsr_time",
)

# --- ICE --------------------------------------------------------------------------------------------

_with_loopback: contextvars.ContextVar[bool] = contextvars.ContextVar("media_loopback", default=False)
_original_get_host_addresses: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _original_get_host_addresses(use_ipv4, use_ipv6)
    if use_ipv4 and _with_loopback.get() and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def loopback_candidates(enabled: bool = True) -> Iterator[None]:
    """ICE gathering awaited inside this context (setLocalDescription) also offers 127.0.0.1."""
    token = _with_loopback.set(enabled)
    try:
        yield
    finally:
        _with_loopback.reset(token)


def ice_connection(transceiver: RTCRtpTransceiver) -> Any:
    """The aioice Connection behind a transceiver (for checks: stun_server, local candidates)."""
    return transceiver.receiver.transport.transport.iceGatherer._connection


# --- codecs -----------------------------------------------------------------------------------------


def codec_preferences(kind: str, names: tuple[str, ...], fec: bool = False) -> list[RTCRtpCodecCapability]:
    """Capabilities in the given preference order (H.264: constrained baseline, packetization-mode 1).

    fec adds red and ulpfec after VP8, for a publisher: VP8's picture IDs let a receiver tell a lost
    parity packet from a lost picture, which H.264 cannot (browsers send no ULPFEC with it either).
    """
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    chosen: list[RTCRtpCodecCapability] = []
    for name in names:
        for cap in capabilities:
            if cap.name.lower() != name.lower():
                continue
            if cap.name == H264 and dict(cap.parameters) != H264_FMTP:
                continue
            chosen.append(cap)
    if fec and any(c.name == VP8 for c in chosen):
        chosen += [c for c in capabilities if c.name.lower() in (RED, ULPFEC)]
    rtx = [c for c in capabilities if c.name.lower() == "rtx"]
    return chosen + rtx


def offered_codec(offered: list[Any], names: tuple[str, ...]) -> str | None:
    """First codec of `names` (preference order) that an offer's m-line carries in a form aiortc accepts."""
    from aiortc.rtcpeerconnection import is_codec_compatible
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    for name in names:
        for cap in codec_preferences("video" if name != "opus" else "audio", (name,)):
            if cap.name.lower() == "rtx":
                continue
            local = RTCRtpCodecParameters(
                mimeType=cap.mimeType,
                clockRate=cap.clockRate,
                channels=cap.channels,
                parameters=dict(cap.parameters),
            )
            if any(is_codec_compatible(local, c) for c in offered):
                return name
    return None


def negotiated_codec(transceiver: RTCRtpTransceiver) -> tuple[str, int] | None:
    """Name and clock rate of the codec aiortc will send/receive first on this transceiver."""
    for codec in getattr(transceiver, "_codecs", []):
        if codec.name.lower() not in ("rtx", RED, ULPFEC):
            return codec.name, codec.clockRate
    return None


def accept_transport_cc(transceiver: RTCRtpTransceiver, offered: list[Any]) -> bool:
    """Answer a publisher's offered transport-cc (call between setRemoteDescription and createAnswer):
    aiortc lists neither the extension nor the feedback type, so it would answer without them."""
    ext = next((e for e in offered if e.uri == TRANSPORT_CC_URI), None)
    if ext is None:
        return False
    if not any(e.uri == TRANSPORT_CC_URI for e in transceiver._headerExtensions):
        transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=ext.id, uri=ext.uri))
    for codec in transceiver._codecs:
        if codec.name.lower() in ("rtx", RED, ULPFEC):
            continue
        if not any(fb.type == "transport-cc" for fb in codec.rtcpFeedback):
            codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
    return True


def _install_transport_feedback(receiver: RTCRtpReceiver, counters: MediaCounters) -> TransportFeedback:
    """Feed every packet's transport-wide number (RTX and padding included, before aiortc drops
    padding) to a TransportFeedback that reports to the publisher over this receiver's RTCP."""

    async def send(data: bytes) -> None:
        counters.transport_feedbacks += 1
        # aiortc only calls bytes() on what it is given.
        await receiver._send_rtcp(data)  # type: ignore[arg-type]

    feedback = TransportFeedback(send, lambda: getattr(receiver, _RTCP_SSRC_ATTR, None))
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        seq = packet.extensions.transport_sequence_number
        if seq is not None:
            feedback.on_packet(seq, packet.ssrc)
        await original(packet, arrival_time_ms)

    setattr(receiver, "_handle_rtp_packet", handle)  # noqa: B010 - instance override
    feedback.start()
    return feedback


def ulpfec_receiver(transceiver: RTCRtpTransceiver) -> UlpfecReceiver | None:
    """A RED/ULPFEC unwrapper for a publisher's transceiver that negotiated both; else None."""
    codecs = {c.name.lower(): c.payloadType for c in getattr(transceiver, "_codecs", [])}
    red, ulpfec, media = codecs.get(RED), codecs.get(ULPFEC), codecs.get(VP8.lower())
    if red is None or ulpfec is None or media is None:
        return None
    mutable = frozenset(
        ext.id
        for ext in getattr(transceiver, "_headerExtensions", [])
        if ext.uri in (ABS_SEND_TIME_URI, TRANSPORT_CC_URI, "urn:ietf:params:rtp-hdrext:toffset")
    )
    extensions = HeaderExtensionsMap()
    extensions.configure(aiortc.RTCRtpParameters(headerExtensions=list(transceiver._headerExtensions)))
    return UlpfecReceiver(red, ulpfec, media, extensions, mutable)


# --- receive side -----------------------------------------------------------------------------------

FrameSink = Callable[[Any], None]
PacketSink = Callable[[Any, float], None]


class ReceiverTap:
    """Stands in for aiortc's JitterBuffer on a publisher's receiver; see the module docstring."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        codec: str,
        clock_rate: int,
        sink: FrameSink,
        counters: MediaCounters,
        reorder_wait_s: float,
        nack_retry_interval_s: float,
        reorder_wait_max_s: float | None = None,
        packet_sink: PacketSink | None = None,
        fec: UlpfecReceiver | None = None,
    ) -> None:
        self._receiver = receiver
        self.fec = fec
        # Every packet as it arrives (viewers); `sink` gets whole frames in order (recorder, analyser).
        self._packet_sink = packet_sink
        self.codec = codec
        self.kind = "video" if clock_rate == 90000 else "audio"
        self._assembler: VideoAssembler | AudioAssembler
        if self.kind == "video":
            self._assembler = VideoAssembler(codec, clock_rate, reorder_wait_s)
        else:
            self._assembler = AudioAssembler(codec, clock_rate)
        self._sink = sink
        self._counters = counters
        # time.monotonic() of the last RTP packet (any, padding included): the liveness signal.
        self.last_rtp_at: float | None = None
        self._ssrc: int | None = None
        self._keyframe_wanted: Callable[[], None] | None = None
        self.packets = 0
        # aiortc's NackGenerator asks for a lost packet once, when the gap appears; a lost NACK or
        # retransmission then costs the whole frame. Ask again on a timer, as browsers do.
        self._nack_retry_interval = nack_retry_interval_s
        self._gap = asyncio.Event()
        self._retry_task: asyncio.Task[None] | None = None
        # Round trip to the publisher, measured from a NACK to the retransmission it brings (the
        # receiver of a send-only peer gets no RTCP that would tell it otherwise). A frame waiting for
        # a lost packet is given room for one retry: on a 300 ms mobile link a fixed short wait
        # abandons every repairable frame and turns each loss into a keyframe round trip.
        self._reorder_bounds = (reorder_wait_s, max(reorder_wait_s, reorder_wait_max_s or reorder_wait_s))
        self._nacked: dict[int, float] = {}
        self._rtt_samples: deque[float] = deque(maxlen=15)
        self.rtt_s: float | None = None
        # Set by install_receiver_tap when the publisher negotiated transport-cc.
        self.transport_feedback: TransportFeedback | None = None

    @property
    def capacity(self) -> int:
        return 0

    @property
    def synchronised(self) -> bool:
        return not isinstance(self._assembler, VideoAssembler) or self._assembler.synchronised

    def on_keyframe_wanted(self, callback: Callable[[], None]) -> None:
        self._keyframe_wanted = callback

    def add(self, packet: Any) -> tuple[bool, None]:
        """JitterBuffer.add's contract: (pli_flag, frame). Keyframe requests go through the slot instead."""
        fec = self.fec
        if fec is not None and packet.payload_type == fec.red_pt:
            self._counters.red_packets += 1
            recovered_before = fec.recovered
            parity_before = fec.parity_packets
            unwrapped = fec.receive(packet)
            self._counters.fec_packets += fec.parity_packets - parity_before
            if fec.recovered != recovered_before:
                self._counters.fec_recovered += fec.recovered - recovered_before
                nack = getattr(self._receiver, _NACK_GENERATOR_ATTR, None)
                for rebuilt in unwrapped[len(unwrapped) - (fec.recovered - recovered_before) :]:
                    # Rebuilt: stop asking the publisher for it, and do not take the time it took
                    # for a round trip (the reorder wait would shrink below what a retry needs).
                    if nack is not None:
                        nack.missing.discard(rebuilt.sequence_number)
                    self._nacked.pop(rebuilt.sequence_number, None)
            for inner in unwrapped:
                try:
                    inner._data = depayload_vp8(inner.payload) if inner.payload else b""
                except ValueError:
                    continue
                self._add(inner)
            return False, None
        return self._add(packet)

    def _add(self, packet: Any) -> tuple[bool, None]:
        now = time.monotonic()
        self.packets += 1
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                # A new SSRC (the publisher restarted its encoder): nothing before it applies.
                self._assembler.reset()
            self._ssrc = packet.ssrc
        self.last_rtp_at = now
        if self._packet_sink is not None:
            self._packet_sink(packet, now)
        if self._nacked:
            asked = self._nacked.pop(packet.sequence_number, None)
            if asked is not None:
                self._rtt_sample(now - asked)
        assembler = self._assembler
        frames, want_keyframe = assembler.add(packet, now, time.time())
        if isinstance(assembler, VideoAssembler):
            if assembler.new_gap:
                assembler.new_gap = False
                self._gap.set()
            if assembler.holes_skipped:
                self._counters.holes_skipped += assembler.holes_skipped
                assembler.holes_skipped = 0
                if self._packet_sink is not None:
                    for seq in assembler.skipped_sequences:
                        filler: Any = standin(packet.payload_type, seq, packet.timestamp, packet.ssrc)
                        filler._data = b""
                        self._packet_sink(filler, now)
                assembler.skipped_sequences.clear()
        for frame in frames:
            self._sink(frame)
        if want_keyframe:
            self._counters.frames_abandoned += 1
            if self._keyframe_wanted is not None:
                self._keyframe_wanted()
        return False, None

    @property
    def reorder_wait_s(self) -> float:
        assembler = self._assembler
        return assembler.reorder_wait if isinstance(assembler, VideoAssembler) else 0.0

    def note_nacked(self, lost: list[int]) -> None:
        """Sequence numbers just asked for: the first ask of each starts its round-trip sample."""
        now = time.monotonic()
        nacked = self._nacked
        for seq in lost:
            nacked.setdefault(seq, now)
        if len(nacked) > 512:
            horizon = now - 4 * self._reorder_bounds[1]
            for seq in [s for s, at in nacked.items() if at < horizon]:
                del nacked[seq]

    def _rtt_sample(self, seconds: float) -> None:
        self._rtt_samples.append(seconds)
        # The median shrugs off a packet that was only reordered (tiny) or needed a second ask (2x).
        self.rtt_s = rtt = statistics.median(self._rtt_samples)
        assembler = self._assembler
        if isinstance(assembler, VideoAssembler):
            low, high = self._reorder_bounds
            assembler.reorder_wait = min(high, max(low, 2.5 * rtt + 0.05))

    def start(self) -> None:
        if self.kind == "video" and self._retry_task is None:
            self._retry_task = asyncio.create_task(self._retry_nacks(), name="media-nack-retry")

    async def stop(self) -> None:
        if self.transport_feedback is not None:
            await self.transport_feedback.stop()
        task, self._retry_task = self._retry_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _retry_nacks(self) -> None:
        assembler = self._assembler
        assert isinstance(assembler, VideoAssembler)
        while True:
            await self._gap.wait()
            await asyncio.sleep(self._nack_retry_interval)
            missing = assembler.missing()
            if not missing or self._ssrc is None:
                self._gap.clear()
                continue
            await self._receiver._send_rtcp_nack(self._ssrc, missing)

    def send_pli(self) -> Awaitable[None]:
        return self._send_pli()

    async def _send_pli(self) -> None:
        if self._ssrc is not None:
            await self._receiver._send_rtcp_pli(self._ssrc)


def install_receiver_tap(
    transceiver: RTCRtpTransceiver,
    sink: FrameSink,
    counters: MediaCounters,
    reorder_wait_s: float,
    nack_retry_interval_s: float,
    bitrate_limit: Callable[[], int | None] | None = None,
    reorder_wait_max_s: float | None = None,
    packet_sink: PacketSink | None = None,
) -> ReceiverTap:
    """Replace the receiver's jitter buffer by a ReceiverTap; call after the answer is created.

    bitrate_limit() (the viewers' lowest estimate) caps the REMB aiortc sends to the publisher, so the
    publisher encodes for the weakest viewer rather than for the server's own link.
    """
    receiver = transceiver.receiver
    if not hasattr(receiver, _JITTER_BUFFER_ATTR) or not hasattr(receiver, _RECEIVER_KIND_ATTR):
        raise UnsupportedAiortc("RTCRtpReceiver no longer has the jitter buffer this tap replaces")
    codec = negotiated_codec(transceiver)
    if codec is None:
        raise UnsupportedAiortc("transceiver has no negotiated codec")
    tap = ReceiverTap(
        receiver,
        codec[0],
        codec[1],
        sink,
        counters,
        reorder_wait_s,
        nack_retry_interval_s,
        reorder_wait_max_s,
        packet_sink,
        ulpfec_receiver(transceiver) if codec[0] == VP8 else None,
    )
    setattr(receiver, _JITTER_BUFFER_ATTR, tap)
    if any(ext.uri == TRANSPORT_CC_URI for ext in getattr(transceiver, "_headerExtensions", [])):
        tap.transport_feedback = _install_transport_feedback(receiver, counters)

    original_nack = receiver._send_rtcp_nack

    async def counting_nack(media_ssrc: int, lost: list[int]) -> None:
        counters.nacks_sent += 1
        tap.note_nacked(lost)
        await original_nack(media_ssrc, lost)

    setattr(receiver, "_send_rtcp_nack", counting_nack)  # noqa: B010 - instance override

    if bitrate_limit is not None:
        original_send = receiver._send_rtcp
        send_side = tap.transport_feedback is not None

        async def capped_send(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                limit = bitrate_limit()
                fec = tap.fec
                if limit is not None and fec is not None:
                    # Viewers' estimates count media only; the publisher also sends parity, which
                    # stops here. Capping it at the viewers' figure starved its media each round.
                    limit = int(limit * (1.0 + min(fec.parity_ratio, 1.0)))
                if send_side and limit is None:
                    # The publisher estimates its own bandwidth from transport-cc feedback; aiortc's
                    # receive-side guess would only cap it. Viewers' limits still go out.
                    return
                if limit is not None:
                    with contextlib.suppress(ValueError):
                        bitrate, ssrcs = unpack_remb_fci(packet.fci)
                        if limit < bitrate or send_side:
                            counters.remb_capped += 1
                            packet = RtcpPsfbPacket(
                                fmt=RTCP_PSFB_APP,
                                ssrc=packet.ssrc,
                                media_ssrc=packet.media_ssrc,
                                fci=pack_remb_fci(limit, ssrcs),
                            )
            await original_send(packet)

        setattr(receiver, "_send_rtcp", capped_send)  # noqa: B010 - instance override
    tap.start()
    return tap


# --- send side --------------------------------------------------------------------------------------


def hook_sender(
    sender: RTCRtpSender,
    track: ForwardTrack,
    on_keyframe_request: Callable[[], None],
    counters: MediaCounters,
    on_bitrate_estimate: Callable[[int], None] | None = None,
    playout_delay_ms: tuple[int, int] | None = None,
    redundancy_loss: float | None = None,
) -> None:
    """Send `track`'s packets instead of encoding, relay a viewer's PLI/FIR to the publisher, count the
    NACKs the sender answers and report the viewer's REMB (bits per second) for this sender's stream.

    Call right after addTransceiver: aiortc starts the send loop once the transport connects.
    playout_delay_ms (min, max) goes to viewers that negotiated the playout-delay extension: a
    browser then holds video in its jitter buffer for at most `max` (see MediaSettings).
    """
    if not all(hasattr(sender, _SENDER + name) for name in _SENDER_ATTRS):
        raise UnsupportedAiortc("RTCRtpSender no longer has the send-loop state forward_packets keeps")

    video = track.kind == "video"
    packets = PacketSender(
        sender, counters, playout_delay_ms if video else None, redundancy_loss if video else None
    )
    original_send = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        packets.configure(parameters)
        await original_send(parameters)

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        await packets.run(track, codec)

    setattr(sender, "send", send)  # noqa: B010 - instance override
    setattr(sender, "_run_rtp", run_rtp)  # noqa: B010 - instance override

    def keyframe_requested() -> None:
        counters.plis_received += 1
        on_keyframe_request()

    setattr(sender, "_send_keyframe", keyframe_requested)  # noqa: B010 - instance override
    original_retransmit = sender._retransmit

    async def counting_retransmit(sequence_number: int) -> None:
        counters.nacks_received += 1
        await original_retransmit(sequence_number)

    setattr(sender, "_retransmit", counting_retransmit)  # noqa: B010 - instance override

    original_rtcp = sender._handle_rtcp_packet

    async def rtcp_with_estimates(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    packets.note_viewer_report(report)
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                if sender._ssrc in ssrcs and on_bitrate_estimate is not None:
                    on_bitrate_estimate(bitrate)
        await original_rtcp(packet)

    setattr(sender, "_handle_rtcp_packet", rtcp_with_estimates)  # noqa: B010 - instance override


class PacketSender:
    """Sends a ForwardTrack's packets on one aiortc sender: what RTCRtpSender._run_rtp did, minus
    encoding and packetisation (history for NACKs, abs-send-time and MID, Sender Report counters).

    `send_now` puts a packet on the wire synchronously, from inside the publisher's receive path, when
    the viewer's ICE pair is a plain UDP socket: a task wake-up per packet would cost more than the
    rest of forwarding. Anything else (TURN relays, a transport not yet up) goes through the queue and
    `run`, which awaits aiortc's own send path.
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        counters: MediaCounters,
        playout_delay_ms: tuple[int, int] | None,
        redundancy_loss: float | None = None,
    ):
        self._sender = sender
        self._counters = counters
        self._playout_delay = playout_delay_ms
        # Send every packet twice, REDUNDANT_DELAY_S apart, while the viewer's link loses packets at
        # random (see redundancy.py): the copy arrives where a retransmission would cost a round trip.
        self.redundancy = RedundancyControl(redundancy_loss) if redundancy_loss is not None else None
        self._history: dict[int, RtpPacket] = getattr(sender, _SENDER + "rtp_history")
        self._extensions_map = getattr(sender, _SENDER + "rtp_header_extensions_map")
        self._mid: str | None = None
        self._payload_type = 0
        self._ssrc = sender._ssrc
        # One-byte header extension block (RFC 8285) split around the abs-send-time value; None when
        # the negotiated ids need the two-byte form (then aiortc's own serialiser builds it).
        self._ext_prefix: bytes | None = None
        self._ext_suffix = b""
        self._ext_words = 0
        self._playout_id: int | None = None
        self._abs_send_time_id: int | None = None

    def configure(self, parameters: RTCRtpSendParameters) -> None:
        """The negotiated parameters, as RTCRtpSender.send() receives them."""
        self._mid = parameters.muxId
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        mid_id = ids.get(MID_URI) if self._mid else None
        self._abs_send_time_id = ids.get(ABS_SEND_TIME_URI)
        self._playout_id = ids.get(PLAYOUT_DELAY_URI) if self._playout_delay is not None else None
        elements: list[tuple[int, bytes]] = []
        if mid_id is not None and self._mid:
            elements.append((mid_id, self._mid.encode("utf8")))
        if self._playout_id is not None and self._playout_delay is not None:
            low, high = (min(0xFFF, ms // 10) for ms in self._playout_delay)
            elements.append((self._playout_id, ((low << 12) | high).to_bytes(3, "big")))
        one_byte = all(0 < i <= 14 and 0 < len(v) <= 16 for i, v in elements)
        abs_id = self._abs_send_time_id
        if not one_byte or (abs_id is not None and not 0 < abs_id <= 14):
            self._ext_prefix = None
            return
        prefix = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
        length = len(prefix) + (4 if abs_id is not None else 0)
        pad = -length % 4
        self._ext_prefix = prefix + (bytes([(abs_id << 4) | 2]) if abs_id is not None else b"")
        self._ext_suffix = b"\x00" * pad
        self._ext_words = (length + pad) // 4

    def start(self, codec: RTCRtpCodecParameters) -> None:
        assert codec.payloadType is not None, "a negotiated codec has a payload type"
        self._payload_type = codec.payloadType

    def _packet(self, out: OutPacket, abs_send_time: int) -> tuple[RtpPacket, bytes]:
        packet = RtpPacket(
            self._payload_type, out.marker, out.sequence_number, out.timestamp, self._ssrc, out.payload
        )
        packet.padding_size = out.padding_size
        packet.extensions.abs_send_time = abs_send_time
        packet.extensions.mid = self._mid
        # aiortc's _retransmit answers NACKs from here (re-serialising with its own map).
        self._history[out.sequence_number % RTP_HISTORY_SIZE] = packet
        prefix = self._ext_prefix
        if prefix is None:
            return packet, packet.serialize(self._extensions_map)
        if not prefix:
            data = pack(
                "!BBHLL",
                0x80 | (0x20 if out.padding_size else 0),
                (out.marker << 7) | self._payload_type,
                out.sequence_number,
                out.timestamp,
                self._ssrc,
            )
            data += out.payload
            if out.padding_size:
                data += bytes(out.padding_size - 1) + bytes([out.padding_size])
            return packet, data
        first = 0x90 | (0x20 if out.padding_size else 0)
        header = pack(
            "!BBHLLHH",
            first,
            (out.marker << 7) | self._payload_type,
            out.sequence_number,
            out.timestamp,
            self._ssrc,
            0xBEDE,
            self._ext_words,
        )
        if self._abs_send_time_id is not None:
            prefix += abs_send_time.to_bytes(3, "big")
        data = header + prefix + self._ext_suffix + out.payload
        if out.padding_size:
            data += bytes(out.padding_size - 1) + bytes([out.padding_size])
        return packet, data

    def _account(self, out: OutPacket) -> None:
        sender, counters = self._sender, self._counters
        octets = len(out.payload)
        counters.bytes_forwarded += octets
        if out.marker:
            counters.forward_delay.observe(time.monotonic() - out.arrival)
            counters.frames_forwarded += 1
        setattr(sender, _SENDER + "ntp_timestamp", clock.current_ntp_time())
        setattr(sender, _SENDER + "rtp_timestamp", out.timestamp)
        setattr(sender, _SENDER + "octet_count", getattr(sender, _SENDER + "octet_count") + octets)
        setattr(sender, _SENDER + "packet_count", getattr(sender, _SENDER + "packet_count") + 1)

    def send_now(self, out: OutPacket) -> bool:
        """Encrypt and send on the spot; False (nothing sent) when only aiortc's async path can."""
        dtls = self._sender.transport
        if dtls._state is not DtlsState.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or type(pair.protocol) is not StunProtocol:
            return False
        udp = pair.protocol.transport
        if udp is None or udp.is_closing():
            return False
        _, data = self._packet(out, (clock.current_ntp_time() >> 14) & 0x00FFFFFF)
        protected = dtls._tx_srtp.protect(data)
        udp.sendto(protected, pair.remote_addr)
        redundancy = self.redundancy
        if redundancy is not None and redundancy.state is RedundancyState.ON:
            # The same datagram: whichever copy arrives second fails the viewer's SRTP replay check.
            asyncio.get_running_loop().call_later(
                REDUNDANT_DELAY_S, self._send_copy, udp, protected, pair.remote_addr
            )
        setattr(dtls, _DTLS_TX_BYTES, getattr(dtls, _DTLS_TX_BYTES) + len(protected))
        setattr(dtls, _DTLS_TX_PACKETS, getattr(dtls, _DTLS_TX_PACKETS) + 1)
        self._counters.packets_sent_direct += 1
        self._account(out)
        return True

    def note_viewer_report(self, report: RtcpReceiverInfo) -> None:
        """A receiver report block from the viewer about this stream."""
        redundancy = self.redundancy
        if redundancy is not None:
            # As aiortc works it out: only a report on its latest sender report is timed.
            sender = self._sender
            lsr_time = getattr(sender, _SENDER + "lsr_time")
            rtt_s = None
            if report.lsr and report.lsr == getattr(sender, _SENDER + "lsr") and lsr_time is not None:
                rtt_s = time.time() - lsr_time - report.dlsr / 65536
            state, backoffs = redundancy.state, redundancy.backoffs
            redundancy.report(report.packets_lost, report.highest_sequence, rtt_s)
            self._counters.redundancy_backoffs += redundancy.backoffs - backoffs
            if redundancy.state is not state:
                logger.debug(
                    "media: copies to viewer stream %d %s -> %s (loss %.3f)",
                    self._ssrc,
                    state.value,
                    redundancy.state.value,
                    redundancy.loss,
                )

    def _send_copy(self, udp: Any, protected: bytes, addr: Any) -> None:
        if not udp.is_closing():
            udp.sendto(protected, addr)
            self._counters.packets_duplicated += 1

    async def run(self, track: ForwardTrack, codec: RTCRtpCodecParameters) -> None:
        """The replacement of RTCRtpSender._run_rtp: send what `track` queues, until it stops."""
        sender = self._sender
        started: asyncio.Event = getattr(sender, _SENDER + "rtp_started")
        exited: asyncio.Event = getattr(sender, _SENDER + "rtp_exited")
        self.start(codec)
        started.set()
        track.start(self.send_now)
        try:
            while True:
                batch = await track.take()
                abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
                for out in batch:
                    _, data = self._packet(out, abs_send_time)
                    await sender.transport._send_rtp(data)
                    self._counters.packets_sent_queued += 1
                    self._account(out)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            # exited must be set whatever happens, or RTCRtpSender.stop() hangs.
            logger.exception("media: forwarding to a viewer failed")
        finally:
            track.stop()
            exited.set()
