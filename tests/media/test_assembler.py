"""Marker-bit frame assembly on synthetic depayloaded packets."""

from __future__ import annotations

from dataclasses import dataclass

from rtc_server.media.assembler import MAX_PENDING_PACKETS, AudioAssembler, VideoAssembler
from rtc_server.media.frames import h264_is_keyframe, vp8_is_keyframe

VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag with key-frame bit clear (bit 0 = 0)
VP8_DELTA = b"\x31\x02\x00"


@dataclass
class Pkt:
    sequence_number: int
    timestamp: int
    marker: int
    payload: bytes
    _data: bytes
    ssrc: int = 1
    payload_type: int = 96


def vp8_frame(seq: int, ts: int, body: bytes, parts: int = 3) -> list[Pkt]:
    """Split `body` into `parts` packets; first has S=1 PID=0, last has the marker."""
    size = -(-len(body) // parts)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, chunk in enumerate(chunks):
        descriptor = b"\x10" if i == 0 else b"\x00"
        out.append(Pkt((seq + i) & 0xFFFF, ts, int(i == len(chunks) - 1), descriptor + chunk, chunk))
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(asm: VideoAssembler, packets: list[Pkt], now: float = 0.0) -> tuple[list[bytes], bool]:
    frames: list[bytes] = []
    pli = False
    for p in packets:
        out, want = asm.add(p, now, 1000.0 + now)
        frames += [f.data for f in out]
        pli = pli or want
    return frames, pli


def test_frame_is_released_on_its_marker_packet_not_on_the_next_frame() -> None:
    asm = VideoAssembler("VP8")
    key = VP8_KEY + b"k" * 30
    packets = vp8_frame(100, 9000, key)
    out, _ = feed(asm, packets[:-1])
    assert out == []
    released, _ = asm.add(packets[-1], 0.0, 0.0)
    assert [f.data for f in released] == [key]
    assert released[0].keyframe and released[0].codec == "VP8" and released[0].rtp_timestamp == 9000


def test_stream_waits_for_a_keyframe_before_releasing_anything() -> None:
    asm = VideoAssembler("VP8")
    out, _ = feed(asm, vp8_frame(10, 0, VP8_DELTA + b"d" * 20))
    assert out == [] and not asm.synchronised
    key = VP8_KEY + b"k" * 20
    out, _ = feed(asm, vp8_frame(13, 3000, key))
    assert out == [key] and asm.synchronised


def test_reordering_within_and_across_frames_keeps_frame_order() -> None:
    asm = VideoAssembler("VP8")
    key, d1, d2 = VP8_KEY + b"a" * 30, VP8_DELTA + b"b" * 30, VP8_DELTA + b"c" * 30
    f0, f1, f2 = vp8_frame(65534, 0, key), vp8_frame(1, 3000, d1), vp8_frame(4, 6000, d2)  # wraps
    out, _ = feed(asm, f0)
    assert out == [key]
    out, _ = feed(asm, [f2[0], f2[2], f1[2], f1[0], f2[1]])
    assert out == []
    out, pli = feed(asm, [f1[1]])
    assert out == [d1, d2] and not pli


def test_duplicates_and_late_packets_are_ignored() -> None:
    asm = VideoAssembler("VP8")
    key = VP8_KEY + b"a" * 30
    f0 = vp8_frame(0, 0, key)
    out, _ = feed(asm, f0 + f0)
    assert out == [key]
    d1 = VP8_DELTA + b"b" * 30
    out, _ = feed(asm, [*vp8_frame(3, 3000, d1), f0[1]])
    assert out == [d1]


def test_lost_packet_abandons_frame_after_wait_and_resyncs_on_keyframe() -> None:
    clock = Clock()
    asm = VideoAssembler("VP8", reorder_wait_s=0.1, clock=clock)
    out, _ = feed(asm, vp8_frame(0, 0, VP8_KEY + b"a" * 30))
    assert len(out) == 1
    f1 = vp8_frame(3, 3000, VP8_DELTA + b"b" * 30)
    out, pli = feed(asm, [f1[0], f1[2]], now=0.01)  # f1[1] lost for good
    assert out == [] and not pli
    f2 = vp8_frame(6, 6000, VP8_DELTA + b"c" * 30)
    out, pli = feed(asm, f2, now=0.05)
    assert out == [] and not pli, "still within the retransmission wait"
    f3 = vp8_frame(9, 9000, VP8_DELTA + b"d" * 30)
    out, pli = feed(asm, f3, now=0.2)
    assert out == [] and pli, "after the wait: give up and ask for a keyframe"
    assert asm.frames_abandoned == 1 and not asm.synchronised
    out, _ = feed(asm, vp8_frame(12, 12000, VP8_DELTA + b"e" * 30), now=0.21)
    assert out == [], "deltas after a loss would decode to garbage"
    key2 = VP8_KEY + b"z" * 30
    out, _ = feed(asm, vp8_frame(15, 15000, key2), now=0.22)
    assert out == [key2] and asm.synchronised
    assert len(asm._packets) == 0


def test_padding_packets_are_stepped_over() -> None:
    asm = VideoAssembler("VP8")
    feed(asm, vp8_frame(0, 0, VP8_KEY + b"a" * 10))
    padding = [Pkt(3, 0, 0, b"", b""), Pkt(4, 0, 0, b"", b"")]
    d1 = VP8_DELTA + b"b" * 10
    out, pli = feed(asm, [*padding, *vp8_frame(5, 3000, d1)])
    assert out == [d1] and not pli


def test_pending_packets_are_bounded() -> None:
    asm = VideoAssembler("VP8")
    feed(asm, vp8_frame(0, 0, VP8_KEY + b"a" * 10))
    pli = False
    for i in range(MAX_PENDING_PACKETS + 10):
        # Never completes: sequence 3 is missing forever and no marker comes.
        _, want = asm.add(Pkt(4 + i, 3000, 0, b"\x00x", b"x"), 0.0, 0.0)
        pli = pli or want
    assert pli and len(asm._packets) < MAX_PENDING_PACKETS


def test_h264_resync_needs_parameter_sets_or_idr_at_frame_start() -> None:
    asm = VideoAssembler("H264")
    # STAP-A carrying SPS (type 7) and PPS (type 8), then an IDR slice (type 5) with the marker.
    sps, pps, idr = b"\x67\x42\xe0\x1f", b"\x68\xce", b"\x65\x88\x84"
    stap = b"\x78" + len(sps).to_bytes(2, "big") + sps + len(pps).to_bytes(2, "big") + pps
    annexb_stap = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    p1 = Pkt(50, 0, 0, stap, annexb_stap)
    p2 = Pkt(51, 0, 1, idr, b"\x00\x00\x00\x01" + idr)
    out, _ = feed(asm, [p1, p2])
    assert out == [annexb_stap + b"\x00\x00\x00\x01" + idr]
    assert h264_is_keyframe(out[0])
    # A non-IDR slice (type 1) first does not synchronise.
    asm2 = VideoAssembler("H264")
    out, _ = feed(asm2, [Pkt(7, 0, 1, b"\x41\x9a", b"\x00\x00\x00\x01\x41\x9a")])
    assert out == [] and not asm2.synchronised


def test_audio_packets_are_frames_and_late_ones_are_dropped() -> None:
    asm = AudioAssembler("opus", 48000)
    out1, _ = asm.add(Pkt(10, 960, 0, b"a", b"a"), 1.0, 2.0)
    out2, _ = asm.add(Pkt(12, 2880, 0, b"c", b"c"), 1.0, 2.0)
    late, _ = asm.add(Pkt(11, 1920, 0, b"b", b"b"), 1.0, 2.0)
    assert [f.data for f in out1 + out2] == [b"a", b"c"] and late == []
    assert out1[0].keyframe and out1[0].clock_rate == 48000


def test_keyframe_detection() -> None:
    assert vp8_is_keyframe(VP8_KEY) and not vp8_is_keyframe(VP8_DELTA) and not vp8_is_keyframe(b"")
    assert h264_is_keyframe(b"\x00\x00\x00\x01\x67\x42\x00\x00\x01\x65\x88")
    assert not h264_is_keyframe(b"\x00\x00\x00\x01\x41\x9a")


def test_missing_lists_the_holes_before_the_newest_packet() -> None:
    asm = VideoAssembler("VP8")
    feed(asm, vp8_frame(65533, 0, VP8_KEY + b"a" * 30))  # 65533..65535
    assert asm.missing() == [] and not asm.new_gap
    f1 = vp8_frame(0, 3000, VP8_DELTA + b"b" * 30)  # 0, 1, 2 (wrapped)
    f2 = vp8_frame(3, 6000, VP8_DELTA + b"c" * 30)
    feed(asm, [f1[0], f2[1]])
    assert asm.new_gap
    assert asm.missing() == [1, 2, 3]
    assert asm.missing(limit=2) == [1, 2]


def test_renumbered_stream_resynchronises_instead_of_dropping_everything_as_late() -> None:
    asm = VideoAssembler("VP8")
    feed(asm, vp8_frame(30000, 0, VP8_KEY + b"a" * 10))
    # The sender restarts far "behind" (new SSRC or encoder restart): not late packets, a new stream.
    out, _ = feed(asm, vp8_frame(100, 500, VP8_DELTA + b"b" * 10))
    assert out == [] and not asm.synchronised
    key = VP8_KEY + b"z" * 10
    out, _ = feed(asm, vp8_frame(103, 3500, key))
    assert out == [key]
    audio = AudioAssembler("opus", 48000)
    audio.add(Pkt(40000, 0, 0, b"a", b"a"), 0.0, 0.0)
    out2, _ = audio.add(Pkt(5, 960, 0, b"b", b"b"), 0.0, 0.0)
    assert [f.data for f in out2] == [b"b"]
    assert audio.add(Pkt(4, 0, 0, b"c", b"c"), 0.0, 0.0)[0] == []


def vp8_picture(seq: int, ts: int, picture_id: int, body: bytes, parts: int = 2) -> list[Pkt]:
    """As vp8_frame, with the 15-bit picture ID browsers put in every packet's descriptor."""
    out = vp8_frame(seq, ts, body, parts)
    for p in out:
        p.payload = (
            bytes([p.payload[0] | 0x80, 0x80, 0x80 | picture_id >> 8, picture_id & 0xFF]) + p.payload[1:]
        )
    return out


def test_a_hole_between_consecutive_pictures_is_stepped_over_at_once() -> None:
    # A lost FEC packet leaves a gap in the numbering that held no picture: waiting for it would
    # stall every viewer and the recorder until the reorder wait gave up and asked for a keyframe.
    asm = VideoAssembler("VP8", reorder_wait_s=10.0)
    key = VP8_KEY + b"k" * 30
    feed(asm, vp8_picture(100, 0, 0x7FFF, key))
    delta = VP8_DELTA + b"d" * 30
    out, pli = feed(asm, vp8_picture(103, 3000, 0, delta))  # 102 missing; picture ID wraps to 0
    assert out == [delta] and not pli and asm.missing() == []
    assert asm.skipped_sequences == [102]
    asm.skipped_sequences.clear()
    # A hole before a picture that is not the next one may have held a whole picture: wait for it.
    out, _ = feed(asm, vp8_picture(106, 6000, 2, delta))  # 105 missing, picture 1 unseen
    assert out == [] and asm.missing() == [105]
    out, _ = feed(asm, vp8_picture(105, 4500, 1, delta, parts=1))
    assert out == [delta, delta]
    # Parity comes in runs: a lost one followed by a received one (an empty stand-in) is one hole.
    standin = Pkt(109, 6000, 0, b"", b"")  # 108 lost
    out, _ = feed(asm, [standin, *vp8_picture(110, 7500, 3, delta)])
    assert out == [delta]
    assert asm.skipped_sequences == [108], "the stand-in that arrived is not a hole"
    # A hole at 112 is stepped over; one inside picture 4 is a lost packet of it, waited for.
    pictures = vp8_picture(113, 9000, 4, delta, parts=3)
    out, _ = feed(asm, [pictures[0], pictures[2]])
    assert out == [] and asm.missing() == [114]
    out, _ = feed(asm, [pictures[1]])
    assert out == [delta]
    assert asm.skipped_sequences == [108, 112] and asm.holes_skipped == 3


def test_pictures_without_ids_never_skip_a_hole() -> None:
    asm = VideoAssembler("VP8", reorder_wait_s=10.0)
    feed(asm, vp8_frame(100, 0, VP8_KEY + b"k" * 30))
    out, _ = feed(asm, vp8_frame(104, 3000, VP8_DELTA + b"d" * 30))
    assert out == [] and asm.missing() == [103]
