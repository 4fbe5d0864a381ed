"""Tamper-evident recording: remuxed segments, hash chain, signed manifests, verification.

Stands alone (no rtc_server, signing or aiortc imports) so a verifier needs only this package.
"""

from .errors import (
    ManifestError,
    NotARecordingError,
    RecorderClosedError,
    RecordingError,
    RecordingWriteError,
    StorageFullError,
    UnsupportedCodecError,
)
from .evidence import VERIFY_TXT, recording_entries, stream_evidence_zip, write_evidence_zip
from .manifest import ManifestSigner, Timestamper, key_fingerprint
from .model import EncodedFrame, RecorderConfig, SegmentEntry, TrackInfo
from .recover import RecoveryReport, recover
from .segment_writer import SegmentWriter
from .track_recorder import (
    FramesDropped,
    RecorderEvent,
    RecordingClosed,
    RecordingFailed,
    SegmentSealed,
    TrackRecorder,
)
from .verify import TrackVerification, VerificationResult, load_trust, main, verify_recording

__all__ = [
    "VERIFY_TXT",
    "EncodedFrame",
    "FramesDropped",
    "ManifestError",
    "ManifestSigner",
    "NotARecordingError",
    "RecorderClosedError",
    "RecorderConfig",
    "RecorderEvent",
    "RecordingClosed",
    "RecordingError",
    "RecordingFailed",
    "RecordingWriteError",
    "RecoveryReport",
    "SegmentEntry",
    "SegmentSealed",
    "SegmentWriter",
    "StorageFullError",
    "Timestamper",
    "TrackInfo",
    "TrackRecorder",
    "TrackVerification",
    "UnsupportedCodecError",
    "VerificationResult",
    "key_fingerprint",
    "load_trust",
    "main",
    "recording_entries",
    "recover",
    "stream_evidence_zip",
    "verify_recording",
    "write_evidence_zip",
]
