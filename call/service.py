"""The friend call as a kiosk feature.

Its network side (the join page and `/ws/join` from `call/server.py`, the
aiortc peers) runs on the kiosk's asyncio loop. It talks to the rest of the
kiosk only through bus notifications:

  in:  session.started / session.ended, call.requested, call.admit,
       call.decline, call.hangup
  out: call.knock, call.admitted, call.connected, call.reaction,
       call.snapshot, call.ended, call.refused, call.link, load.changed

and draws its own overlay (QR code, "wants to join" card, friend tile,
reactions). It offers the control-socket commands `link` and `hangup`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import cv2

from call.media import FriendVideo, LatestFrame
from call.rtc import Peer, set_bitrate_cap
from call.server import CallServer, allowed_origins
from call.tokens import JoinTokens, load_secret
from mirror.core.bus import Event, EventBus
from call.overlay import CallOverlay, CallView
from mirror.core.config import Config
from mirror.core.feature import Feature

log = logging.getLogger(__name__)

REACTION_S = 3.5


def public_base(cfg) -> str:
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return f"{'https' if cfg.tls_cert else 'http'}://{host}:{cfg.port}"


def audio_device(setting: str) -> str:
    if setting != "auto":
        return setting
    return "default" if any(Path("/dev/snd").glob("pcmC*D*p")) else "none"


class CallService(Feature):
    name = "call"

    def __init__(self, cfg: Config, bus: EventBus, *, screen_width: int, serve: bool = True):
        """serve=False: no web server (the offline demo, whose timeline plays
        the server's notifications itself)."""
        self.serve = serve
        self.bus = bus
        self.mirror = cfg.display.mirror
        self.cfg = c = cfg.call
        secret = load_secret(cfg.resolve(c.secret_file)) if c.secret_file else secrets.token_bytes(32)
        self.tokens = JoinTokens(secret, c.link_ttl_s)
        self.slot = LatestFrame()
        self.friend_video = FriendVideo(max(64, int(screen_width * c.tile_width) // 2 * 2))
        self.base = public_base(c)
        self.server = CallServer(c, tokens=self.tokens, publish=self.bus.publish, peer_factory=self._new_peer,
                                 public_base=self.base,
                                 origins=allowed_origins(self.base, c.allowed_origins))
        self.router = self.server.router()
        self.overlay = CallOverlay()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.problem = ""
        # state for the overlay, touched on the main thread only
        self.link: dict | None = None
        self.knocking = ""
        self.friend = ""
        self.connected = False
        self.reactions: deque[tuple[str, str, str, float]] = deque(maxlen=8)   # name, kind, text, t
        self.peers: list[Peer] = []
        self.sent_frames = 0
        set_bitrate_cap(c.max_bitrate_kbps)
        self.bus.subscribe("web.unavailable", self._on_web_unavailable)
        for name in ("session.started", "session.ended", "call.requested", "call.admit", "call.decline",
                     "call.hangup", "call.knock", "call.admitted", "call.connected", "call.reaction",
                     "call.ended", "call.link"):
            self.bus.subscribe(name, self._on_event)

    # --- lifecycle (main thread) -------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if self.serve:
            self.loop = loop

    def routes(self) -> dict:
        return {"public": self.router} if self.serve else {}

    def stop(self) -> None:
        if self.loop is None:
            return
        try:          # friends are told the mirror closed before the web host stops
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        except Exception:
            log.exception("call shutdown")

    def overlays(self):
        return [self.overlay]

    def _submit(self, coro) -> Future | None:
        if self.loop is None or self.problem or not self.serve:
            coro.close()
            return None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _new_peer(self) -> Peer:
        c = self.cfg
        peer = Peer(slot=self.slot, width=c.video_width, height=c.video_height, fps=c.video_fps,
                    codecs=[x.strip() for x in c.codecs.split(",")], timecode=c.timecode,
                    friend_video=self.friend_video, audio_output=audio_device(c.audio_output),
                    ice_host=c.host, ice_interfaces=c.ice_interfaces)
        self.peers = [p for p in self.peers if p.state != "closed"] + [peer]
        return peer

    # --- bus (main thread) ----------------------------------------------------------
    def _on_web_unavailable(self, ev: Event) -> None:
        if ev.data["listener"] == "public":
            self.problem = f"Friend calls unavailable: {ev.data['message']}"
            self.loop = None

    def _on_event(self, ev: Event) -> None:
        now = time.monotonic()
        n = ev.name
        if n == "session.started":
            self._submit(self.server.new_session(ev.data["id"]))
        elif n == "session.ended":
            self.link = None
            self._submit(self.server.new_session(None))
        elif n == "call.requested":
            self._show_link()
        elif n == "call.link":
            self.link = dict(ev.data)
        elif n == "call.admit":
            self._submit(self.server.admit())
        elif n == "call.decline":
            self._submit(self.server.decline())
        elif n == "call.hangup":
            self._submit(self.server.hang_up(ev.data.get("reason", "hung up")))
        elif n == "call.knock":
            self.knocking, self.link = ev.data["name"], None
        elif n == "call.admitted":
            self.knocking, self.friend = "", ev.data["name"]
        elif n == "call.connected":
            self.connected = True
            self.bus.publish("load.changed", part="call", busy=True)   # the video encoder needs a core
        elif n == "call.reaction":
            self.reactions.append((ev.data["name"], ev.data["kind"], ev.data.get("text", ""), now))
        elif n == "call.ended":
            if self.connected:
                self.bus.publish("load.changed", part="call", busy=False)
            self.knocking = self.friend = ""
            self.connected = False
            self.friend_video.clear()
            self.reactions.clear()

    def _show_link(self) -> None:
        fut = self._submit(self._issue())
        if fut is None:
            return
        try:
            self.bus.publish("call.link", **fut.result(2))
        except LookupError as e:
            log.info("no join link: %s", e)

    async def _issue(self) -> dict:
        return self.server.issue_link()

    # --- per frame (main thread) -------------------------------------------------------
    def before_frame(self, now: float) -> None:
        view = CallView(status=self.problem)
        if self.link and time.time() < self.link["expires"]:
            view.link = self.link["url"]
        view.knocking = self.knocking
        view.friend = self.friend
        if self.friend:
            view.tile = self.friend_video.latest()
            if not self.connected:
                view.status = f"Connecting to {self.friend}…"
        view.reactions = [(name, kind, text, now - t) for name, kind, text, t in self.reactions
                          if now - t < REACTION_S]
        self.overlay.view = view

    def on_composed(self, frame) -> None:
        if self.friend and self.connected:
            if self.cfg.view == "clean" and frame.clean_bgr is not None:
                img = cv2.flip(frame.clean_bgr, 1) if self.mirror else frame.clean_bgr.copy()
            else:
                img = frame.bgrx()
            self.slot.put(img, time.time())
            self.sent_frames += 1

    # --- control socket (asyncio loop) ------------------------------------------------------
    def commands(self) -> dict:
        return {"link": self._cmd_link, "hangup": self._cmd_hangup}

    async def _cmd_link(self, req: dict) -> dict:
        link = self.server.issue_link()
        self.bus.publish("call.link", **link)
        return {"ok": True, **link}

    async def _cmd_hangup(self, req: dict) -> dict:
        n = await self.server.hang_up("staff ended the call")
        return {"ok": True, "ended": n}

    def status(self) -> dict:
        return {"call": self.server.status(), "knocking": self.knocking, "friend": self.friend,
                "connected": self.connected, "friend_frames": self.friend_video.frames,
                "friend_size": list(self.friend_video.size), "sent_frames": self.sent_frames,
                "reactions": len(self.reactions),
                "codec": next((p.codec for p in reversed(self.peers)), ""),
                "track_sent": sum(p.track.sent for p in self.peers)}
