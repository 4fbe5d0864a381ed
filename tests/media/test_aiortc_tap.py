"""Pins of the aiortc 1.16 / aioice internals the tap relies on: an upgrade must fail here, loudly."""

from __future__ import annotations

import inspect

import aioice.ice
import aiortc.rtcdtlstransport
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import depayload
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcicetransport import RTCIceGatherer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from rtc_server.media import UnsupportedAiortc
from rtc_server.media.aiortc_tap import (
    _original_get_host_addresses,
    _RtpPacketWithRaw,
    check_aiortc_version,
    codec_preferences,
    ice_connection,
    loopback_candidates,
)
from tests.media.media_clients import h264_nals, video_clip


def test_version_gate() -> None:
    check_aiortc_version()
    check_aiortc_version("1.16.3")
    with pytest.raises(UnsupportedAiortc, match=r"1\.17\.0"):
        check_aiortc_version("1.17.0")
    with pytest.raises(UnsupportedAiortc):
        check_aiortc_version("2.0.0")


def test_receiver_feeds_depayloaded_packets_to_a_replaceable_jitter_buffer() -> None:
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "packet._data = depayload(codec, packet.payload)" in source
    assert "self.__jitter_buffer.add(packet)" in source
    assert "await self._send_rtcp_pli(packet.ssrc)" in source
    assert "self.__decoder_queue.put((codec, encoded_frame))" in source
    init = inspect.getsource(RTCRtpReceiver.__init__)
    assert "self.__jitter_buffer = JitterBuffer(" in init and "self.__kind = kind" in init
    assert "self.__nack_generator = NackGenerator()" in init
    assert inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters.keys() == {"self", "media_ssrc"}
    assert "await self._send_rtcp_nack(" in source


def test_fec_and_transport_cc_seams() -> None:
    # The raw datagram ULPFEC XORs over comes from the transport's module-level RtpPacket name.
    rtp_data = inspect.getsource(aiortc.rtcdtlstransport.RTCDtlsTransport._handle_rtp_data)
    assert "packet = RtpPacket.parse(data, self._rtp_header_extensions_map)" in rtp_data
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms)" in rtp_data
    assert aiortc.rtcdtlstransport.RtpPacket is _RtpPacketWithRaw
    # Rebuilt packets leave the NACK generator's set; feedback goes out with the receiver's SSRC.
    receive = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__nack_generator.add(packet)" in receive and "unwrap_rtx(" in receive
    assert "self.missing: set[int] = set()" in inspect.getsource(aiortc.rtcrtpreceiver.NackGenerator)
    assert "self.__rtcp_ssrc" in inspect.getsource(RTCRtpReceiver._send_rtcp_nack)
    assert "bytes(packet)" in inspect.getsource(RTCRtpReceiver._send_rtcp)
    # Answers take their codecs and extensions from the transceiver between the two descriptions.
    describe = inspect.getsource(aiortc.rtcpeerconnection.create_media_description_for_transceiver)
    assert (
        "codecs=transceiver._codecs" in describe
        and "headerExtensions=transceiver._headerExtensions" in describe
    )


def test_sender_send_loop_is_replaceable_and_exposes_keyframe_and_nack_hooks() -> None:
    send = inspect.getsource(RTCRtpSender.send)
    # Looked up on the instance, so hook_sender's per-sender _run_rtp takes its place.
    assert "asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))" in send
    assert "self.__mid = parameters.muxId" in send
    run = inspect.getsource(RTCRtpSender._run_rtp)
    # What forward_packets mirrors: history for NACKs, extensions, SR counters, the stop() events.
    for line in (
        "self.__rtp_started.set()",
        "self.__rtp_history[packet.sequence_number % RTP_HISTORY_SIZE] = (",
        "packet.extensions.abs_send_time = (",
        "packet.extensions.mid = self.__mid",
        "packet_bytes = packet.serialize(self.__rtp_header_extensions_map)",
        "await self.transport._send_rtp(packet_bytes)",
        "self.__ntp_timestamp = clock.current_ntp_time()",
        "self.__octet_count += len(payload)",
        "self.__packet_count += 1",
        "self.__rtp_exited.set()",
    ):
        assert line in run, line
    retransmit = inspect.getsource(RTCRtpSender._retransmit)
    assert "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)" in retransmit
    rtcp = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self._send_keyframe()" in rtcp and "await self._retransmit(seq)" in rtcp


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_pack_then_depayload_round_trips_a_frame(codec: str) -> None:
    frame = video_clip(codec).frames[0]
    encoder = Vp8Encoder() if codec == "VP8" else H264Encoder()
    packet = av.Packet(frame)
    packet.pts = 3000
    packet.time_base = __import__("fractions").Fraction(1, 90000)
    payloads, timestamp = encoder.pack(packet)
    assert timestamp == 3000 and len(payloads) > 1
    params = RTCRtpCodecParameters(mimeType=f"video/{codec}", clockRate=90000, payloadType=97)
    rebuilt = b"".join(depayload(params, p) for p in payloads)
    if codec == "VP8":
        assert rebuilt == frame
    else:
        assert h264_nals(rebuilt) == h264_nals(frame)


def test_opus_pack_is_identity() -> None:
    packet = av.Packet(b"\x78opus-frame")
    packet.pts = 960
    packet.time_base = __import__("fractions").Fraction(1, 48000)
    assert OpusEncoder().pack(packet) == ([b"\x78opus-frame"], 960)


def test_aiortc_defaults_to_google_stun_unless_given_an_explicit_list() -> None:
    assert RTCIceGatherer(iceServers=None)._connection.stun_server == ("stun.l.google.com", 19302)
    assert RTCIceGatherer(iceServers=[])._connection.stun_server is None


async def test_aioice_skips_loopback_unless_asked() -> None:
    gather = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "addresses = get_host_addresses(" in gather
    assert 'ip.ip != "127.0.0.1"' in inspect.getsource(_original_get_host_addresses)
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False), "only inside the context"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert "127.0.0.1" not in pc.localDescription.sdp
    finally:
        await pc.close()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        with loopback_candidates():
            await pc.setLocalDescription(await pc.createOffer())
        assert " 127.0.0.1 " in pc.localDescription.sdp
        hosts = {c.host for c in ice_connection(transceiver).local_candidates}
        assert "127.0.0.1" in hosts
    finally:
        await pc.close()


def test_h264_preference_is_constrained_baseline_packetization_mode_1() -> None:
    prefs = codec_preferences("video", ("H264",))
    h264 = [c for c in prefs if c.name == "H264"]
    assert len(h264) == 1
    assert h264[0].parameters["profile-level-id"] == "42e01f"
    assert h264[0].parameters["packetization-mode"] == "1"


def test_offered_codec_picks_by_preference_and_h264_profile() -> None:
    from rtc_server.media.aiortc_tap import offered_codec

    def h264(profile: str, mode: str) -> RTCRtpCodecParameters:
        params: dict[str, int | str | None] = {"profile-level-id": profile, "packetization-mode": mode}
        return RTCRtpCodecParameters(
            mimeType="video/H264", clockRate=90000, payloadType=102, parameters=params
        )

    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    assert offered_codec([vp8, h264("42e01f", "1")], ("H264", "VP8")) == "H264"
    assert offered_codec([vp8, h264("42e01f", "1")], ("VP8", "H264")) == "VP8"
    assert offered_codec([h264("42e01f", "0")], ("H264",)) is None, "packetization-mode 0 is not offered"
    assert offered_codec([h264("640c1f", "1")], ("H264",)) is None, "High profile is not constrained baseline"
    assert offered_codec([h264("42e01f", "1")], ("VP8",)) is None
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
    assert offered_codec([pcmu, opus], ("opus",)) == "opus"
    assert offered_codec([pcmu], ("opus",)) is None
