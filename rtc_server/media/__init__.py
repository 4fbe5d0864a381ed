"""The SFU media engine: the only package that touches aiortc. Entry point: MediaService."""

from .errors import (
    AtCapacity,
    IceRestartUnsupported,
    InvalidSdp,
    MediaError,
    SessionEnded,
    StaleETag,
    UnknownResource,
    UnsupportedAiortc,
)
from .forwarding import EncodedFrameTap
from .frames import EncodedFrame
from .service import MediaService, PeerEvent, PeerHandle, PeerInfo
from .settings import IceServer, MediaSettings
from .stats import MediaStats

__all__ = [
    "AtCapacity",
    "EncodedFrame",
    "EncodedFrameTap",
    "IceRestartUnsupported",
    "IceServer",
    "InvalidSdp",
    "MediaError",
    "MediaService",
    "MediaSettings",
    "MediaStats",
    "PeerEvent",
    "PeerHandle",
    "PeerInfo",
    "SessionEnded",
    "StaleETag",
    "UnknownResource",
    "UnsupportedAiortc",
]
