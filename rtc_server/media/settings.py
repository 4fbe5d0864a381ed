"""Typed configuration of the media engine."""

from __future__ import annotations

from dataclasses import dataclass

from .redundancy import MAX_LOSS

_KNOWN_VIDEO_CODECS = ("VP8", "H264")


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server, as in RTCIceServer."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    @classmethod
    def from_mapping(cls, raw: dict[str, object]) -> IceServer:
        """Build from the config shape `{urls, username?, credential?}`; unknown keys are refused."""
        unknown = set(raw) - {"urls", "username", "credential"}
        if unknown:
            raise ValueError(f"unknown ICE server keys: {sorted(unknown)}")
        urls = raw.get("urls")
        if isinstance(urls, str):
            url_list: tuple[str, ...] = (urls,)
        elif isinstance(urls, list | tuple) and urls and all(isinstance(u, str) for u in urls):
            url_list = tuple(str(u) for u in urls)
        else:
            raise ValueError("ICE server needs 'urls': a string or a non-empty list of strings")
        for url in url_list:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"ICE server url must be stun:, stuns:, turn: or turns: ({url!r})")
        username = raw.get("username")
        credential = raw.get("credential")
        if username is not None and not isinstance(username, str):
            raise ValueError("ICE server 'username' must be a string")
        if credential is not None and not isinstance(credential, str):
            raise ValueError("ICE server 'credential' must be a string")
        return cls(urls=url_list, username=username, credential=credential)


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Everything the media engine is told from outside.

    ice_servers empty means host candidates only: the server never contacts a public STUN server unasked.
    """

    ice_servers: tuple[IceServer, ...] = ()
    max_peers: int = 200
    # A publisher whose RTP stops for this long is closed (and reported as dead).
    liveness_timeout_s: float = 5.0
    # A peer that has not connected (ICE + DTLS) this long after its offer is closed.
    connect_timeout_s: float = 30.0
    watchdog_interval_s: float = 1.0
    # At most one keyframe request per publisher video track per interval.
    keyframe_min_interval_s: float = 0.5
    # Preference order of video codecs offered to publishers and viewers.
    video_codecs: tuple[str, ...] = ("VP8", "H264")
    # Offer browser publishers RED/ULPFEC with VP8 (see fec.py): a packet lost on the uplink is rebuilt
    # from parity instead of waiting a round trip. In bench/ (Chromium, both links impaired) it raised
    # viewer frame rates (4G 17 -> 24 fps, 3G 13.5 -> 17 fps) and removed most gaps over 500 ms.
    publisher_fec: bool = True
    # Answer browser publishers' transport-cc (see twcc.py): their own bandwidth estimator then runs
    # on per-packet arrival times instead of being capped by aiortc's REMB. Off by default: the
    # higher bitrate it reaches (1.45 vs 0.9-1.1 Mbit/s on 4G) cost 50-80 ms of p95 on 4G and 3G.
    publisher_transport_cc: bool = False
    # Send each video packet twice to a viewer whose link loses at least this fraction at random,
    # never while the link queues or when the loss stays with the copies (a full link; see
    # redundancy.py). None: never. Repairs the viewer's link without a round trip, at double its
    # video bitrate. In bench/ (Chromium, poor 3G on both links) it took the p95 from 619-644 to
    # 418-425 ms and the frame rate from 19 to 20-24 fps. Copies go out where the server sends on its
    # own UDP socket: not over a TURN allocation of the server's.
    viewer_redundancy_loss: float | None = 0.02
    # Bounded per-viewer queues, in RTP packets: a viewer whose sender stops draining (a starved loop,
    # a stuck transport) loses what is stale, video restarting on a keyframe, and never adds delay.
    viewer_video_queue: int = 1024
    viewer_max_queue_delay_s: float = 0.5
    viewer_audio_queue: int = 64
    # (min, max) playout delay in ms asked of viewers that support the playout-delay RTP header
    # extension (browsers): caps the video a viewer holds in its jitter buffer. None: do not ask.
    # (0, 0) makes Chromium render each frame as soon as it is decoded, which took 70 ms off the 3G
    # median in bench/ with no added freezes: an inspection is a conversation, so latency wins.
    viewer_playout_delay_ms: tuple[int, int] | None = (0, 0)
    # Bounded per-tap queues (recorder, analyser).
    tap_queue: int = 120
    # How long an incomplete video frame may block later frames waiting for a retransmission
    # before the stream is resynchronised on a keyframe: adapted to the publisher's round trip as
    # measured by NACK -> retransmission (room for one retry), within these bounds.
    reorder_wait_s: float = 0.25
    reorder_wait_max_s: float = 1.2
    # While a frame waits for a lost packet, NACK it again this often (aiortc asks only once).
    nack_retry_interval_s: float = 0.06
    # Relay the lowest viewer bandwidth estimate (REMB) to the publisher, never asking for less than
    # this (the recording shares the publisher's stream). None: do not relay.
    viewer_bitrate_floor_bps: int | None = 300_000
    # aioice never offers 127.0.0.1; a host candidate on loopback lets peers on the same machine
    # connect when no other interface exists (tests, development). Harmless for remote peers.
    loopback_candidates: bool = True

    def __post_init__(self) -> None:
        if self.max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        for name in (
            "liveness_timeout_s",
            "connect_timeout_s",
            "watchdog_interval_s",
            "reorder_wait_s",
            "reorder_wait_max_s",
            "nack_retry_interval_s",
            "viewer_max_queue_delay_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.reorder_wait_max_s < self.reorder_wait_s:
            raise ValueError("reorder_wait_max_s must not be below reorder_wait_s")
        if self.keyframe_min_interval_s < 0:
            raise ValueError("keyframe_min_interval_s must not be negative")
        if self.viewer_bitrate_floor_bps is not None and self.viewer_bitrate_floor_bps <= 0:
            raise ValueError("viewer_bitrate_floor_bps must be positive (or None)")
        if self.viewer_redundancy_loss is not None and not 0 < self.viewer_redundancy_loss < MAX_LOSS:
            raise ValueError(f"viewer_redundancy_loss must be a loss fraction in (0, {MAX_LOSS}) (or None)")
        delay = self.viewer_playout_delay_ms
        if delay is not None and not (len(delay) == 2 and 0 <= delay[0] <= delay[1] <= 40_950):
            raise ValueError("viewer_playout_delay_ms must be (min, max) with 0 <= min <= max <= 40950")
        if min(self.viewer_video_queue, self.viewer_audio_queue, self.tap_queue) < 1:
            raise ValueError("queue sizes must be at least 1")
        if not self.video_codecs or any(c not in _KNOWN_VIDEO_CODECS for c in self.video_codecs):
            raise ValueError(f"video_codecs must be a non-empty subset of {_KNOWN_VIDEO_CODECS}")
        for server in self.ice_servers:
            if not isinstance(server, IceServer):
                raise ValueError("ice_servers must hold IceServer values (see IceServer.from_mapping)")
