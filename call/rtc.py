"""The kiosk's WebRTC peer for one friend, on aiortc.

The browser offers; the kiosk answers with every candidate already in the
answer (aiortc gathers during setLocalDescription and does not trickle). No
STUN server is configured: the call runs on the store network, and offline an
aiortc STUN lookup only adds a long wait. Host candidates come only from the
addresses `ice_addresses` picks (call.ice_interfaces, else the interface that
carries call.host), never from every interface of the machine.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import socket
from typing import Callable, Iterable

import aioice.ice
import ifaddr
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from call.media import FriendVideo, LatestFrame, MirrorTrack, drain_audio

log = logging.getLogger(__name__)


class OfferError(Exception):
    """The browser's offer cannot be answered (malformed SDP, no video ...)."""


# --- which local addresses ICE may offer ---------------------------------------
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def _norm(address: str) -> str:
    """One spelling per address (ValueError if it is not one)."""
    return ipaddress.ip_address(address.split("%", 1)[0]).compressed


def _adapter_addresses(adapter) -> list[str]:
    # ifaddr gives IPv4 as a str and IPv6 as (address, flowinfo, scope_id)
    return [_norm(ip.ip if isinstance(ip.ip, str) else ip.ip[0]) for ip in adapter.ips]


def _resolve(host: str) -> set[str]:
    try:
        return {_norm(host)}
    except ValueError:
        pass
    try:
        return {_norm(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)}
    except (OSError, ValueError) as e:
        log.warning("call: cannot resolve call.host %r for ICE (%s)", host, e)
        return set()


def ice_addresses(host: str, interfaces: str = "", adapters: Iterable | None = None,
                  resolve: Callable[[str], set[str]] = _resolve) -> list[str]:
    """The local addresses the call's ICE may offer host candidates on.

    `interfaces` (call.ice_interfaces) lists interface names and/or addresses.
    Empty: every address of the interface(s) that carry what `host`
    (call.host) resolves to, or every non-loopback address when `host` is a
    wildcard. So with call.host = 127.0.0.1 the answer is lo's addresses: aioice
    itself never offers 127.0.0.1 (or ::1), and a test namespace puts 127.0.0.2
    on lo for that. `adapters` (ifaddr's, read now when None) is for tests."""
    adapters = list(ifaddr.get_adapters() if adapters is None else adapters)
    chosen: list[str] = []
    items = [x.strip() for x in interfaces.split(",") if x.strip()]
    if items:
        by_name = {n: a for a in adapters for n in (a.name, a.nice_name)}
        for item in items:
            try:
                chosen.append(_norm(item))
                continue
            except ValueError:
                pass
            if item in by_name:
                chosen += _adapter_addresses(by_name[item])
            else:
                log.warning("call: call.ice_interfaces names %r, which is no interface here", item)
    elif host.strip("[]") in WILDCARD_HOSTS:
        chosen = [a for ad in adapters for a in _adapter_addresses(ad) if not ipaddress.ip_address(a).is_loopback]
    else:
        wanted = resolve(host.strip("[]"))
        for ad in adapters:
            addrs = _adapter_addresses(ad)
            if wanted & set(addrs):
                chosen += addrs
    return list(dict.fromkeys(chosen))


# aioice has no parameter to limit host candidates (checked against aioice 0.13.0 with
# aiortc 1.16.0): Connection.gather_candidates() takes the list from the module-level
# aioice.ice.get_host_addresses(use_ipv4, use_ipv6) (every interface's addresses minus
# 127.0.0.1, ::1 and scoped IPv6), and aiortc's RTCIceGatherer makes the Connection with
# no hook for it. So that one function is wrapped: while `_ALLOWED` is set (a context
# variable, so only the peer being answered sees it; aiortc gathers in tasks created
# under it) it keeps aioice's own list minus anything not allowed; otherwise it is
# aioice's. `Peer.answer` also checks the answer's candidates, so a future aioice that
# gathers differently fails closed instead of offering every interface.
_ALLOWED: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("call_ice_addresses", default=None)
_aioice_host_addresses = getattr(aioice.ice.get_host_addresses, "__wrapped__", aioice.ice.get_host_addresses)


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _aioice_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    allowed = _ALLOWED.get()
    if allowed is None:
        return addresses
    kept = [a for a in addresses if _norm(a) in allowed]
    if not kept:
        log.warning("call: no address to offer ICE candidates on (allowed %s; aioice found %s); "
                    "check call.host and call.ice_interfaces", sorted(allowed) or "none", addresses)
    return kept


_host_addresses.__wrapped__ = _aioice_host_addresses
aioice.ice.get_host_addresses = _host_addresses


def candidate_addresses(sdp: str) -> list[str]:
    """The connection addresses of an SDP's a=candidate lines."""
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:") and len(line.split()) > 4]


def set_bitrate_cap(max_kbps: int) -> None:
    """aiortc adapts its encoders' bitrate to the receiver's REMB feedback but
    clamps it to module constants; raise (or lower) that cap."""
    from aiortc.codecs import h264, vpx
    vpx.MAX_BITRATE = h264.MAX_BITRATE = max_kbps * 1000
    vpx.DEFAULT_BITRATE = min(vpx.DEFAULT_BITRATE, max_kbps * 1000)


class Peer:
    def __init__(self, *, slot: LatestFrame, width: int, height: int, fps: int, codecs: list[str],
                 timecode: bool, friend_video: FriendVideo, audio_output: str,
                 ice_host: str | None = None, ice_interfaces: str = ""):
        """ice_host/ice_interfaces: call.host and call.ice_interfaces, which
        limit the host candidates (see `ice_addresses`); ice_host None = every
        address aioice finds."""
        self.ice = None if ice_host is None else (ice_host, ice_interfaces)
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
        if self.ice is None:
            return await self._answer(offer_sdp)
        allowed = frozenset(await asyncio.to_thread(ice_addresses, *self.ice))   # may resolve a name
        token = _ALLOWED.set(allowed)
        try:
            sdp = await self._answer(offer_sdp)
        finally:
            _ALLOWED.reset(token)
        stray = [a for a in candidate_addresses(sdp) if _safe_norm(a) not in allowed]
        if stray:
            raise OfferError(f"ICE offered {stray}, outside the allowed {sorted(allowed)} (has aioice changed?)")
        return sdp

    async def _answer(self, offer_sdp: str) -> str:
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


def _safe_norm(address: str) -> str:
    try:
        return _norm(address)
    except ValueError:
        return address


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
