"""Stills: a decoded picture at the stream's full resolution, encoded as an image with its SHA-256.

PNG by default: lossless, so the still holds exactly the pixels the decoder produced from the
recorded bitstream (anyone can decode the recording at that media time and compare), at about
20-60 ms for 1280x720 in a worker thread; JPEG is the option when size matters more (about 2 ms).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import av
import cv2

from .settings import StillFormat

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


@dataclass(frozen=True, slots=True)
class Still:
    data: bytes
    content_type: str
    sha256: str
    width: int
    height: int
    media_time: float
    wallclock: float

    @property
    def extension(self) -> str:
        return ".png" if self.content_type == "image/png" else ".jpg"


def encode_still(
    frame: av.VideoFrame,
    media_time: float,
    wallclock: float,
    fmt: StillFormat = "png",
    jpeg_quality: int = 92,
) -> Still:
    """Blocking (tens of milliseconds): call from a worker thread."""
    bgr = frame.to_ndarray(format="bgr24")
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    elif fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    else:
        raise ValueError(f"unknown still format {fmt!r}")
    if not ok:
        raise RuntimeError("image encoder failed")
    data = buf.tobytes()
    return Still(
        data=data,
        content_type=CONTENT_TYPES[fmt],
        sha256=hashlib.sha256(data).hexdigest(),
        width=bgr.shape[1],
        height=bgr.shape[0],
        media_time=media_time,
        wallclock=wallclock,
    )
