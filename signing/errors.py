"""One error hierarchy for the signing domain, so the HTTP layer can map it in one place."""

from __future__ import annotations


class SigningError(Exception):
    """Base of every error raised by the ``signing`` package."""


class PkiError(SigningError):
    """The PKI material is missing, unreadable or inconsistent."""


class KeySourceError(PkiError):
    """A key could not be loaded or used (wrong passphrase, token not found, PIN refused...)."""


class TimestampError(SigningError):
    """The timestamp authority failed; signing stops rather than fall back to the local clock."""


class PdfInputError(SigningError):
    """The input is not a PDF this package can sign (unparsable, encrypted, unsupported structure)."""


class PdfSigningError(SigningError):
    """Producing a signature failed for a reason other than the TSA."""


class SigningConfigError(SigningError):
    """The signing configuration is invalid (unknown key, wrong type, missing secret)."""
