"""RED unwrapping and ULPFEC recovery against parity built as RFC 5109 and WebRTC's generator lay it
out, on packets parsed by the same transport class the server receives with."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from rtc_server.media import MediaService, MediaSettings
from rtc_server.media.aiortc_tap import (
    ABS_SEND_TIME_URI,
    MID_URI,
    ReceiverTap,
    _RtpPacketWithRaw,
    codec_preferences,
)
from rtc_server.media.fec import UlpfecReceiver, parse_parity, red_primary, zero_extensions
from rtc_server.media.frames import EncodedFrame
from rtc_server.media.stats import MediaCounters
from tests.media.media_clients import publisher_client

VP8_PT, RED_PT, ULPFEC_PT = 96, 116, 117
VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag with the key-frame bit clear
SSRC = 0x1234
EXT = HeaderExtensionsMap()
EXT.configure(
    RTCRtpParameters(
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=4, uri=MID_URI),
            RTCRtpHeaderExtensionParameters(id=2, uri=ABS_SEND_TIME_URI),
        ]
    )
)
MUTABLE = frozenset({2})


def vp8_payload(picture_id: int, start: bool, body: bytes) -> bytes:
    """Descriptor with a 15-bit picture ID, as browsers send it."""
    return bytes([0x90 if start else 0x80, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF]) + body


def media(seq: int, ts: int, payload: bytes, marker: int = 0, mid: str | None = "0") -> RtpPacket:
    packet = RtpPacket(VP8_PT, marker, seq, ts, SSRC, payload)
    packet.extensions.mid = mid
    return packet


def protected_bytes(packet: RtpPacket) -> bytes:
    """The packet as the sender's FEC generator saw it: send time not yet stamped (zero)."""
    packet.extensions.abs_send_time = 0
    return packet.serialize(EXT)


def parity(packets: list[bytes], base: int, seqs: list[int]) -> bytes:
    """An ULPFEC payload over `packets` (sequence numbers `seqs`), WebRTC's layout."""
    long_mask = max((s - base) & 0xFFFF for s in seqs) >= 16
    mask_bytes = 6 if long_mask else 2
    size = max(len(p) - 12 for p in packets)
    b0 = b1 = ts = length = 0
    body = bytearray(size)
    for p in packets:
        b0 ^= p[0]
        b1 ^= p[1]
        ts ^= struct.unpack_from("!I", p, 4)[0]
        length ^= len(p) - 12
        for i, byte in enumerate(p[12:]):
            body[i] ^= byte
    mask = 0
    for seq in seqs:
        mask |= 1 << (mask_bytes * 8 - 1 - ((seq - base) & 0xFFFF))
    first = (b0 & 0x3F) | (0x40 if long_mask else 0)
    header = struct.pack("!BBHIH", first, b1, base, ts, length)
    return header + struct.pack("!H", size) + mask.to_bytes(mask_bytes, "big") + bytes(body)


def on_the_wire(packet: RtpPacket, inner: bytes, inner_pt: int, send_time: int) -> _RtpPacketWithRaw:
    """RED-wrap and send: stamp the send time, then parse as the server's DTLS transport does."""
    red = RtpPacket(RED_PT, packet.marker, packet.sequence_number, packet.timestamp, SSRC)
    red.extensions.mid = packet.extensions.mid
    red.extensions.abs_send_time = send_time
    red.payload = bytes([inner_pt]) + inner
    parsed = _RtpPacketWithRaw.parse(red.serialize(EXT), EXT)
    assert isinstance(parsed, _RtpPacketWithRaw) and parsed.raw
    return parsed


def receiver() -> UlpfecReceiver:
    return UlpfecReceiver(RED_PT, ULPFEC_PT, VP8_PT, EXT, MUTABLE)


def frame_with_parity(
    first_seq: int, picture_id: int, sizes: tuple[int, ...] = (40, 300, 17), key: bool = False
) -> tuple[list[RtpPacket], _RtpPacketWithRaw, list[_RtpPacketWithRaw]]:
    """A frame in len(sizes) packets, its parity packet, and the media as RED packets on the wire."""
    ts = 3000 * first_seq
    bodies = [bytes([i + 1]) * n for i, n in enumerate(sizes)]
    if key:
        bodies[0] = VP8_KEY + bodies[0]
    packets = [
        media((first_seq + i) & 0xFFFF, ts, vp8_payload(picture_id, i == 0, body), int(i == len(sizes) - 1))
        for i, body in enumerate(bodies)
    ]
    seqs = [p.sequence_number for p in packets]
    fec = parity([protected_bytes(p) for p in packets], seqs[0], seqs)
    fec_packet = on_the_wire(media((first_seq + len(sizes)) & 0xFFFF, ts, b""), fec, ULPFEC_PT, 777)
    wire = [on_the_wire(p, p.payload, VP8_PT, 1000 + i) for i, p in enumerate(packets)]
    return packets, fec_packet, wire


def test_a_lost_packet_is_rebuilt_when_the_parity_arrives() -> None:
    packets, fec_packet, wire = frame_with_parity(100, 7)
    fec = receiver()
    got = fec.receive(wire[0]) + fec.receive(wire[2])
    assert [p.sequence_number for p in got] == [100, 102]
    assert all(p.payload_type == VP8_PT for p in got) and got[1].marker == 1
    assert got[0].payload == packets[0].payload  # the RED header is gone
    out = fec.receive(fec_packet)
    standin, rebuilt = out
    # The parity packet's own number reaches viewers as an empty (padding-like) packet.
    assert (standin.sequence_number, standin.payload, standin.payload_type) == (103, b"", VP8_PT)
    assert (rebuilt.sequence_number, rebuilt.timestamp, rebuilt.marker) == (101, 300000, 0)
    assert rebuilt.ssrc == SSRC and rebuilt.payload_type == VP8_PT
    assert rebuilt.payload == packets[1].payload
    assert rebuilt.extensions.mid == "0" and rebuilt.extensions.abs_send_time is None
    assert (fec.parity_packets, fec.recovered, fec.malformed) == (1, 1, 0)


@pytest.mark.parametrize("lost", [0, 2])
def test_first_and_last_packets_rebuild_too_marker_included(lost: int) -> None:
    packets, fec_packet, wire = frame_with_parity(65534, 0x7FFF, (5, 1000, 260))  # numbers wrap
    fec = receiver()
    for i, p in enumerate(wire):
        if i != lost:
            fec.receive(p)
    rebuilt = fec.receive(fec_packet)[1]
    assert rebuilt.sequence_number == packets[lost].sequence_number
    assert rebuilt.payload == packets[lost].payload and rebuilt.marker == packets[lost].marker


def test_the_long_mask_covers_48_packets() -> None:
    base = 500
    sizes = tuple(30 + i for i in range(20))
    packets = [
        media(base + i, 9000, vp8_payload(3, i == 0, bytes([i]) * n), int(i == 19))
        for i, n in enumerate(sizes)
    ]
    seqs = [p.sequence_number for p in packets]
    fec_payload = parity([protected_bytes(p) for p in packets], base, seqs)
    assert fec_payload[0] & 0x40, "L bit set"
    fec = receiver()
    for i, p in enumerate(packets):
        if i != 17:
            fec.receive(on_the_wire(p, p.payload, VP8_PT, i))
    rebuilt = fec.receive(on_the_wire(media(base + 20, 9000, b""), fec_payload, ULPFEC_PT, 0))[1]
    assert rebuilt.sequence_number == base + 17 and rebuilt.payload == packets[17].payload


def test_two_losses_wait_for_one_of_them_and_then_rebuild_the_other() -> None:
    packets, fec_packet, wire = frame_with_parity(10, 1, (50, 60, 70, 80))
    fec = receiver()
    fec.receive(wire[0])
    fec.receive(wire[3])
    assert len(fec.receive(fec_packet)) == 1, "two missing: nothing to rebuild yet"
    out = fec.receive(wire[1])  # arrives late (reordered)
    assert [p.sequence_number for p in out] == [11, 12]
    assert out[1].payload == packets[2].payload and fec.recovered == 1


def test_a_retransmitted_packet_cannot_stand_in_for_protected_bytes() -> None:
    _, fec_packet, wire = frame_with_parity(10, 1)
    fec = receiver()
    fec.receive(wire[0])
    # aiortc unwraps RTX into a fresh RtpPacket: its original header bytes are not known.
    retransmitted = RtpPacket(RED_PT, 0, 12, wire[2].timestamp, SSRC, wire[2].payload)
    fec.receive(retransmitted)
    assert len(fec.receive(fec_packet)) == 1 and fec.recovered == 0


def test_mutable_extensions_are_zeroed_before_the_xor() -> None:
    packet = media(1, 2, b"x")
    packet.extensions.abs_send_time = 0xABCDEF
    header = bytearray(packet.serialize(EXT)[:-1])
    zero_extensions(header, MUTABLE)
    parsed = RtpPacket.parse(bytes(header) + b"x", EXT)
    assert parsed.extensions.abs_send_time == 0 and parsed.extensions.mid == "0"


def test_malformed_red_and_parity_are_counted_not_raised() -> None:
    fec = receiver()
    assert red_primary(b"") is None and red_primary(b"\x80\x00") is None
    assert parse_parity(b"\x00" * 5) is None and parse_parity(b"\x80" + b"\x00" * 20) is None
    bad = on_the_wire(media(1, 0, b""), b"\x00" * 4, ULPFEC_PT, 0)
    standin = fec.receive(bad)
    assert len(standin) == 1 and standin[0].payload == b"" and fec.malformed == 1
    empty = RtpPacket(RED_PT, 0, 2, 0, SSRC, b"")
    assert fec.receive(empty) == [] and fec.malformed == 2


def test_redundant_blocks_are_skipped_for_the_primary() -> None:
    redundant = bytes([0x80 | VP8_PT, 0x00, 0x00, 3]) + bytes([VP8_PT]) + b"old" + b"new"
    assert red_primary(redundant) == (VP8_PT, b"new")


class NackGenerator:
    def __init__(self) -> None:
        self.missing: set[int] = set()


class FakeReceiver:
    def __init__(self) -> None:
        self._RTCRtpReceiver__nack_generator = NackGenerator()

    async def _send_rtcp_nack(self, media_ssrc: int, lost: list[int]) -> None:
        pass


def test_the_tap_forwards_plain_vp8_and_records_whole_frames_despite_the_loss() -> None:
    rx = FakeReceiver()
    counters = MediaCounters()
    frames: list[EncodedFrame] = []
    forwarded: list[RtpPacket] = []
    tap = ReceiverTap(
        rx,  # type: ignore[arg-type]
        "VP8",
        90000,
        frames.append,
        counters,
        1.0,
        0.02,
        packet_sink=lambda p, _now: forwarded.append(p),
        fec=receiver(),
    )
    _, key_parity, key = frame_with_parity(10, 1, (400,), key=True)
    tap.add(key[0])
    tap.add(key_parity)
    packets, fec_packet, wire = frame_with_parity(12, 2)
    rx._RTCRtpReceiver__nack_generator.missing.add(13)
    tap.note_nacked([13])
    tap.add(wire[0])
    tap.add(wire[2])
    assert len(frames) == 1, "the frame waits for its middle packet"
    tap.add(fec_packet)
    assert len(frames) == 2 and counters.fec_recovered == 1 and counters.fec_packets == 2
    assert counters.red_packets == 5
    assert frames[1].data == b"".join(p.payload[4:] for p in packets)
    assert 13 not in rx._RTCRtpReceiver__nack_generator.missing, "no NACK for what was rebuilt"
    assert tap.rtt_s is None, "a rebuild is not a round trip"
    assert [p.sequence_number for p in forwarded] == [10, 11, 12, 14, 15, 13]
    assert all(p.payload_type == VP8_PT for p in forwarded)
    assert [len(p.payload) for p in forwarded if p.sequence_number in (11, 15)] == [0, 0]


def test_publishers_are_offered_fec_with_vp8_only() -> None:
    names = [c.name.lower() for c in codec_preferences("video", ("VP8",), fec=True)]
    assert "red" in names and "ulpfec" in names and names[0] == "vp8"
    assert not {"red", "ulpfec"} & {c.name.lower() for c in codec_preferences("video", ("H264",), fec=True)}
    assert not {"red", "ulpfec"} & {c.name.lower() for c in codec_preferences("video", ("VP8",))}


def with_browser_fec(offer: str) -> str:
    """Add red, its RTX and ulpfec to a video m-line, as a browser's offer carries them."""
    lines = offer.split("\r\n")
    out = []
    for line in lines:
        if line.startswith("m=video"):
            line += " 116 118 117"
        out.append(line)
        if line.startswith("a=rtcp-mux") and any(x.startswith("m=video") for x in out):
            out += ["a=rtpmap:116 red/90000", "a=rtpmap:118 rtx/90000", "a=fmtp:118 apt=116"]
            out += ["a=rtpmap:117 ulpfec/90000"]
    return "\r\n".join(out)


@pytest.mark.parametrize(
    ("codec", "enabled", "expected"), [("VP8", True, True), ("VP8", False, False), ("H264", True, False)]
)
async def test_the_publisher_answer_takes_red_and_ulpfec_with_vp8(
    codec: str, enabled: bool, expected: bool
) -> None:
    media = MediaService(MediaSettings(max_peers=4, publisher_fec=enabled))
    pub, offer = await publisher_client(codec, audio=False)
    try:
        fec_offer = with_browser_fec(offer)
        assert "ulpfec/90000" in fec_offer
        handle = await media.publish("s1", "staff", fec_offer)
        video = handle.answer_sdp.split("m=video")[1]
        assert ("a=rtpmap:116 red/90000" in video) is expected
        assert ("a=rtpmap:117 ulpfec/90000" in video) is expected
        assert ("apt=116" in video) is expected, "retransmissions of RED packets need their RTX"
    finally:
        await pub.close()
        await media.close()


def test_the_parity_share_is_measured_in_bytes() -> None:
    fec = receiver()
    for n in range(40):
        packets, fec_packet, wire = frame_with_parity(10 + 4 * n, n, (100, 100, 100))
        for p in wire:
            fec.receive(p)
        fec.receive(fec_packet)
    media_bytes = sum(len(p.payload) for p in packets)
    parity = red_primary(fec_packet.payload)
    assert parity is not None
    assert fec.parity_ratio == pytest.approx(len(parity[1]) / media_bytes, rel=0.05)
