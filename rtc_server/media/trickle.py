"""Trickle ICE fragments (application/trickle-ice-sdpfrag, RFC 8840) as WHIP/WHEP PATCH bodies (RFC 9725)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

from .errors import InvalidSdp

MAX_FRAGMENT_BYTES = 32 * 1024
MAX_CANDIDATES = 64


@dataclass(slots=True)
class SdpFragment:
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    candidates: list[RTCIceCandidate] = field(default_factory=list)
    end_of_candidates: bool = False


def parse_sdpfrag(text: str) -> SdpFragment:
    """Parse a fragment; candidates get the mid (or m-line index) of the section they appear in."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAGMENT_BYTES:
        raise InvalidSdp("SDP fragment is too large")
    frag = SdpFragment()
    mline = -1
    mid: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise InvalidSdp(f"not an SDP line: {line[:40]!r}")
        if line.startswith("m="):
            mline += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[6:]
        elif line.startswith("a=ice-ufrag:"):
            frag.ice_ufrag = line[12:]
        elif line.startswith("a=ice-pwd:"):
            frag.ice_pwd = line[10:]
        elif line == "a=end-of-candidates":
            frag.end_of_candidates = True
        elif line.startswith("a=candidate:"):
            if len(frag.candidates) >= MAX_CANDIDATES:
                raise InvalidSdp("too many candidates in one fragment")
            try:
                candidate = candidate_from_sdp(line[12:])
            except Exception as exc:  # aiortc asserts, raises ValueError or IndexError on bad input
                raise InvalidSdp(f"malformed candidate: {line[:80]!r}") from exc
            if candidate.protocol.lower() not in ("udp", "tcp"):
                raise InvalidSdp(f"unknown candidate transport {candidate.protocol!r}")
            candidate.sdpMid = mid
            candidate.sdpMLineIndex = max(mline, 0)
            frag.candidates.append(candidate)
    return frag


def split_mdns_candidates(sdp: str) -> tuple[str, list[tuple[str | None, str]]]:
    """Take mDNS (`*.local`) host candidates out of an SDP: (SDP without them, [(mid, candidate)]).

    aiortc resolves them inside setRemoteDescription with a one-second timeout, which delays the
    answer (and the viewer's first picture) for names only resolvable on the client's own LAN; the
    browser's checks reach us anyway and are learnt as peer-reflexive candidates.
    """
    kept: list[str] = []
    found: list[tuple[int, str]] = []
    mids: dict[int, str] = {}
    section = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            section += 1
        elif line.startswith("a=mid:"):
            mids[section] = line[6:].strip()
        elif line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4].lower().endswith(".local"):
                found.append((section, line[2:]))
                continue
        kept.append(line)
    if not found:
        return sdp, []
    return "\r\n".join(kept) + "\r\n", [(mids.get(s), c) for s, c in found]
