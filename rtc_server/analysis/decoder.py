"""Decoding of encoded video frames (VP8, H.264 in Annex B) with PyAV, for analysis only.

Every frame of a stream must pass through the decoder (inter frames reference earlier ones), so after
a gap the decoder waits for the next keyframe rather than paint garbage. Runs in the analyser's
worker thread; PyAV releases the GIL while libavcodec decodes.
"""

from __future__ import annotations

from typing import Any, Protocol

import av
import numpy as np

from .errors import UnsupportedCodec

_CODECS = {"vp8": "vp8", "h264": "h264"}


class EncodedVideoFrame(Protocol):
    """What the analyser reads of an encoded frame (rtc_server.media.EncodedFrame fits)."""

    @property
    def data(self) -> bytes: ...
    @property
    def rtp_timestamp(self) -> int: ...
    @property
    def keyframe(self) -> bool: ...
    @property
    def clock_rate(self) -> int: ...
    @property
    def wallclock(self) -> float: ...


def codec_name(codec: str) -> str:
    name = _CODECS.get(codec.lower())
    if name is None:
        raise UnsupportedCodec(f"cannot analyse codec {codec!r} (VP8 or H264)")
    return name


class FrameDecoder:
    """One stream's decoder; `need_keyframe` is True until a keyframe has been decoded after a start
    or a gap, and while it is, non-keyframes are skipped."""

    def __init__(self, codec: str) -> None:
        self.codec = codec_name(codec)
        self._ctx: Any = av.CodecContext.create(self.codec, "r")
        self.need_keyframe = True
        self.errors = 0

    def gap(self) -> None:
        """Frames were lost before the next one: decode nothing until a keyframe."""
        self.need_keyframe = True

    def decode(self, data: bytes, keyframe: bool) -> list[av.VideoFrame]:
        """Decoded pictures for this frame (usually one); [] if skipped or undecodable."""
        if self.need_keyframe and not keyframe:
            return []
        try:
            frames: list[av.VideoFrame] = self._ctx.decode(av.Packet(data))
        except av.FFmpegError:
            self.errors += 1
            # A fresh context: libavcodec may keep broken references after bad input.
            self._ctx = av.CodecContext.create(self.codec, "r")
            self.need_keyframe = True
            return []
        if keyframe and frames:
            self.need_keyframe = False
        return frames


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane as a 2-D uint8 view (no copy) for planar YUV; other formats are converted.
    Values are the codec's own (limited range for WebRTC video: black 16, white 235)."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12"):
        plane = frame.planes[0]
        return np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[
            :, : plane.width
        ]
    return frame.to_ndarray(format="gray")
