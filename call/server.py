"""The kiosk's web server for the friend call: the join page and `/ws/join`.

A thin asyncio layer over `call/protocol.py`: it reads websocket messages,
feeds them to the friend's `FriendProtocol`, and carries out the effects
(send, close, bus notifications, the aiortc peer). Every decision lives in
the protocol; this file only does I/O.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, serve

from call import protocol as P
from call.rtc import OfferError, Peer
from call.tokens import RATE_LIMITED, JoinTokens, RateLimiter

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


@dataclass
class Friend:
    proto: P.FriendProtocol
    ws: ServerConnection
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
        self._server = None
        self.refused = 0

    # --- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        ctx = None
        if self.cfg.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cfg.tls_cert, self.cfg.tls_key)
        self._server = await serve(self._handle, self.cfg.host, self.cfg.port, ssl=ctx,
                                   process_request=self._process_request, max_size=P.MAX_MESSAGE_BYTES,
                                   ping_interval=5, ping_timeout=10, compression=None,
                                   server_header="smart-mirror")
        log.info("friend call server on %s://%s:%d (join links %s/join#...)",
                 "https" if ctx else "http", self.cfg.host, self.cfg.port, self.public_base)

    async def stop(self) -> None:
        for conn in list(self.friends):
            await self._apply(conn, self.friends[conn].proto.hang_up("mirror_closed"))
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

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

    # --- HTTP ---------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request):
        path = request.path.split("?", 1)[0]
        if path == "/ws/join":
            origin = request.headers.get("Origin")
            if origin not in self.origins:
                log.warning("join refused: Origin %r is not one of the configured hosts", origin)
                self.refused += 1
                return conn.respond(403, "Forbidden: this page's origin may not join the mirror\n")
            client = str(conn.remote_address[0]) if conn.remote_address else "?"
            if not self.limiter.allow(client, time.monotonic()):
                log.warning("join refused: too many attempts from %s", client)
                self.refused += 1
                return conn.respond(429, "Too many join attempts; wait a minute\n")
            return None
        if path == "/favicon.ico":
            return conn.respond(204, "")
        page = PAGES.get(path)
        if page is None or request.headers.get("Upgrade"):
            return conn.respond(404, "Not found\n")
        name, ctype = page
        resp = conn.respond(200, (STATIC / name).read_text(encoding="utf-8"))
        resp.headers["Content-Type"] = ctype
        for k, v in SECURITY_HEADERS.items():
            resp.headers[k] = v
        return resp

    # --- websocket -----------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        conn = f"f{next(self._ids)}"
        proto = P.FriendProtocol(self.room, conn, time.time(), self.cfg.join_timeout_s)
        self.friends[conn] = Friend(proto, ws)
        try:
            while proto.phase is not P.Phase.CLOSED:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
                except asyncio.TimeoutError:
                    await self._apply(conn, proto.tick(time.time()))
                    continue
                await self._apply(conn, proto.receive(raw, time.time()))
        except websockets.ConnectionClosed:
            pass
        finally:
            await self._apply(conn, proto.disconnected())
            self.friends.pop(conn, None)

    async def _apply(self, conn: str, effects: list[P.Effect]) -> None:
        f = self.friends.get(conn)
        if f is None:
            return
        for eff in effects:
            if isinstance(eff, P.Send):
                try:
                    await f.ws.send(json.dumps(eff.msg))
                except websockets.ConnectionClosed:
                    pass
            elif isinstance(eff, P.Close):
                code = _ERROR_CODES.get(eff.reason)
                if code is not None:
                    self.refused += 1
                await f.ws.close(4000 + code if code is not None else 1000, eff.reason[:100])
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


def allowed_origins(public_base: str, extra: str) -> list[str]:
    parts = urlsplit(public_base)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    origins += [o.strip().rstrip("/") for o in extra.split(",") if o.strip()]
    return origins
