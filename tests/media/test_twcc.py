"""Transport-cc feedback, read back with a parser written from the draft (run-length and both vector
chunk kinds, as any sender must accept), and the receiver hook that feeds it."""

from __future__ import annotations

import asyncio
import struct

import pytest

from rtc_server.media import MediaService, MediaSettings
from rtc_server.media.aiortc_tap import TRANSPORT_CC_URI
from rtc_server.media.twcc import MAX_SPAN, TransportFeedback, build_feedback
from tests.media.media_clients import publisher_client, viewer_client


def parse(packet: bytes) -> dict[str, object]:
    """draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1, independently of the writer."""
    first, pt, length = struct.unpack_from("!BBH", packet)
    assert first >> 6 == 2 and first & 0x1F == 15 and pt == 205
    assert (length + 1) * 4 == len(packet), "length field matches the packet"
    end = len(packet) - (packet[-1] if first & 0x20 else 0)
    sender, media, base, count = struct.unpack_from("!IIHH", packet, 4)
    reference = int.from_bytes(packet[16:19], "big")
    fb_count = packet[19]
    pos, symbols = 20, []
    while len(symbols) < count:
        chunk = struct.unpack_from("!H", packet, pos)[0]
        pos += 2
        if not chunk & 0x8000:
            symbols += [(chunk >> 13) & 3] * (chunk & 0x1FFF)
        elif chunk & 0x4000:
            symbols += [(chunk >> (12 - 2 * i)) & 3 for i in range(7)]
        else:
            symbols += [(chunk >> (13 - i)) & 1 for i in range(14)]
    symbols = symbols[:count]
    times: dict[int, int] = {}
    now = reference * 64_000
    for i, symbol in enumerate(symbols):
        if symbol == 1:
            now += packet[pos] * 250
            pos += 1
        elif symbol == 2:
            now += struct.unpack_from("!h", packet, pos)[0] * 250
            pos += 2
        if symbol:
            times[(base + i) & 0xFFFF] = now
    assert pos <= end, "deltas stay within the packet"
    return {"sender": sender, "media": media, "base": base, "count": count, "fb": fb_count, "times": times}


def test_every_received_packet_comes_back_with_its_arrival_time() -> None:
    arrivals = {100: 1_000_000, 101: 1_001_000, 103: 1_070_000, 104: 1_069_000, 105: 9_000_000}
    packet, stop = build_feedback(7, 9, 100, arrivals, 105, 3)
    out = parse(packet)
    assert (out["sender"], out["media"], out["base"], out["count"], out["fb"]) == (7, 9, 100, 6, 3)
    assert stop == 106
    times = out["times"]
    assert isinstance(times, dict) and sorted(times) == [100, 101, 103, 104, 105], "102 reported lost"
    for seq, at in arrivals.items():
        assert abs(times[seq] - at) < 250, "a 250 us grid, errors never accumulate"


def test_a_gap_too_long_for_one_delta_starts_the_next_feedback() -> None:
    arrivals = {10: 0, 11: 10_000_000}  # 10 s apart: beyond a signed 16-bit count of 250 us
    packet, stop = build_feedback(1, 2, 10, arrivals, 11, 0)
    assert stop == 11 and parse(packet)["count"] == 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_feedback_covers_each_number_once_and_wraps() -> None:
    clock = Clock()
    fb = TransportFeedback(lambda _p: asyncio.sleep(0), lambda: 5, clock=clock)
    assert fb.take() == []
    for i, seq in enumerate([65534, 65535, 1, 2]):  # 0 lost, numbers wrap
        clock.now += 0.005 * i
        fb.on_packet(seq, 42)
    (packet,) = fb.take()
    out = parse(packet)
    assert out["base"] == 65534 and out["count"] == 5 and out["media"] == 42
    assert sorted(out["times"]) == [1, 2, 65534, 65535]  # type: ignore[call-overload]
    fb.on_packet(0, 42)  # the lost one, too late: already reported
    fb.on_packet(3, 42)
    (packet,) = fb.take()
    assert parse(packet)["base"] == 3 and parse(packet)["fb"] == 1
    assert fb.take() == []


def test_a_long_silence_reports_only_the_last_window() -> None:
    fb = TransportFeedback(lambda _p: asyncio.sleep(0), lambda: 5, clock=Clock())
    fb.on_packet(1, 1)
    fb.take()
    fb.on_packet(5000, 1)
    (packet,) = fb.take()
    assert parse(packet)["count"] == MAX_SPAN


def test_nothing_goes_out_before_the_receiver_has_an_rtcp_ssrc() -> None:
    fb = TransportFeedback(lambda _p: asyncio.sleep(0), lambda: None, clock=Clock())
    fb.on_packet(1, 1)
    assert fb.take() == []


async def test_the_timer_sends_what_arrived() -> None:
    sent: list[bytes] = []

    async def send(packet: bytes) -> None:
        sent.append(packet)

    fb = TransportFeedback(send, lambda: 5, interval_s=0.01)
    fb.start()
    try:
        fb.on_packet(7, 1)
        await asyncio.sleep(0.05)
        assert len(sent) == 1 and parse(sent[0])["base"] == 7
    finally:
        await fb.stop()


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 8, 14, 15])
def test_padding_keeps_the_packet_a_whole_number_of_words(count: int) -> None:
    arrivals = {i: i * 1000 for i in range(count)}
    packet, _ = build_feedback(1, 2, 0, arrivals, count - 1, 0)
    assert len(packet) % 4 == 0 and parse(packet)["count"] == count


def with_transport_cc(offer: str) -> str:
    """Offer transport-cc on the video m-line, as browsers do."""
    out, section = [], ""
    for line in offer.split("\r\n"):
        out.append(line)
        if line.startswith("m="):
            section = line.split()[0]
        if line.startswith("a=mid:") and section == "m=video":
            out.append("a=extmap:5 " + TRANSPORT_CC_URI)
    return "\r\n".join(out)


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_publisher_answer_takes_transport_cc(enabled: bool) -> None:
    media = MediaService(MediaSettings(max_peers=4, publisher_transport_cc=enabled))
    pub, offer = await publisher_client("VP8", audio=False)
    try:
        offer = with_transport_cc(offer)
        assert TRANSPORT_CC_URI in offer
        handle = await media.publish("s1", "staff", offer)
        assert (f"a=extmap:5 {TRANSPORT_CC_URI}" in handle.answer_sdp) is enabled
        assert ("a=rtcp-fb:" in handle.answer_sdp and " transport-cc" in handle.answer_sdp) is enabled
        # Viewers are never offered it: their REMB is what caps the publisher for them.
        viewer, voffer = await viewer_client()
        try:
            watched = await media.subscribe("s1", "officer", with_transport_cc(voffer))
            assert TRANSPORT_CC_URI not in watched.answer_sdp and "transport-cc" not in watched.answer_sdp
        finally:
            await viewer.close()
    finally:
        await pub.close()
        await media.close()
