"""One error hierarchy for the recordings domain."""

from __future__ import annotations


class RecordingError(Exception):
    """Base of every error raised by the recordings package."""


class StorageFullError(RecordingError):
    """The disk filled up (ENOSPC): the track stopped; sealed segments stay valid."""


class RecordingWriteError(RecordingError):
    """Writing a segment failed for another I/O reason; the track stopped."""


class RecorderClosedError(RecordingError):
    """A frame was submitted after the recorder was closed or stopped."""


class UnsupportedCodecError(RecordingError):
    """The codec is not one the recorder can remux."""


class ManifestError(RecordingError):
    """A manifest could not be built, signed or parsed."""


class NotARecordingError(RecordingError):
    """The path holds no recording manifest or journal at all."""
