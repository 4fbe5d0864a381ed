"""Code readers on decoded VP8 pictures: values, formats, where in the frame."""

from __future__ import annotations

import numpy as np
import pytest

from rtc_server.analysis import BBox, CodeReader, OpenCvReader, ZxingReader
from rtc_server.analysis.codes import HybridReader, make_reader
from rtc_server.analysis.decoder import FrameDecoder, luma

from .video import code_image, encode_clip, place, scene

W, H = 1280, 720
CODES = [("qr_code", "INSP-42", 8, (100, 100)), ("ean_13", "4006381333931", 4, (500, 80))]
CODES.append(("code_128", "PAL-0042-7731", 3, (400, 450)))


def decoded(bgr: np.ndarray) -> np.ndarray:
    decoder = FrameDecoder("VP8")
    pictures = [p for data in encode_clip([bgr] * 2, bitrate=2_500_000) for p in decoder.decode(data, True)]
    return np.ascontiguousarray(luma(pictures[-1]))


@pytest.fixture(scope="module")
def frame() -> tuple[np.ndarray, dict[str, tuple[float, float, float, float]]]:
    img = scene(W, H)
    boxes = {value: place(img, code_image(value, fmt, px), x, y) for fmt, value, px, (x, y) in CODES}
    return decoded(img), boxes


def inside(b: BBox, box: tuple[float, float, float, float]) -> bool:
    """The symbol (without its quiet zones) lies within the label that was drawn."""
    x, y, w, h = box
    return x - 0.01 <= b.x <= b.x + b.w <= x + w + 0.01 and y - 0.01 <= b.y <= b.y + b.h <= y + h + 0.01


@pytest.mark.parametrize("reader", [ZxingReader(), HybridReader()], ids=["zxing", "hybrid"])
def test_reads_qr_ean13_code128_with_positions(frame: tuple, reader: CodeReader) -> None:
    gray, boxes = frame
    found = {d.value: d for d in reader.read(gray)}
    assert {v: d.format for v, d in found.items()} == {
        "INSP-42": "qr_code",
        "4006381333931": "ean_13",
        "PAL-0042-7731": "code_128",
    }
    for value, detection in found.items():
        assert inside(detection.bbox, boxes[value]), value


def test_opencv_reads_qr_and_ean13_but_not_code128(frame: tuple) -> None:
    gray, _ = frame
    found = {d.value: d.format for d in OpenCvReader().read(gray)}
    assert found.get("INSP-42") == "qr_code"
    assert found.get("4006381333931") == "ean_13"
    assert "PAL-0042-7731" not in found  # the measured reason zxing-cpp is the default


def test_formats_filter_and_small_frames() -> None:
    img = scene(640, 480)
    place(img, code_image("ONLY-QR", "qr_code", 5), 40, 40)
    place(img, code_image("4006381333931", "ean_13", 2), 300, 300)
    gray = decoded(img)
    assert [d.value for d in ZxingReader(("qr_code",)).read(gray)] == ["ONLY-QR"]
    assert [d.value for d in ZxingReader(("ean_13",)).read(gray)] == ["4006381333931"]
    assert ZxingReader().read(np.full((480, 640), 128, np.uint8)) == []


def test_unknown_reader_or_format_is_refused() -> None:
    with pytest.raises(ValueError):
        ZxingReader(("qr",))
    with pytest.raises(ValueError):
        OpenCvReader(("barcode",))
    with pytest.raises(ValueError):
        make_reader("zbar", ())
