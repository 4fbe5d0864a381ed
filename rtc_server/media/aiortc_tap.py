"""Every use of aiortc/aioice internals lives here, pinned to aiortc 1.16 by tests/media/test_aiortc_tap.py.

aiortc decodes all it receives and encodes all it sends. The pass-through path uses three seams:

* receive: `RTCRtpReceiver._handle_rtp_packet` unwraps RTX, sends NACKs, depayloads into
  `packet._data` and then calls `self.__jitter_buffer.add(packet)`, decoding whatever frame that
  returns. `ReceiverTap` replaces the jitter buffer: it assembles frames at the marker bit, hands them
  to a TrackSlot and returns no frame, so aiortc's decoder thread stays idle.
* send: `RTCRtpSender._next_encoded_frame` packs an `av.Packet` with the codec's `pack()` instead of
  encoding (ForwardTrack yields av.Packets). PLI/FIR from a viewer call `sender._send_keyframe()`
  and NACKs call `sender._retransmit(seq)` (answered from its RTP history); both are hooked here.
* ICE: aioice's `get_host_addresses` never returns 127.0.0.1; `loopback_candidates()` adds it for
  the gathering done inside the context, nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aioice.ice
import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import RTCP_PSFB_APP, AnyRtcpPacket, RtcpPsfbPacket, pack_remb_fci, unpack_remb_fci

from .assembler import AudioAssembler, VideoAssembler
from .errors import UnsupportedAiortc
from .frames import H264
from .stats import MediaCounters

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
_RECEIVER_KIND_ATTR = "_RTCRtpReceiver__kind"

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


def codec_preferences(kind: str, names: tuple[str, ...]) -> list[RTCRtpCodecCapability]:
    """Capabilities in the given preference order (H.264: constrained baseline, packetization-mode 1)."""
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    chosen: list[RTCRtpCodecCapability] = []
    for name in names:
        for cap in capabilities:
            if cap.name.lower() != name.lower():
                continue
            if cap.name == H264 and dict(cap.parameters) != H264_FMTP:
                continue
            chosen.append(cap)
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
        if codec.name.lower() != "rtx":
            return codec.name, codec.clockRate
    return None


# --- receive side -----------------------------------------------------------------------------------

FrameSink = Callable[[Any], None]


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
    ) -> None:
        self._receiver = receiver
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
        now = time.monotonic()
        self.packets += 1
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                # A new SSRC (the publisher restarted its encoder): nothing before it applies.
                self._assembler.reset()
            self._ssrc = packet.ssrc
        self.last_rtp_at = now
        if self._nacked:
            asked = self._nacked.pop(packet.sequence_number, None)
            if asked is not None:
                self._rtt_sample(now - asked)
        assembler = self._assembler
        frames, want_keyframe = assembler.add(packet, now, time.time())
        if isinstance(assembler, VideoAssembler) and assembler.new_gap:
            assembler.new_gap = False
            self._gap.set()
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
    )
    setattr(receiver, _JITTER_BUFFER_ATTR, tap)

    original_nack = receiver._send_rtcp_nack

    async def counting_nack(media_ssrc: int, lost: list[int]) -> None:
        counters.nacks_sent += 1
        tap.note_nacked(lost)
        await original_nack(media_ssrc, lost)

    setattr(receiver, "_send_rtcp_nack", counting_nack)  # noqa: B010 - instance override

    if bitrate_limit is not None:
        original_send = receiver._send_rtcp

        async def capped_send(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                limit = bitrate_limit()
                if limit is not None:
                    with contextlib.suppress(ValueError):
                        bitrate, ssrcs = unpack_remb_fci(packet.fci)
                        if limit < bitrate:
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
    on_keyframe_request: Callable[[], None],
    counters: MediaCounters,
    on_bitrate_estimate: Callable[[int], None] | None = None,
) -> None:
    """Relay a viewer's PLI/FIR to the publisher, count the NACKs the sender answers and report the
    viewer's REMB (bits per second) for this sender's stream."""

    def keyframe_requested() -> None:
        counters.plis_received += 1
        on_keyframe_request()

    setattr(sender, "_send_keyframe", keyframe_requested)  # noqa: B010 - instance override
    original_retransmit = sender._retransmit

    async def counting_retransmit(sequence_number: int) -> None:
        counters.nacks_received += 1
        await original_retransmit(sequence_number)

    setattr(sender, "_retransmit", counting_retransmit)  # noqa: B010 - instance override

    if on_bitrate_estimate is not None:
        original_rtcp = sender._handle_rtcp_packet

        async def rtcp_with_remb(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                with contextlib.suppress(ValueError):
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                    if sender._ssrc in ssrcs:
                        on_bitrate_estimate(bitrate)
            await original_rtcp(packet)

        setattr(sender, "_handle_rtcp_packet", rtcp_with_remb)  # noqa: B010 - instance override
