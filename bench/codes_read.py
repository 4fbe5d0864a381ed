"""Codes read per 100 frames shown, per reader, on VP8 phone-like video at 640x480 and 1280x720.

Each clip shows one code (QR, EAN-13 or Code 128) printed on a white label that a hand-held phone
films: the label moves across a textured background, its size in the frame sweeps from small to
large, it tilts in perspective and rotates, the picture is sometimes defocused or motion-blurred,
the light varies and the sensor adds noise. The clip is encoded with libvpx VP8 in real-time mode at
a phone's WebRTC bitrate (1 Mbit/s at 640x480, 2.5 Mbit/s at 1280x720), decoded again, and every
decoded frame is given to each reader. A frame counts as read when the reader returns the code's
exact value; any other value is a false read.

    .venv/bin/python bench/codes_read.py [--frames 150] [--seed 7]
"""

from __future__ import annotations

import argparse
import fractions
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np
import zxingcpp

from rtc_server.analysis.codes import HybridReader, ZxingReader

FPS = 30
PROFILES = ((640, 480, 1_000_000), (1280, 720, 2_500_000))
CODES = (
    ("qr_code", "INSP-2026-SKU-000123", zxingcpp.BarcodeFormat.QRCode, (0.07, 0.30)),
    ("ean_13", "4006381333931", zxingcpp.BarcodeFormat.EAN13, (0.14, 0.45)),
    ("code_128", "PAL-0042-7731", zxingcpp.BarcodeFormat.Code128, (0.16, 0.50)),
)


def code_image(value: str, fmt: zxingcpp.BarcodeFormat) -> np.ndarray:
    """The code at one pixel per module, with quiet zones, on a white label with a margin."""
    img = np.array(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(value, fmt), scale=1))
    if img.shape[0] < 8:  # a 1D code is one row high at scale 1: give it a printed height
        img = np.repeat(img[:1], max(12, img.shape[1] // 4), axis=0)
    pad = max(2, img.shape[1] // 12)
    return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A wider-than-frame colour scene: smooth blotches, shelves and a light gradient."""
    bw, bh = width * 2, height * 2
    low = rng.uniform(50, 190, (bh // 32, bw // 32, 3)).astype(np.float32)
    img = cv2.resize(low, (bw, bh), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 5, (bh // 4, bw // 4, 3)).astype(np.float32)
    img += cv2.resize(fine, (bw, bh), interpolation=cv2.INTER_LINEAR)
    for _ in range(12):
        y = int(rng.integers(0, bh))
        cv2.rectangle(img, (0, y), (bw, y + int(rng.integers(4, 20))), tuple(rng.uniform(20, 120, 3)), -1)
    for _ in range(25):
        x, y = int(rng.integers(0, bw)), int(rng.integers(0, bh))
        w, h = int(rng.integers(20, 200)), int(rng.integers(20, 200))
        cv2.rectangle(img, (x, y), (x + w, y + h), tuple(rng.uniform(30, 230, 3)), -1)
    img *= np.linspace(0.75, 1.1, bw, dtype=np.float32)[None, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return k / max(k.sum(), 1e-6)


def render_clip(
    code: np.ndarray, width: int, height: int, frames: int, size_range: tuple[float, float], seed: int
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    bg = background(width, height, rng)
    label = cv2.cvtColor(code, cv2.COLOR_GRAY2BGR)
    # Paper is not pure white and print not pure black.
    label = (label.astype(np.float32) * (200 / 255) + 30).astype(np.uint8)
    lh, lw = label.shape[:2]
    src = np.float32([[0, 0], [lw, 0], [lw, lh], [0, lh]])
    out = []
    phase = rng.uniform(0, 2 * math.pi, 6)
    for i in range(frames):
        t = i / frames
        ts = i / FPS  # seconds: hand motion has the same speed whatever the clip length
        # Size sweeps small -> large -> small once per clip, so every clip covers the same range.
        s = size_range[0] + (size_range[1] - size_range[0]) * (0.5 - 0.5 * math.cos(2 * math.pi * t))
        cw = s * width
        ch = cw * lh / lw
        cx = width * (0.5 + 0.22 * math.sin(2 * math.pi * 0.25 * ts + phase[0]))
        cy = height * (0.5 + 0.18 * math.sin(2 * math.pi * 0.2 * ts + phase[1]))
        rot = math.radians(20 * math.sin(2 * math.pi * 0.15 * ts + phase[2]))
        tilt = 0.18 * math.sin(2 * math.pi * 0.2 * ts + phase[3])
        corners = np.float32([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
        # Perspective: one side of the label nearer the lens than the other.
        corners[[1, 2], 1] *= 1 + tilt
        corners[[0, 3], 1] *= 1 - tilt
        rmat = np.float32([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
        dst = corners @ rmat.T + np.float32([cx, cy])
        homography = cv2.getPerspectiveTransform(src, dst)
        ox = int((bg.shape[1] - width) * (0.5 + 0.3 * math.sin(2 * math.pi * 0.05 * ts + phase[4])))
        oy = int((bg.shape[0] - height) * (0.5 + 0.3 * math.sin(2 * math.pi * 0.07 * ts + phase[5])))
        frame = bg[oy : oy + height, ox : ox + width].copy()
        warped = cv2.warpPerspective(label, homography, (width, height), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.full((lh, lw), 255, np.uint8), homography, (width, height))
        np.copyto(frame, warped, where=mask[..., None] > 127)
        roll = rng.random()
        if roll < 0.15:
            sigma = rng.uniform(0.6, 1.8) * width / 640
            frame = cv2.GaussianBlur(frame, (0, 0), sigma)
        elif roll < 0.3:
            length = int(rng.integers(3, 10) * width / 640) | 1
            frame = cv2.filter2D(frame, -1, motion_kernel(length, rng.uniform(0, math.pi)))
        gain = 0.75 + 0.3 * math.sin(2 * math.pi * 0.1 * ts)
        noisy = frame.astype(np.float32) * gain + rng.normal(0, 3.0, frame.shape).astype(np.float32)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def vp8_round_trip(frames: list[np.ndarray], bitrate: int) -> list[np.ndarray]:
    """Encode like a phone's WebRTC VP8 (real-time, no look-ahead, rare keyframes), decode, gray."""
    height, width = frames[0].shape[:2]
    enc: Any = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.framerate = fractions.Fraction(FPS, 1)
    enc.bit_rate = bitrate
    enc.gop_size = 3000
    enc.options = {"deadline": "realtime", "lag-in-frames": "0", "cpu-used": "6", "static-thresh": "0"}
    dec: Any = av.CodecContext.create("vp8", "r")
    gray: list[np.ndarray] = []
    packets = []
    for i, img in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        vf.pts = i
        packets.extend(enc.encode(vf))
    packets.extend(enc.encode(None))
    total_bytes = 0
    for p in packets:
        total_bytes += p.size
        for f in dec.decode(av.Packet(bytes(p))):
            gray.append(f.to_ndarray(format="gray"))
    kbps = total_bytes * 8 * FPS / len(frames) / 1000
    print(f"    encoded {len(frames)} frames at {width}x{height}: {kbps:.0f} kbit/s")
    return gray


@dataclass
class Tally:
    read: int = 0
    false: int = 0
    seconds: float = 0.0
    frames: int = 0


def zxing_reader(gray: np.ndarray) -> list[str]:
    fmts = [zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.EAN13, zxingcpp.BarcodeFormat.Code128]
    return [r.text for r in zxingcpp.read_barcodes(gray, formats=fmts) if r.valid]


_qr = cv2.QRCodeDetector()
_qr_aruco = cv2.QRCodeDetectorAruco()
_bar = cv2.barcode.BarcodeDetector()


def opencv_qr(gray: np.ndarray) -> list[str]:
    text, _, _ = _qr.detectAndDecode(gray)
    return [text] if text else []


def opencv_qr_aruco(gray: np.ndarray) -> list[str]:
    ok, texts, _, _ = _qr_aruco.detectAndDecodeMulti(gray)
    return [t for t in texts if t] if ok else []


def opencv_barcode(gray: np.ndarray) -> list[str]:
    ok, texts, _, _ = _bar.detectAndDecodeWithType(gray)
    return [t for t in texts if t] if ok else []


def opencv_all(gray: np.ndarray) -> list[str]:
    """What an OpenCV-only analyser would run on every frame: QR (ArUco finder) and barcodes."""
    return opencv_qr_aruco(gray) + opencv_barcode(gray)


_analyser_reader = ZxingReader(("qr_code", "ean_13", "code_128"))


def analyser_reader(gray: np.ndarray) -> list[str]:
    """The analyser's own reader: zxing-cpp, enlarged 1.5x below 1000 pixels wide."""
    return [d.value for d in _analyser_reader.read(gray)]


_hybrid_reader = HybridReader(("qr_code", "ean_13", "code_128"))


def hybrid_reader(gray: np.ndarray) -> list[str]:
    """The analyser's zxing reader, plus OpenCV on EAN/UPC where zxing read no 1D code."""
    return [d.value for d in _hybrid_reader.read(gray)]


READERS: dict[str, Callable[[np.ndarray], list[str]]] = {
    "analyser (zxing, 1.5x <1000px)": analyser_reader,
    "hybrid (analyser + opencv 1D)": hybrid_reader,
    "zxing-cpp": zxing_reader,
    "opencv QR+barcode": opencv_all,
    "opencv QRCodeDetector": opencv_qr,
    "opencv QRCodeDetectorAruco": opencv_qr_aruco,
    "opencv BarcodeDetector": opencv_barcode,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=150, help="frames per clip (30 fps)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    results: dict[tuple[str, str, str], Tally] = {}
    for width, height, bitrate in PROFILES:
        res = f"{width}x{height}"
        for name, value, fmt, size_range in CODES:
            print(f"{res} {name}: rendering, encoding at {bitrate / 1e6:g} Mbit/s")
            shown = render_clip(code_image(value, fmt), width, height, args.frames, size_range, args.seed)
            decoded = vp8_round_trip(shown, bitrate)
            for reader_name, reader in READERS.items():
                tally = results.setdefault((res, name, reader_name), Tally())
                for gray in decoded:
                    t0 = time.perf_counter()
                    texts = reader(gray)
                    tally.seconds += time.perf_counter() - t0
                    tally.frames += 1
                    tally.read += value in texts
                    tally.false += sum(1 for t in texts if t != value)
    print()
    print(f"{'resolution':<11}{'code':<10}{'reader':<32}{'read/100 frames':>16}{'false':>7}{'ms/frame':>10}")
    for (res, name, reader_name), t in results.items():
        per100 = 100 * t.read / t.frames
        ms = 1000 * t.seconds / t.frames
        print(f"{res:<11}{name:<10}{reader_name:<32}{per100:>16.1f}{t.false:>7}{ms:>10.1f}")


if __name__ == "__main__":
    main()
