"""The analyser's error hierarchy: the HTTP layer maps each class to one status."""

from __future__ import annotations


class AnalysisError(Exception):
    """Base of every error the analyser raises on purpose."""

    code = "analysis_error"


class UnsupportedCodec(AnalysisError):
    """The stream's codec cannot be decoded here (HTTP 409: nothing the client can fix by retrying)."""

    code = "unsupported_codec"


class NoPicture(AnalysisError):
    """No frame has been decoded yet, or none arrived in time for a still (HTTP 409)."""

    code = "no_picture"


class AnalyserClosed(AnalysisError):
    """The analyser was closed: the stream or session is over (HTTP 409)."""

    code = "analyser_closed"
