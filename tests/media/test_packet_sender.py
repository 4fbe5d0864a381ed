"""PacketSender's hand-built RTP matches what aiortc's own serialiser and parser agree on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unpack_header_extensions

from rtc_server.media.aiortc_tap import ABS_SEND_TIME_URI, MID_URI, PLAYOUT_DELAY_URI, PacketSender
from rtc_server.media.forwarding import OutPacket
from rtc_server.media.stats import MediaCounters

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def parameters(*ids: tuple[int, str]) -> RTCRtpSendParameters:
    return RTCRtpSendParameters(
        codecs=[VP8],
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=uri) for i, uri in ids],
        muxId="1",
    )


def sender_for(
    params: RTCRtpSendParameters, delay: tuple[int, int] | None
) -> tuple[PacketSender, RTCRtpSender]:
    sender = RTCRtpSender("video", SimpleNamespace(state="new"))  # type: ignore[arg-type]
    packets = PacketSender(sender, MediaCounters(), delay)
    packets.configure(params)
    packets.start(VP8)
    return packets, sender


@pytest.mark.parametrize("padding", [0, 7])
@pytest.mark.parametrize(
    "ids", [((1, MID_URI), (3, ABS_SEND_TIME_URI), (9, PLAYOUT_DELAY_URI)), ((3, ABS_SEND_TIME_URI),), ()]
)
async def test_hand_built_packets_parse_back_with_aiortc(
    ids: tuple[tuple[int, str], ...], padding: int
) -> None:
    params = parameters(*ids)
    packets, sender = sender_for(params, (0, 120))
    out = OutPacket(b"\x10payload", 1, 65535, 0xFFFFFFF0, padding, 0.0)
    history_packet, data = packets._packet(out, 0x123456)
    extensions = HeaderExtensionsMap()
    extensions.configure(params)
    parsed = RtpPacket.parse(data, extensions)
    assert (parsed.sequence_number, parsed.timestamp, parsed.marker, parsed.payload_type) == (
        65535,
        0xFFFFFFF0,
        1,
        96,
    )
    assert parsed.ssrc == sender._ssrc and parsed.payload == b"\x10payload" and parsed.padding_size == padding
    uris = {uri for _, uri in ids}
    assert parsed.extensions.abs_send_time == (0x123456 if ABS_SEND_TIME_URI in uris else None)
    assert parsed.extensions.mid == ("1" if MID_URI in uris else None)
    # aiortc's own serialiser (used for retransmissions from history) produces the same packet.
    assert RtpPacket.parse(history_packet.serialize(extensions), extensions).payload == parsed.payload
    if PLAYOUT_DELAY_URI in uris:
        raw = dict(unpack_header_extensions(0xBEDE, data[16 : 16 + 4 * int.from_bytes(data[14:16], "big")]))
        assert raw[9] == bytes([0x00, 0x00, 0x0C]), "min 0, max 12 (x 10 ms)"
    assert sender._RTCRtpSender__rtp_history[65535 % 128] is history_packet  # type: ignore[attr-defined]


async def test_ids_beyond_the_one_byte_form_fall_back_to_aiortc() -> None:
    params = parameters((1, MID_URI), (15, ABS_SEND_TIME_URI))
    packets, sender = sender_for(params, None)
    sender._RTCRtpSender__rtp_header_extensions_map.configure(params)  # type: ignore[attr-defined]
    _, data = packets._packet(OutPacket(b"x", 0, 1, 2, 0, 0.0), 77)
    extensions = HeaderExtensionsMap()
    extensions.configure(params)
    parsed = RtpPacket.parse(data, extensions)
    assert parsed.extensions.abs_send_time == 77 and parsed.extensions.mid == "1"


async def test_no_playout_delay_unless_configured() -> None:
    params = parameters((9, PLAYOUT_DELAY_URI))
    packets, _ = sender_for(params, None)
    _, data = packets._packet(OutPacket(b"x", 0, 1, 2, 0, 0.0), 77)
    assert not data[0] & 0x10, "no extension block at all"
