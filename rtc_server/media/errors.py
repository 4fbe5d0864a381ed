"""The media engine's error hierarchy: the HTTP layer maps each class to one status."""

from __future__ import annotations


class MediaError(Exception):
    """Base of every error the media engine raises on purpose."""

    code = "media_error"


class InvalidSdp(MediaError):
    """The offer or SDP fragment cannot be parsed or does not fit the call (HTTP 400)."""

    code = "invalid_sdp"


class UnknownResource(MediaError):
    """No peer with this resource id (HTTP 404)."""

    code = "unknown_resource"


class StaleETag(MediaError):
    """If-Match does not name the resource's current ICE session (HTTP 412)."""

    code = "stale_etag"


class IceRestartUnsupported(MediaError):
    """A trickle PATCH carried new ICE credentials: aiortc cannot restart ICE (HTTP 422)."""

    code = "ice_restart_unsupported"


class AtCapacity(MediaError):
    """max_peers is reached (HTTP 503)."""

    code = "at_capacity"


class SessionEnded(MediaError):
    """The session was ended: no more media (HTTP 409)."""

    code = "session_ended"


class UnsupportedAiortc(MediaError):
    """The installed aiortc is not the version the encoded-frame tap was written against."""

    code = "unsupported_aiortc"
