"""SDP fragment parsing (RFC 8840) and mDNS candidate handling, on text alone."""

from __future__ import annotations

import pytest

from rtc_server.media import InvalidSdp
from rtc_server.media.trickle import parse_sdpfrag, split_mdns_candidates


def test_fragment_candidates_carry_their_section() -> None:
    frag = parse_sdpfrag(
        "a=ice-ufrag:abcd\r\na=ice-pwd:secretsecret\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        "a=candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active\r\n"
        "a=end-of-candidates\r\n"
    )
    assert (frag.ice_ufrag, frag.ice_pwd, frag.end_of_candidates) == ("abcd", "secretsecret", True)
    assert [(c.sdpMid, c.sdpMLineIndex, c.protocol) for c in frag.candidates] == [
        ("0", 0, "udp"),
        ("1", 1, "tcp"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "a=candidate:1 1 udp\r\n",
        "a=candidate:1 1 sctp 1 192.0.2.1 5000 typ host\r\n",
        "a=candidate:x\r\n" * 3,
        "".join(f"a=candidate:{i} 1 udp 1 192.0.2.1 {5000 + i} typ host\r\n" for i in range(65)),
        "a=" + "x" * 40_000,
    ],
)
def test_bad_fragments_are_invalid_sdp(bad: str) -> None:
    with pytest.raises(InvalidSdp):
        parse_sdpfrag(bad)


def test_mdns_candidates_are_set_aside_with_their_mid() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        "a=candidate:1 1 udp 2113937151 0b6f6b2c-1111-4c9b-9b2a-2d5f0f0c1d1e.local 50000 typ host\r\n"
        "a=candidate:2 1 udp 2113937151 192.0.2.9 50001 typ host\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        "a=candidate:3 1 udp 2113937151 A1B2.LOCAL 50002 typ host\r\n"
    )
    kept, mdns = split_mdns_candidates(sdp)
    assert ".local" not in kept.lower() and "192.0.2.9" in kept and "a=mid:1" in kept
    assert [(mid, line.split()[4]) for mid, line in mdns] == [
        ("0", "0b6f6b2c-1111-4c9b-9b2a-2d5f0f0c1d1e.local"),
        ("1", "A1B2.LOCAL"),
    ]
    assert split_mdns_candidates("v=0\r\n") == ("v=0\r\n", [])
