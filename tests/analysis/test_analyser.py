"""StreamAnalyser end to end on generated VP8 (and H.264) video fed as the media tap hands it out."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
import pytest

from rtc_server.analysis import (
    AnalyserClosed,
    AnalyserSettings,
    AnalysisEvent,
    CodeDetected,
    NoPicture,
    QualityHint,
    StreamAnalyser,
    UnsupportedCodec,
)
from rtc_server.media.frames import H264, VP8, EncodedFrame

from .video import FPS, Encoder, code_image, encode_clip, place, scene, to_encoded_frames

W, H = 640, 480
SKU_QR = "SKU-A-0001"
SKU_EAN = "4006381333931"
UNKNOWN = "UNKNOWN-9"


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the analyser")
        await asyncio.sleep(0.01)


async def drained(analyser: StreamAnalyser, fed: int) -> None:
    def done() -> bool:
        s = analyser.stats()
        return s.frames_decoded + s.frames_skipped + s.frames_dropped >= fed and analyser.backlog == 0

    await until(done)
    await asyncio.sleep(0.05)  # let the worker's last call_soon_threadsafe callbacks run


def inspection_clip() -> tuple[list[EncodedFrame], dict[str, tuple[float, float, tuple[float, ...]]]]:
    """10 s at 30 fps: checklist QR, checklist EAN-13, an unknown QR, a pause longer than the repeat
    window, the first QR again. The background pans slowly, as a hand-held phone's does."""
    base = scene(W + 64, H)
    qr, qr_unknown = code_image(SKU_QR, "qr_code", 6), code_image(UNKNOWN, "qr_code", 6)
    ean = code_image(SKU_EAN, "ean_13", 3)
    schedule = [(0.0, 2.0, qr, (40, 40)), (2.5, 4.5, ean, (150, 200)), (5.0, 6.5, qr_unknown, (380, 180))]
    schedule.append((9.0, 10.0, qr, (60, 250)))
    shown: dict[str, tuple[float, float, tuple[float, ...]]] = {}
    frames = []
    for i in range(int(10 * FPS)):
        t = i / FPS
        img = np.ascontiguousarray(base[:, (i // 3) % 64 : (i // 3) % 64 + W])
        for start, end, code, (x, y) in schedule:
            if start <= t < end:
                box = place(img, code, x, y)
                key = {id(qr): SKU_QR, id(ean): SKU_EAN, id(qr_unknown): UNKNOWN}[id(code)]
                shown.setdefault(f"{key}@{start}", (start, end, box))
        frames.append(img)
    return to_encoded_frames(encode_clip(frames)), shown


@pytest.fixture(scope="module")
def clip() -> tuple[list[EncodedFrame], dict[str, tuple[float, float, tuple[float, ...]]]]:
    return inspection_clip()


async def test_codes_checklist_unexpected_and_repeats(clip: tuple) -> None:
    frames, shown = clip
    events: list[AnalysisEvent] = []
    # Fed at once, far faster than real time: room for every frame, no slowing down for backlog.
    n = len(frames) + 10
    settings = AnalyserSettings(repeat_window_s=2.0, queue_frames=n, backlog_high=n)
    checklist = {SKU_QR: 2, SKU_EAN: 1, "SKU-NEVER-SHOWN": None}
    async with StreamAnalyser(VP8, checklist, events.append, settings=settings) as analyser:
        for frame in frames:
            assert analyser.feed(frame)
        await drained(analyser, len(frames))
        stats = analyser.stats()
        codes = [e for e in events if isinstance(e, CodeDetected)]
        assert [(e.value, e.format, e.sku, e.unexpected, e.count) for e in codes] == [
            (SKU_QR, "qr_code", SKU_QR, False, 1),
            (SKU_EAN, "ean_13", SKU_EAN, False, 1),
            (UNKNOWN, "qr_code", None, True, 1),
            (SKU_QR, "qr_code", SKU_QR, False, 2),
        ]
        expected = [shown[f"{SKU_QR}@0.0"], shown[f"{SKU_EAN}@2.5"], shown[f"{UNKNOWN}@5.0"]]
        expected.append(shown[f"{SKU_QR}@9.0"])
        for event, (start, end, box) in zip(codes, expected, strict=True):
            assert start <= event.media_time < end, (event.value, event.media_time)
            # The code's symbol (without quiet zones) lies inside the label that was drawn.
            b, (x, y, w, h) = event.bbox, box
            assert x - 0.01 <= b.x and b.x + b.w <= x + w + 0.01, event.value
            assert y - 0.01 <= b.y and b.y + b.h <= y + h + 0.01, event.value
            assert b.w > w / 2 and (b.h > h / 2 or event.format == "ean_13"), event.value
            assert event.wallclock == pytest.approx(frames[0].wallclock + event.media_time, abs=0.01)
        items = {i.sku: i for i in analyser.checklist.items()}
        assert items[SKU_QR].count == 2 and items[SKU_EAN].count == 1 and not items["SKU-NEVER-SHOWN"].seen
        assert analyser.checklist.missing() == ["SKU-NEVER-SHOWN"]
        assert analyser.checklist.unexpected() == {UNKNOWN: 1}
        # A sharp, lit, moving picture: no quality hint at all.
        assert [e for e in events if isinstance(e, QualityHint)] == []
        # Every frame decoded, analysis at the configured rate (10 s at 5 per second).
        assert stats.frames_decoded == len(frames) and stats.decode_errors == 0
        assert 45 <= stats.frames_analysed <= 52


async def test_still_is_full_resolution_png_of_the_latest_frame() -> None:
    images = [scene(1280, 720, seed=s) for s in range(12)]
    payloads = encode_clip(images, bitrate=2_500_000)
    frames = to_encoded_frames(payloads)
    reference = av.CodecContext.create("vp8", "r")
    last = [f for p in payloads for f in reference.decode(av.Packet(p))][-1].to_ndarray(format="bgr24")
    async with StreamAnalyser(VP8) as analyser:
        for frame in frames:
            analyser.feed(frame)
        still = await analyser.snapshot()  # right after feeding: waits for the fed frames
    assert (still.width, still.height) == (1280, 720)
    assert still.content_type == "image/png" and still.data.startswith(b"\x89PNG")
    assert still.sha256 == hashlib.sha256(still.data).hexdigest()
    assert still.media_time == pytest.approx(11 / FPS)
    assert still.wallclock == frames[-1].wallclock
    pixels = cv2.imdecode(np.frombuffer(still.data, np.uint8), cv2.IMREAD_COLOR)
    assert pixels.shape == (720, 1280, 3)
    assert np.array_equal(pixels, last)  # lossless: exactly the decoder's picture


async def test_still_as_jpeg_while_analysis_is_throttled() -> None:
    frames = to_encoded_frames(encode_clip([scene(W, H, seed=s) for s in range(30)]))
    settings = AnalyserSettings(still_format="jpeg", analysis_fps=0.5, min_analysis_fps=0.5)
    async with StreamAnalyser(VP8, settings=settings) as analyser:
        for frame in frames:
            analyser.feed(frame)
        still = await analyser.snapshot()
        assert analyser.stats().frames_analysed == 1  # one analysed frame, yet the still is current
    assert still.content_type == "image/jpeg" and still.data.startswith(b"\xff\xd8")
    assert (still.width, still.height) == (W, H)
    assert still.media_time == pytest.approx(29 / FPS)


async def test_snapshot_without_picture_and_after_close() -> None:
    analyser = StreamAnalyser(VP8, settings=AnalyserSettings(snapshot_wait_s=0.2))
    with pytest.raises(NoPicture):
        await analyser.snapshot()
    # Only inter frames (the keyframe was lost): nothing decodable, still no picture.
    frames = to_encoded_frames(encode_clip([scene(W, H, seed=s) for s in range(5)]))
    for frame in frames[1:]:
        analyser.feed(frame)
    with pytest.raises(NoPicture):
        await analyser.snapshot()
    await analyser.close()
    assert analyser.feed(frames[0]) is False
    with pytest.raises(AnalyserClosed):
        await analyser.snapshot()
    await analyser.close()  # idempotent


async def test_unsupported_codec_and_bad_settings() -> None:
    with pytest.raises(UnsupportedCodec):
        StreamAnalyser("AV1")
    with pytest.raises(ValueError):
        AnalyserSettings(analysis_fps=1.0, min_analysis_fps=2.0)
    with pytest.raises(ValueError):
        AnalyserSettings.from_mapping({"analysis_fps": 5, "typo": 1})
    with pytest.raises(ValueError):
        AnalyserSettings.from_mapping({"quality": {"dark_onn": 3}})
    s = AnalyserSettings.from_mapping({"analysis_fps": 3, "quality": {"dark_on": 30}, "formats": ["qr_code"]})
    assert s.analysis_fps == 3 and s.quality.dark_on == 30.0 and s.formats == ("qr_code",)


async def test_overflow_waits_for_keyframe_and_requests_one() -> None:
    encoder = Encoder(W, H)
    images = [scene(W, H, seed=s) for s in range(8)]
    payloads = [p for i in range(60) for p in encoder.encode(images[i % 8])]
    requests: list[float] = []
    settings = AnalyserSettings(queue_frames=4, backlog_high=2)
    async with StreamAnalyser(
        VP8, request_keyframe=lambda: requests.append(time.monotonic()), settings=settings
    ) as a:
        frames = to_encoded_frames(payloads)
        for frame in frames:  # all at once: far faster than the worker decodes
            a.feed(frame)
        await until(lambda: bool(requests))
        stats = a.stats()
        assert stats.frames_dropped > 0 and stats.decode_errors == 0
        # The publisher answers with a keyframe: decoding resumes from it.
        answer = to_encoded_frames(
            [*encoder.encode(images[0], keyframe=True), *encoder.encode(images[1])],
            start_ts=frames[-1].rtp_timestamp + 3000,
        )
        assert answer[0].keyframe and not answer[1].keyframe
        decoded_before = stats.frames_decoded
        for frame in answer:
            a.feed(frame)
        await until(lambda: a.stats().frames_decoded == decoded_before + 2)
        still = await a.snapshot()
        assert still.media_time == pytest.approx(61 / FPS)


async def test_corrupt_frame_is_survived() -> None:
    encoder = Encoder(W, H)
    img = scene(W, H)
    requests: list[int] = []
    async with StreamAnalyser(VP8, request_keyframe=lambda: requests.append(1)) as analyser:
        good = to_encoded_frames(encoder.encode(img, keyframe=True))
        analyser.feed(good[0])
        bad = EncodedFrame(
            b"\x00\x00\x00garbage" * 20, good[0].rtp_timestamp + 3000, True, VP8, 90000, 0.0, 0.0
        )
        analyser.feed(bad)
        await until(lambda: analyser.stats().decode_errors == 1)
        await until(lambda: bool(requests))
        again = to_encoded_frames(encoder.encode(img, keyframe=True), start_ts=bad.rtp_timestamp + 3000)
        analyser.feed(again[0])
        await until(lambda: analyser.stats().frames_decoded == 2)


async def test_h264_stream() -> None:
    img = scene(W, H)
    place(img, code_image(SKU_QR, "qr_code", 6), 100, 100)
    events: list[AnalysisEvent] = []
    frames = to_encoded_frames(encode_clip([img] * 15, codec=H264), codec=H264)
    async with StreamAnalyser(H264, [SKU_QR], events.append) as analyser:
        for frame in frames:
            analyser.feed(frame)
        await drained(analyser, len(frames))
        assert analyser.stats().frames_decoded == len(frames)
    assert [(e.value, e.sku) for e in events if isinstance(e, CodeDetected)] == [(SKU_QR, SKU_QR)]


async def test_dark_and_frozen_hints_through_the_analyser() -> None:
    dark = [np.roll(scene(W, H, level=0.15), 3 * i, axis=1) for i in range(60)]  # moving, dark: 2 s
    still_scene = scene(W, H, seed=5)
    frozen = [still_scene] * 150  # 5 s of the same lit picture
    events: list[AnalysisEvent] = []
    frames = to_encoded_frames(encode_clip(dark + frozen))
    settings = AnalyserSettings(queue_frames=len(frames))  # fed faster than real time
    async with StreamAnalyser(VP8, on_event=events.append, settings=settings) as analyser:
        for frame in frames:
            analyser.feed(frame)
        await drained(analyser, len(frames))
        hints = [(e.hint, e.active) for e in events if isinstance(e, QualityHint)]
        assert hints == [("too_dark", True), ("too_dark", False), ("frozen", True)]
        assert analyser.active_hints == {"frozen"}
        first = next(e for e in events if isinstance(e, QualityHint))
        assert first.data()["message"]["en"].startswith("More light")
        assert 1.0 <= first.media_time < 2.0


async def test_codec_change_across_a_publisher_reconnect() -> None:
    img = scene(W, H)
    vp8 = to_encoded_frames(encode_clip([img] * 5))
    h264 = to_encoded_frames(encode_clip([img] * 5, codec=H264), codec=H264, start_ts=123)
    audio = EncodedFrame(b"\xfc\xff\xfe", 5, True, "opus", 48000, 0.0, vp8[-1].wallclock)
    async with StreamAnalyser(VP8) as analyser:
        for frame in [*vp8, audio, *h264]:
            analyser.feed(frame)
        await drained(analyser, 11)
        stats = analyser.stats()
        assert stats.frames_decoded == 10 and stats.decode_errors == 0 and stats.frames_skipped == 1
        still = await analyser.snapshot()
        assert (still.width, still.height) == (W, H)


async def test_keyframe_requests_back_off_while_overloaded() -> None:
    encoder = Encoder(320, 240)
    images = [scene(320, 240, seed=s) for s in range(4)]
    payloads = [p for i in range(200) for p in encoder.encode(images[i % 4])]
    frames = to_encoded_frames(payloads)
    requests: list[float] = []
    settings = AnalyserSettings(queue_frames=4, keyframe_request_interval_s=0.2)
    async with StreamAnalyser(VP8, request_keyframe=lambda: requests.append(1), settings=settings) as a:
        for episode in range(4):  # four overflows, 0.25 s apart: the worker is overloaded
            for frame in frames[episode * 50 : (episode + 1) * 50]:
                a.feed(frame)
            await asyncio.sleep(0.25)
        stats = a.stats()
    assert stats.frames_dropped > 0
    # Without back-off every episode would ask (0.25 s > 0.2 s); with it the intervals grow
    # 0.2 -> 0.4 -> 0.8 -> 1.6 s.
    assert 1 <= len(requests) <= 2


async def test_snapshot_after_overflow_asks_for_a_keyframe_and_returns_the_new_picture() -> None:
    encoder = Encoder(W, H)
    images = [scene(W, H, seed=s) for s in range(4)]
    frames = to_encoded_frames([p for i in range(60) for p in encoder.encode(images[i % 4])])
    settings = AnalyserSettings(queue_frames=4, snapshot_wait_s=5.0)
    analyser: StreamAnalyser

    def publisher_answers() -> None:
        # The phone answers a keyframe request with a keyframe (here: at once, on the loop).
        answer = to_encoded_frames(
            encoder.encode(images[0], keyframe=True), start_ts=frames[-1].rtp_timestamp + 3000
        )
        analyser.feed(answer[0])

    async with StreamAnalyser(VP8, request_keyframe=publisher_answers, settings=settings) as analyser:
        for frame in frames:  # far faster than the worker: the queue overflows
            analyser.feed(frame)
        still = await analyser.snapshot()
        assert analyser.stats().frames_dropped > 0
    assert still.media_time == pytest.approx(60 / FPS)  # the answer's picture, not a stale one
