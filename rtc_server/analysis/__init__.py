"""Video analysis for inspections: decoding of tapped encoded frames in a worker thread, QR and
barcode reading, checklist matching, quality hints and full-resolution stills.

Never imports aiohttp or aiortc: it takes encoded frames (rtc_server.media.EncodedFrame fits the
EncodedVideoFrame protocol) and reports through callbacks. Entry point: StreamAnalyser.
"""

from .analyser import StreamAnalyser
from .checklist import Checklist, ItemState, Sightings, normalise_code
from .codes import CodeReader, HybridReader, OpenCvReader, ZxingReader
from .decoder import EncodedVideoFrame
from .errors import AnalyserClosed, AnalysisError, NoPicture, UnsupportedCodec
from .events import HINT_MESSAGES, AnalysisEvent, BBox, CodeDetected, Detection, QualityHint
from .settings import AnalyserSettings, QualitySettings
from .stills import Still
from .worker import AnalyserStats

__all__ = [
    "HINT_MESSAGES",
    "AnalyserClosed",
    "AnalyserSettings",
    "AnalyserStats",
    "AnalysisError",
    "AnalysisEvent",
    "BBox",
    "Checklist",
    "CodeDetected",
    "CodeReader",
    "Detection",
    "EncodedVideoFrame",
    "HybridReader",
    "ItemState",
    "NoPicture",
    "OpenCvReader",
    "QualityHint",
    "QualitySettings",
    "Sightings",
    "Still",
    "StreamAnalyser",
    "UnsupportedCodec",
    "ZxingReader",
    "normalise_code",
]
