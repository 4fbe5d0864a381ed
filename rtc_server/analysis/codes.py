"""Code readers: QR codes and 1D barcodes in a grayscale frame, with where they are.

Chosen by measurement (bench/codes_read.py, VP8 phone-like clips, codes read per 100 frames, two
seeds): zxing-cpp reads far more QR codes than OpenCV's QRCodeDetector (640x480: 62-64 vs 12-16;
1280x720: 57-75 vs 37-44) and is the only one that reads Code 128 (OpenCV's BarcodeDetector decodes
EAN/UPC only, and misreads Code 128 bars as UPC-A or EAN-8 numbers); OpenCV reads more blurred
EAN-13 at 1280x720 (64-71 vs 38-42). The default, HybridReader, runs zxing-cpp on every analysed
frame and asks OpenCV about EAN-13 only where zxing read no 1D code: 65-71 EAN-13 reads at
1280x720, no false read added in the bench.
Both release the GIL while they work, so a reader runs in the analyser's worker thread without
stalling the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import cv2
import numpy as np
import zxingcpp

from .events import BBox, Detection

# Event format names (snake_case, stable) and zxing-cpp's formats.
_ZXING_FORMATS: dict[str, zxingcpp.BarcodeFormat] = {
    "qr_code": zxingcpp.BarcodeFormat.QRCode,
    "micro_qr_code": zxingcpp.BarcodeFormat.MicroQRCode,
    "data_matrix": zxingcpp.BarcodeFormat.DataMatrix,
    "aztec": zxingcpp.BarcodeFormat.Aztec,
    "pdf417": zxingcpp.BarcodeFormat.PDF417,
    "ean_13": zxingcpp.BarcodeFormat.EAN13,
    "ean_8": zxingcpp.BarcodeFormat.EAN8,
    "upc_a": zxingcpp.BarcodeFormat.UPCA,
    "upc_e": zxingcpp.BarcodeFormat.UPCE,
    "code_128": zxingcpp.BarcodeFormat.Code128,
    "code_39": zxingcpp.BarcodeFormat.Code39,
    "code_93": zxingcpp.BarcodeFormat.Code93,
    "codabar": zxingcpp.BarcodeFormat.Codabar,
    "itf": zxingcpp.BarcodeFormat.ITF,
}
_FROM_ZXING = {fmt.name: name for name, fmt in _ZXING_FORMATS.items()}
_FROM_OPENCV = {"EAN_13": "ean_13", "EAN_8": "ean_8", "UPC_A": "upc_a", "UPC_E": "upc_e"}
KNOWN_FORMATS = frozenset(_ZXING_FORMATS)
_LINEAR = frozenset({"ean_13", "ean_8", "upc_a", "upc_e", "code_128", "code_39", "code_93", "codabar", "itf"})


class CodeReader(Protocol):
    """Reads every code in a grayscale frame (H x W uint8)."""

    def read(self, gray: np.ndarray) -> list[Detection]: ...


def _bbox(points: Iterable[tuple[float, float]], width: int, height: int) -> BBox:
    xs, ys = zip(*points, strict=True)
    x0, x1 = max(0.0, min(xs) / width), min(1.0, max(xs) / width)
    y0, y1 = max(0.0, min(ys) / height), min(1.0, max(ys) / height)
    return BBox(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def _check_formats(formats: Sequence[str]) -> None:
    unknown = set(formats) - KNOWN_FORMATS
    if unknown:
        raise ValueError(f"unknown code formats: {sorted(unknown)}")


class ZxingReader:
    """zxing-cpp: every format the inspection needs, rotated and inverted codes included.

    Frames narrower than `upscale_below` pixels are enlarged 1.5x first: at 640x480 a code's modules
    are often under two pixels wide after VP8, and zxing reads markedly more of them enlarged
    (bench/codes_read.py); 2x enlargement produced false EAN-13 reads in the same bench.
    """

    def __init__(self, formats: Sequence[str] = (), upscale_below: int = 1000) -> None:
        _check_formats(formats)
        self._upscale_below = upscale_below
        wanted = [_ZXING_FORMATS[f] for f in formats] or [zxingcpp.BarcodeFormat.AllReadable]
        self._formats = zxingcpp.BarcodeFormats(wanted)

    def read(self, gray: np.ndarray) -> list[Detection]:
        height, width = gray.shape[:2]
        scale = 1.0
        if width < self._upscale_below:
            scale = 1.5
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        found: list[Detection] = []
        for result in zxingcpp.read_barcodes(gray, formats=self._formats):
            if not result.valid or not result.text:
                continue
            p = result.position
            corners = [
                (c.x / scale, c.y / scale) for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)
            ]
            name = _FROM_ZXING.get(result.format.name, result.format.name.lower())
            found.append(Detection(result.text, name, _bbox(corners, width, height)))
        return found


class OpenCvReader:
    """OpenCV's QRCodeDetector (ArUco-based finder, reads several codes) and BarcodeDetector."""

    def __init__(self, formats: Sequence[str] = ()) -> None:
        _check_formats(formats)
        wanted = set(formats) or set(KNOWN_FORMATS)
        self._qr = cv2.QRCodeDetectorAruco() if "qr_code" in wanted else None
        linear = wanted & set(_FROM_OPENCV.values())
        self._linear = linear
        self._barcode = cv2.barcode.BarcodeDetector() if linear else None

    def read(self, gray: np.ndarray) -> list[Detection]:
        height, width = gray.shape[:2]
        found: list[Detection] = []
        if self._qr is not None:
            ok, texts, points, _ = self._qr.detectAndDecodeMulti(gray)
            if ok and points is not None:
                for text, quad in zip(texts, points, strict=False):
                    if text:
                        corners = [(float(x), float(y)) for x, y in quad]
                        found.append(Detection(text, "qr_code", _bbox(corners, width, height)))
        if self._barcode is not None:
            ok, texts, types, points = self._barcode.detectAndDecodeWithType(gray)
            if ok and points is not None:
                for text, kind, quad in zip(texts, types, points, strict=False):
                    name = _FROM_OPENCV.get(kind)
                    if text and name in self._linear:
                        corners = [(float(x), float(y)) for x, y in quad]
                        found.append(Detection(text, name, _bbox(corners, width, height)))
        return found


class HybridReader:
    """zxing-cpp for every format, and OpenCV's BarcodeDetector as a second opinion on EAN-13 in
    frames where zxing read no 1D code. OpenCV reads more blurred EAN-13 at 1280x720 in the bench,
    but reports Code 128 bars as UPC-A or EAN-8 numbers: only its EAN-13 results are taken."""

    def __init__(self, formats: Sequence[str] = (), upscale_below: int = 1000) -> None:
        self._zxing = ZxingReader(formats, upscale_below)
        wants_ean13 = not formats or "ean_13" in formats
        self._opencv = OpenCvReader(("ean_13",)) if wants_ean13 else None

    def read(self, gray: np.ndarray) -> list[Detection]:
        found = self._zxing.read(gray)
        if self._opencv is not None and not any(d.format in _LINEAR for d in found):
            found += self._opencv.read(gray)
        return found


def make_reader(kind: str, formats: Sequence[str]) -> CodeReader:
    if kind == "zxing":
        return ZxingReader(formats)
    if kind == "hybrid":
        return HybridReader(formats)
    if kind == "opencv":
        return OpenCvReader(formats)
    raise ValueError(f"unknown reader {kind!r}")
