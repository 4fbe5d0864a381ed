"""Generated inspection video and a real aiortc staff publisher sending it over WHIP.

The clip is encoded once with PyAV (VP8, real-time settings like a phone's WebRTC encoder) with a
keyframe every second; the publisher ignores keyframe requests (the recorder asks at every segment
end), so the picture sequence, and when each code is shown, stays as scheduled.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

from tests.analysis.video import FPS, Encoder, code_image, place, scene
from tests.media.media_clients import ClipTrack, EncodedClip, audio_clip, make_offer

SKU_QR = "SKU-QR-0001"
SKU_EAN = "4006381333931"
SKU_CODE128 = "PAL-0042-7731"
SKU_MISSING = "SKU-NEVER-SHOWN"
UNKNOWN = "UNKNOWN-PALLET-9"
ITEMS = [
    {"sku": SKU_QR, "description": "Forklift 叉车", "expected_qty": 1},
    {"sku": SKU_EAN, "description": "Boxed goods", "expected_qty": 2},
    {"sku": SKU_CODE128, "description": "Pallet label"},
    {"sku": SKU_MISSING, "description": "Never shown"},
]


@dataclass(frozen=True)
class Shown:
    value: str
    start: float
    end: float


def _encode(frames: Sequence[np.ndarray], bitrate: int) -> EncodedClip:
    h, w = frames[0].shape[:2]
    enc = Encoder(w, h, bitrate=bitrate)
    payloads: list[bytes] = []
    for i, img in enumerate(frames):
        payloads.extend(enc.encode(img, keyframe=i % FPS == 0))
    payloads.extend(enc.flush())
    keys = tuple(bool(p) and (p[0] & 1) == 0 for p in payloads)
    return EncodedClip("VP8", tuple(payloads), keys, 90000 // FPS, 90000)


@functools.cache
def codes_clip(width: int = 1280, height: int = 720) -> tuple[EncodedClip, tuple[Shown, ...]]:
    """10 s: a checklist QR, a checklist EAN-13, an unknown QR, a checklist Code 128, then 1.5 s of
    shelves only. The
    background pans slowly, as a hand-held phone's does."""
    scale = width / 640
    base = scene(width + 64, height)
    qr = code_image(SKU_QR, "qr_code", round(6 * scale))
    ean = code_image(SKU_EAN, "ean_13", round(3 * scale))
    unknown = code_image(UNKNOWN, "qr_code", round(6 * scale))
    pallet = code_image(SKU_CODE128, "code_128", round(2 * scale))
    schedule = [
        (Shown(SKU_QR, 0.0, 2.0), qr, (round(40 * scale), round(40 * scale))),
        (Shown(SKU_EAN, 2.5, 4.5), ean, (round(150 * scale), round(140 * scale))),
        (Shown(UNKNOWN, 5.0, 6.5), unknown, (round(380 * scale), round(150 * scale))),
        (Shown(SKU_CODE128, 7.0, 8.5), pallet, (round(60 * scale), round(120 * scale))),
    ]
    frames = []
    for i in range(10 * FPS):
        t = i / FPS
        img = np.ascontiguousarray(base[:, (i // 3) % 64 : (i // 3) % 64 + width])
        for shown, code, (x, y) in schedule:
            if shown.start <= t < shown.end:
                place(img, code, x, y)
        frames.append(img)
    bitrate = 2_500_000 if width >= 1280 else 1_000_000
    return _encode(frames, bitrate), tuple(s for s, _, _ in schedule)


@functools.cache
def dark_clip(width: int = 640, height: int = 480) -> EncodedClip:
    """3 s of a dim room (mean luma far under the darkness threshold), still panning."""
    base = scene(width + 64, height, level=0.12)
    frames = [np.ascontiguousarray(base[:, (i // 3) % 64 : (i // 3) % 64 + width]) for i in range(3 * FPS)]
    return _encode(frames, 600_000)


async def staff_publisher(clip: EncodedClip) -> tuple[RTCPeerConnection, ClipTrack, str]:
    """A publisher sending `clip` in real time (looping) with Opus audio; returns (pc, video, offer)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(ClipTrack("audio", audio_clip(), 50), direction="sendonly")
    video = ClipTrack("video", clip, FPS)
    transceiver = pc.addTransceiver(video, direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
    )
    # Pre-encoded frames with a keyframe every second: a keyframe request changes nothing.
    transceiver.sender._send_keyframe = lambda: None  # type: ignore[method-assign]
    return pc, video, await make_offer(pc)
