"""The friend call as a kiosk service.

It runs one asyncio loop on its own thread, hosting the call's web server
(`call/server.py`) and the kiosk's control socket (`mirror/control.py`). It
talks to the rest of the kiosk only through bus notifications:

  in:  session.started / session.ended, call.requested, call.admit,
       call.decline, call.hangup
  out: call.knock, call.admitted, call.connected, call.reaction,
       call.snapshot, call.ended, call.refused, call.link

and contributes its overlays (QR code, "wants to join" card, friend tile,
reactions) to each frame's UiState.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import cv2

from call.media import FriendVideo, LatestFrame
from call.rtc import Peer, set_bitrate_cap
from call.server import CallServer, allowed_origins
from call.tokens import JoinTokens, load_secret
from mirror.core.bus import Event
from mirror.app.control import ControlServer, socket_path
from render.compositor import CallView

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


class CallService:
    def __init__(self, kiosk, serve: bool = True):
        """serve=False: no web server or control socket (the offline demo,
        whose timeline plays the server's notifications itself)."""
        self.kiosk = kiosk
        self.serve = serve
        self.bus = kiosk.bus
        self.cfg = kiosk.cfg.call
        c = self.cfg
        secret = load_secret(kiosk.cfg.resolve(c.secret_file)) if c.secret_file else secrets.token_bytes(32)
        self.tokens = JoinTokens(secret, c.link_ttl_s)
        self.slot = LatestFrame()
        self.friend_video = FriendVideo(max(64, int(kiosk.comp.size[0] * c.tile_width) // 2 * 2))
        self.base = public_base(c)
        self.server = CallServer(c, tokens=self.tokens, publish=self.bus.publish, peer_factory=self._new_peer,
                                 public_base=self.base,
                                 origins=allowed_origins(self.base, c.allowed_origins))
        self.control = ControlServer(socket_path(c.control_socket), {
            "link": self._cmd_link, "status": self._cmd_status, "hangup": self._cmd_hangup,
            "action": self._cmd_action, "screenshot": self._cmd_screenshot})
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.problem = ""
        # UI state, touched on the main thread only
        self.link: dict | None = None
        self.knocking = ""
        self.friend = ""
        self.connected = False
        self.reactions: deque[tuple[str, str, str, float]] = deque(maxlen=8)   # name, kind, text, t
        self.peers: list[Peer] = []
        self._shots: list[tuple[Path, Future]] = []
        self.sent_frames = 0
        set_bitrate_cap(c.max_bitrate_kbps)
        for name in ("session.started", "session.ended", "call.requested", "call.admit", "call.decline",
                     "call.hangup", "call.knock", "call.admitted", "call.connected", "call.reaction",
                     "call.ended", "call.link"):
            self.bus.subscribe(name, self._on_event)

    # --- lifecycle (main thread) -------------------------------------------------
    def start(self) -> None:
        if not self.serve:
            return
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, args=(ready,), name="call", daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run_loop(self, ready: threading.Event) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start_servers())
        except Exception as e:
            self.problem = f"Friend calls unavailable: {e}"
            log.error("friend calls unavailable: %s (check call.host, call.port and call.control_socket)", e)
        ready.set()
        if self.problem:
            return
        self.loop.run_forever()

    async def _start_servers(self) -> None:
        try:
            await self.server.start()
        except OSError as e:
            raise RuntimeError(f"cannot listen on {self.cfg.host}:{self.cfg.port} ({e.strerror})") from None
        await self.control.start()

    def stop(self) -> None:
        if self.loop is None or self.problem:
            return

        async def shutdown():
            await self.server.stop()
            await self.control.stop()
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        except Exception:
            log.exception("call shutdown")
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread:
            self._thread.join(5)

    def _submit(self, coro) -> Future | None:
        if self.loop is None or self.problem or not self.serve:
            coro.close()
            return None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _new_peer(self) -> Peer:
        c = self.cfg
        peer = Peer(slot=self.slot, width=c.video_width, height=c.video_height, fps=c.video_fps,
                    codecs=[x.strip() for x in c.codecs.split(",")], timecode=c.timecode,
                    friend_video=self.friend_video, audio_output=audio_device(c.audio_output))
        self.peers = [p for p in self.peers if p.state != "closed"] + [peer]
        return peer

    # --- bus (main thread) ----------------------------------------------------------
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
        elif n == "call.reaction":
            self.reactions.append((ev.data["name"], ev.data["kind"], ev.data.get("text", ""), now))
        elif n == "call.ended":
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
    def decorate(self, ui, now: float) -> None:
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
        ui.call = view

    def on_composed(self, comp, clean_bgr, now: float) -> None:
        if self.friend and self.connected:
            if self.cfg.view == "clean" and clean_bgr is not None:
                img = cv2.flip(clean_bgr, 1) if self.kiosk.cfg.display.mirror else clean_bgr.copy()
            else:
                img = comp.snapshot_bgrx()
            self.slot.put(img, time.time())
            self.sent_frames += 1
        if self._shots:
            shots, self._shots = self._shots, []
            for path, fut in shots:
                try:
                    comp.save(path)
                    fut.set_result(str(path))
                except Exception as e:
                    fut.set_exception(e)

    # --- control socket (call loop) ------------------------------------------------------
    async def _cmd_link(self, req: dict) -> dict:
        link = self.server.issue_link()
        self.bus.publish("call.link", **link)
        return {"ok": True, **link}

    async def _cmd_status(self, req: dict) -> dict:
        st = self.kiosk.stats
        return {"ok": True, "call": self.server.status(), "knocking": self.knocking, "friend": self.friend,
                "connected": self.connected, "friend_frames": self.friend_video.frames,
                "friend_size": list(self.friend_video.size), "sent_frames": self.sent_frames,
                "reactions": len(self.reactions), "present": self.kiosk.session.present,
                "fps": round(st.get("fps", 0.0), 1), "frames": st["frames"],
                "codec": next((p.codec for p in reversed(self.peers)), ""),
                "track_sent": sum(p.track.sent for p in self.peers)}

    async def _cmd_hangup(self, req: dict) -> dict:
        n = await self.server.hang_up("staff ended the call")
        return {"ok": True, "ended": n}

    async def _cmd_action(self, req: dict) -> dict:
        """Press an action as the shopper's gesture would (staff console, tests)."""
        from mirror.core.actions import ACTIONS
        action = req.get("action")
        if action not in ACTIONS:
            return {"ok": False, "error": f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"}
        self.bus.publish("action.requested", action=action, source=str(req.get("source", "control")))
        return {"ok": True}

    async def _cmd_screenshot(self, req: dict) -> dict:
        path = Path(str(req.get("path", "")))
        if path.suffix.lower() not in (".png", ".jpg") or not path.parent.is_dir():
            return {"ok": False, "error": "path: expected a .png or .jpg file in an existing folder"}
        fut: Future = Future()
        self._shots.append((path, fut))
        saved = await asyncio.wait_for(asyncio.wrap_future(fut), 5)
        return {"ok": True, "path": saved}
