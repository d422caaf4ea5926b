"""The kiosk's WebRTC peer for one friend, on aiortc.

The browser offers; the kiosk answers with every candidate already in the
answer (aiortc gathers during setLocalDescription and does not trickle). No
STUN server is configured: the call runs on the store network, and offline an
aiortc STUN lookup only adds a long wait.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from call.media import FriendVideo, LatestFrame, MirrorTrack, drain_audio

log = logging.getLogger(__name__)


class OfferError(Exception):
    """The browser's offer cannot be answered (malformed SDP, no video ...)."""


def set_bitrate_cap(max_kbps: int) -> None:
    """aiortc adapts its encoders' bitrate to the receiver's REMB feedback but
    clamps it to module constants; raise (or lower) that cap."""
    from aiortc.codecs import h264, vpx
    vpx.MAX_BITRATE = h264.MAX_BITRATE = max_kbps * 1000
    vpx.DEFAULT_BITRATE = min(vpx.DEFAULT_BITRATE, max_kbps * 1000)


class Peer:
    def __init__(self, *, slot: LatestFrame, width: int, height: int, fps: int, codecs: list[str],
                 timecode: bool, friend_video: FriendVideo, audio_output: str):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = MirrorTrack(slot, width, height, fps, timecode)
        self.codecs = [c.upper() for c in codecs]
        self.friend_video = friend_video
        self.audio_output = audio_output
        self.codec = ""
        self.state = "new"
        self.on_failed: Callable[[str], None] | None = None
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_track(self, track) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self.friend_video.drain(track)))
        elif track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(drain_audio(track, self.audio_output)))

    async def _on_state(self) -> None:
        self.state = self.pc.connectionState
        log.info("call: peer connection %s", self.state)
        if self.state == "failed" and not self._closed and self.on_failed:
            self.on_failed("connection failed")

    async def answer(self, offer_sdp: str) -> str:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as e:  # aiortc raises many kinds on malformed SDP
            raise OfferError(f"cannot read the offer: {e.__class__.__name__}: {e}") from None
        video = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        if not video:
            raise OfferError("the offer has no video")
        self.pc.addTrack(self.track)
        prefs = []
        caps = RTCRtpSender.getCapabilities("video").codecs
        for name in self.codecs:
            prefs += [c for c in caps if c.mimeType.upper() == f"VIDEO/{name}"]
        prefs += [c for c in caps if c.mimeType.upper() == "VIDEO/RTX"]
        if prefs:
            video[0].setCodecPreferences(prefs)
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as e:
            raise OfferError(f"cannot answer the offer: {e.__class__.__name__}: {e}") from None
        self.codec = _first_video_codec(self.pc.localDescription.sdp)
        return self.pc.localDescription.sdp

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        try:
            cand = candidate_from_sdp(candidate)
        except Exception:
            log.info("call: ignoring an unreadable ICE candidate")
            return
        cand.sdpMid, cand.sdpMLineIndex = sdp_mid, sdp_mline_index
        try:
            await self.pc.addIceCandidate(cand)
        except Exception as e:
            log.info("call: ignoring ICE candidate (%s)", e)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.track.stop()
        for t in self._tasks:
            t.cancel()
        await self.pc.close()
        self.state = "closed"


def _first_video_codec(sdp: str) -> str:
    in_video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
            pts = line.split()[3:] if in_video else []
            first = pts[0] if pts else None
        elif in_video and first and line.startswith(f"a=rtpmap:{first} "):
            return line.split()[1].split("/")[0]
    return ""
