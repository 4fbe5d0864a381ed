"""Generated test video: codes drawn on a lit, textured scene, encoded with PyAV like a phone would."""

from __future__ import annotations

import fractions
import time
from collections.abc import Iterable, Sequence
from typing import Any

import av
import cv2
import numpy as np
import zxingcpp

from rtc_server.media.frames import H264, VP8, EncodedFrame, is_keyframe

FPS = 30
TICKS = 90000 // FPS
FORMATS = {
    "qr_code": zxingcpp.BarcodeFormat.QRCode,
    "ean_13": zxingcpp.BarcodeFormat.EAN13,
    "code_128": zxingcpp.BarcodeFormat.Code128,
}


def code_image(value: str, fmt: str, module_px: int) -> np.ndarray:
    """The printed code (black on white, with quiet zones), `module_px` pixels per module."""
    img = np.array(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(value, FORMATS[fmt]), scale=1))
    if img.shape[0] < 8:  # 1D: one row at scale 1
        img = np.repeat(img[:1], max(16, img.shape[1] // 3), axis=0)
    img = cv2.resize(img, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(img, 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=255)


def scene(width: int, height: int, seed: int = 1, level: float = 1.0) -> np.ndarray:
    """A lit room-like BGR background with detail (edges, texture): sharp by any measure."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(70, 200, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(30):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, width // 4)), int(rng.integers(10, height // 4))
        cv2.rectangle(img, (x, y), (x + w, y + h), tuple(float(v) for v in rng.uniform(30, 240, 3)), -1)
    for i in range(0, width, max(8, width // 40)):  # shelf edges
        cv2.line(img, (i, 0), (i, height), (40.0, 40.0, 40.0), 1)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img * level, 0, 255).astype(np.uint8)


def place(frame: np.ndarray, code: np.ndarray, x: int, y: int) -> tuple[float, float, float, float]:
    """Paste a code at (x, y); returns its normalised box (x, y, w, h)."""
    h, w = code.shape[:2]
    frame[y : y + h, x : x + w] = code[..., None] if frame.ndim == 3 else code
    fh, fw = frame.shape[:2]
    return x / fw, y / fh, w / fw, h / fh


class Encoder:
    """A WebRTC-like encoder: real-time, no look-ahead, keyframes only when asked (or first)."""

    def __init__(self, width: int, height: int, codec: str = VP8, bitrate: int = 1_500_000) -> None:
        name = "libvpx" if codec == VP8 else "libx264"
        self.codec = codec
        self.ctx: Any = av.CodecContext.create(name, "w")
        self.ctx.width, self.ctx.height, self.ctx.pix_fmt = width, height, "yuv420p"
        self.ctx.time_base = fractions.Fraction(1, FPS)
        self.ctx.framerate = fractions.Fraction(FPS, 1)
        self.ctx.bit_rate = bitrate
        self.ctx.gop_size = 10_000
        if codec == VP8:
            self.ctx.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8"}
        else:
            self.ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "bframes": "0"}
        self.pts = 0

    def encode(self, bgr: np.ndarray, keyframe: bool = False) -> list[bytes]:
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
        frame.pts = self.pts
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        self.pts += 1
        return [bytes(p) for p in self.ctx.encode(frame)]

    def flush(self) -> list[bytes]:
        return [bytes(p) for p in self.ctx.encode(None)]


def to_encoded_frames(
    payloads: Iterable[bytes], codec: str = VP8, start_ts: int = 4_000_000_000, wall0: float | None = None
) -> list[EncodedFrame]:
    """EncodedFrames as the media tap hands them out, 30 fps of RTP time (wrapping past 2**32)."""
    wall0 = time.time() if wall0 is None else wall0
    out = []
    for i, data in enumerate(payloads):
        ts = (start_ts + i * TICKS) & 0xFFFFFFFF
        key = is_keyframe(codec, data)
        out.append(EncodedFrame(data, ts, key, codec, 90000, time.monotonic(), wall0 + i / FPS))
    return out


def encode_clip(frames: Sequence[np.ndarray], codec: str = VP8, bitrate: int = 1_500_000) -> list[bytes]:
    h, w = frames[0].shape[:2]
    enc = Encoder(w, h, codec, bitrate)
    out: list[bytes] = []
    for img in frames:
        out.extend(enc.encode(img))
    out.extend(enc.flush())
    return out


__all__ = [
    "FPS",
    "H264",
    "TICKS",
    "VP8",
    "Encoder",
    "code_image",
    "encode_clip",
    "place",
    "scene",
    "to_encoded_frames",
]
