"""The friend call's web side: the join page and `/ws/join`, as a FastAPI
router that the kiosk's web host (`mirror/web/host.py`) serves.

A thin asyncio layer over `call/protocol.py`: it reads websocket messages,
feeds them to the friend's `FriendProtocol`, and carries out the effects
(send, close, bus notifications, the aiortc peer). Every decision lives in
the protocol; this file only does I/O. It does not listen itself: mount
`router()` on a listener whose `ws_max_size` is `protocol.MAX_MESSAGE_BYTES`
(a bigger message closes the websocket with 1009 before it reaches here).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse, Response

from call import protocol as P
from call.rtc import OfferError, Peer
from call.tokens import RATE_LIMITED, JoinTokens, RateLimiter
from mirror.web.host import send_if_open

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/join": ("join.html", "text/html; charset=utf-8"),
         "/join.js": ("join.js", "text/javascript; charset=utf-8"),
         "/join.css": ("join.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' blob: data:; "
                               "media-src 'self' blob:; frame-ancestors 'none'",
    "Permissions-Policy": "camera=(self), microphone=(self)",
}
TICK_S = 1.0                    # how often the protocol's clock (join timeout) is driven


@dataclass
class Friend:
    proto: P.FriendProtocol
    ws: WebSocket
    peer: Peer | None = None


class CallServer:
    def __init__(self, cfg, *, tokens: JoinTokens, publish: Callable[..., None],
                 peer_factory: Callable[[], Peer], public_base: str, origins: list[str]):
        self.cfg = cfg
        self.room = P.Room(tokens, cfg.max_friends)
        self.publish = publish
        self.peer_factory = peer_factory
        self.public_base = public_base.rstrip("/")
        self.origins = origins
        self.limiter = RateLimiter(cfg.join_attempts_per_minute, 60.0)
        self.friends: dict[str, Friend] = {}
        self._ids = itertools.count(1)
        self.refused = 0

    # --- web ---------------------------------------------------------------------
    def router(self) -> APIRouter:
        """The join page, its script and style, /favicon.ico and the signalling
        websocket /ws/join. Anything else is the app's 404."""
        r = APIRouter()
        for path, (name, ctype) in PAGES.items():
            r.add_api_route(path, _page(name, ctype), methods=["GET"], include_in_schema=False)
        r.add_api_route("/favicon.ico", _no_content, methods=["GET"], include_in_schema=False)
        r.add_api_websocket_route("/ws/join", self._ws_join)
        log.info("friend call routes ready (join links %s/join#...)", self.public_base)
        return r

    async def close(self) -> None:
        """Hang up every friend (the kiosk is shutting down); call before the
        web host stops."""
        for conn in list(self.friends):
            f = self.friends.get(conn)
            if f is not None:
                await self._apply(conn, f.proto.hang_up("mirror_closed"))

    # --- kiosk side --------------------------------------------------------------
    def issue_link(self) -> dict:
        if self.room.session is None:
            raise LookupError("nobody is at the mirror: a join link belongs to a shopper's session")
        token, claims = self.room.tokens.issue(self.room.session, time.time())
        return {"url": f"{self.public_base}/join#{token}", "expires": claims.expires}

    async def new_session(self, session: str | None) -> None:
        for conn in self.room.new_session(session):
            f = self.friends.get(conn)
            if f:
                await self._apply(conn, f.proto.hang_up("shopper_left"))

    async def admit(self) -> bool:
        for conn, f in list(self.friends.items()):
            if f.proto.phase is P.Phase.LOBBY:
                await self._apply(conn, f.proto.admit())
                return True
        return False

    async def decline(self) -> None:
        for conn, f in list(self.friends.items()):
            if f.proto.phase is P.Phase.LOBBY:
                await self._apply(conn, f.proto.decline())

    async def hang_up(self, reason: str) -> int:
        n = 0
        for conn, f in list(self.friends.items()):
            n += 1
            await self._apply(conn, f.proto.hang_up(reason))
        return n

    def status(self) -> dict:
        return {"session": self.room.session is not None, "refused": self.refused,
                "friends": [{"name": f.proto.name, "phase": f.proto.phase.value,
                             "peer": f.peer.state if f.peer else None} for f in self.friends.values()]}

    # --- websocket -----------------------------------------------------------------
    async def _ws_join(self, websocket: WebSocket) -> None:
        # refusals happen at the handshake, as plain HTTP answers, before accepting
        origin = websocket.headers.get("origin")
        if origin not in self.origins:
            log.warning("join refused: Origin %r is not one of the configured hosts", origin)
            self.refused += 1
            await websocket.send_denial_response(PlainTextResponse(
                "Forbidden: this page's origin may not join the mirror\n", status_code=403))
            return
        client = websocket.client.host if websocket.client else "?"
        if not self.limiter.allow(client, time.monotonic()):
            log.warning("join refused: too many attempts from %s", client)
            self.refused += 1
            await websocket.send_denial_response(PlainTextResponse(
                "Too many join attempts; wait a minute\n", status_code=429))
            return
        await websocket.accept()
        await self._handle(websocket)

    async def _handle(self, ws: WebSocket) -> None:
        conn = f"f{next(self._ids)}"
        proto = P.FriendProtocol(self.room, conn, time.time(), self.cfg.join_timeout_s)
        self.friends[conn] = Friend(proto, ws)
        # one receive outstanding at a time, never cancelled between ticks, so no
        # message is lost to a timeout; the protocol's clock ticks every TICK_S
        # whether or not messages arrive
        recv: asyncio.Future | None = None
        next_tick = time.monotonic() + TICK_S
        try:
            while proto.phase is not P.Phase.CLOSED:
                if recv is None:
                    recv = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({recv}, timeout=max(0.0, next_tick - time.monotonic()))
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_S
                    await self._apply(conn, proto.tick(time.time()))
                    continue                                 # a message in hand waits for the phase check
                if not done:
                    continue
                msg, recv = recv.result(), None
                if msg["type"] == "websocket.disconnect":
                    break
                raw = msg.get("text")
                await self._apply(conn, proto.receive(raw if raw is not None else msg.get("bytes") or b"",
                                                      time.time()))
        finally:
            if recv is not None:
                if not recv.done():
                    recv.cancel()
                elif not recv.cancelled():
                    recv.exception()                         # seen: the socket is gone either way
            await self._apply(conn, proto.disconnected())
            self.friends.pop(conn, None)

    async def _apply(self, conn: str, effects: list[P.Effect]) -> None:
        f = self.friends.get(conn)
        if f is None:
            return
        for eff in effects:
            if isinstance(eff, P.Send):
                await send_if_open(f.ws, {"type": "websocket.send", "text": json.dumps(eff.msg)}, "call")
            elif isinstance(eff, P.Close):
                code = _ERROR_CODES.get(eff.reason)
                if code is not None:
                    self.refused += 1
                await send_if_open(f.ws, {"type": "websocket.close", "code": 4000 + code if code is not None else 1000,
                                          "reason": eff.reason[:100]}, "call")
            elif isinstance(eff, P.Notify):
                log.info("call: %s %s", eff.name, {k: v for k, v in eff.data.items() if k != "conn"})
                self.publish(eff.name, **eff.data)
            elif isinstance(eff, P.Answer):
                await self._answer(conn, f, eff.sdp)
            elif isinstance(eff, P.AddCandidate):
                if f.peer is not None:
                    await f.peer.add_candidate(eff.candidate, eff.sdp_mid, eff.sdp_mline_index)
            elif isinstance(eff, P.StopPeer):
                if f.peer is not None:
                    peer, f.peer = f.peer, None
                    await peer.close()

    async def _answer(self, conn: str, f: Friend, sdp: str) -> None:
        f.peer = self.peer_factory()
        f.peer.on_failed = lambda why: asyncio.ensure_future(self._apply(conn, f.proto.peer_failed(why)))
        try:
            answer = await f.peer.answer(sdp)
        except OfferError as e:
            log.warning("call: bad offer from %s: %s", f.proto.name, e)
            await self._apply(conn, f.proto.offer_failed())
            return
        await self._apply(conn, [P.Send({"type": "answer", "sdp": answer}),
                                 P.Notify("call.connected", {"name": f.proto.name})])


# websocket close codes (4000 + n) for refusals; a normal end closes with 1000
_ERROR_CODES = {"forged": 1, "expired": 2, "used": 3, "ended": 4, P.BUSY: 5, RATE_LIMITED: 6,
                P.BAD_MESSAGE: 7, P.BAD_OFFER: 8, P.NOT_NOW: 9, P.TIMEOUT: 10}


def _page(name: str, ctype: str):
    async def page() -> Response:
        return Response((STATIC / name).read_text(encoding="utf-8"),
                        headers={"Content-Type": ctype, **SECURITY_HEADERS})
    page.__name__ = f"page_{name.replace('.', '_')}"
    return page


async def _no_content() -> Response:
    return Response(status_code=204)


def allowed_origins(public_base: str, extra: str) -> list[str]:
    parts = urlsplit(public_base)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    origins += [o.strip().rstrip("/") for o in extra.split(",") if o.strip()]
    return origins
