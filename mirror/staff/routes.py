"""The staff console's web side: `/staff`, its API and `/staff/ws`, as a
FastAPI router that the kiosk's web host serves on the staff listener.

The API contract (README "The staff console"):

* `GET /staff`: the login page, or the console when the cookie is a live session.
* `POST /staff/login` `{"pin"}`: 200 + Set-Cookie `mirror_staff` (HttpOnly,
  SameSite=Strict, Path=/staff, Secure under TLS); 401 wrong PIN; 429 after 5
  failures a minute from one address; 403 foreign or missing Origin.
* `POST /staff/logout`: ends the session, clears the cookie, closes its websockets.
* `GET /staff/api/state`: the live mirror card; 401 without a session.
* `GET /staff/api/catalog[?q=TEXT][&goes_with=SKU]`: `{"products": [{"sku", "name",
  "category", "colours", "sizes", "stock", ...}]}`; stock is what is available
  (on hand minus items put aside) per colour and size.
* `POST /staff/api/suggestions` `{"skus": [...], "session_id"?}`: publishes
  `suggestions.pushed`; 404 unknown SKU; 409 nobody there or a stale session id.
* `POST /staff/api/requests/{id}/reply` `{"text"}`: publishes `staff.replied`;
  404 unknown request; 409 already answered by someone else.
* `GET /staff/images/NAME`: a catalogue picture (logged in only).
* `GET /staff/api/reservations`: the holds still held, then the last closed;
  `POST /staff/api/reservations` `{"sku", "colour", "size"}` puts one aside
  (409 out of stock); `POST /staff/api/reservations/{id}/collect|release`.
* `POST /staff/api/members/{id}/notes` `{"text"}` (only while her profile is
  shared: 409 otherwise); `POST /staff/api/members/{id}/forget` erases her.
* `POST /api/reservations` `{"member_id", "first_name"?, "sku", "colour",
  "size"}` (201) and `POST /api/wishlist` `{"member_id", "first_name"?,
  "items": [{"sku", "colour"?, "size"?}]}`: the web store, with
  `Authorization: Bearer <staff.webstore_token>` (401 without it, 429 after 5
  bad tokens a minute, 404 while no token is configured).
* `WS /staff/ws`: refused at the handshake with 403 (Origin) or 401 (no
  session). Sends `{"type": "state", "user", "state"}` on connect and on every
  change; answers `{"type": "ping"}` with `{"type": "pong"}`, `{"type": "state"}`
  with the state, and anything else with `{"type": "error", "reason"}`. When
  the session ends (logout, expiry) it sends `{"type": "logged_out"}` and closes
  with 4001.

Every POST checks Origin first (403), then the session (401), then reads at
most 64 KiB of body (413) and validates it with a pydantic model that forbids
unknown keys (400 malformed JSON, 422 wrong shape). Errors are
`{"error": "one line"}`. Every staff action is written to the audit table.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from mirror.staff import auth
from mirror.web.host import send_if_open

if TYPE_CHECKING:
    from mirror.staff.service import StaffFeature

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"staff.css": "text/css; charset=utf-8", "login.js": "text/javascript; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8"}
MAX_BODY_BYTES = 64 * 1024
DRAIN_MAX_BYTES = 4 * 1024 * 1024          # a too-big body is read (and dropped) up to this, so the 413 arrives
WS_MAX_MESSAGE_CHARS = 4096
WS_CHECK_S = 5.0                           # how often a websocket checks that its session is still live
MAX_SUGGESTIONS = 12
IMAGE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(?:png|jpg|jpeg|webp)", re.IGNORECASE)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; media-src 'none'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
WHO = "staff console"                      # websocket sends name this in the log


# --- request bodies ------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(_Body):
    pin: str = Field(min_length=1, max_length=64)


class PushBody(_Body):
    skus: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        min_length=1, max_length=MAX_SUGGESTIONS)
    session_id: str | None = Field(None, max_length=64)


class ReplyBody(_Body):
    text: str = Field(min_length=1, max_length=200)

    @field_validator("text")
    @classmethod
    def _one_line(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("the reply is empty")
        if not v.isprintable():
            raise ValueError("the reply has a character that cannot be shown")
        return v


_Sku = Annotated[str, StringConstraints(min_length=1, max_length=40)]
_Short = Annotated[str, StringConstraints(min_length=1, max_length=40)]
_MemberId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class ReserveBody(_Body):
    sku: _Sku
    colour: _Short
    size: _Short


class NoteBody(ReplyBody):
    text: str = Field(min_length=1, max_length=300)


class WebstoreReservationBody(_Body):
    member_id: _MemberId
    first_name: str = Field("", max_length=40)
    sku: _Sku
    colour: _Short
    size: _Short


class WishItem(_Body):
    sku: _Sku
    colour: str = Field("", max_length=40)
    size: str = Field("", max_length=40)


class WishlistBody(_Body):
    member_id: _MemberId
    first_name: str = Field("", max_length=40)
    items: list[WishItem] = Field(min_length=1, max_length=50)


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={**API_HEADERS, **(headers or {})})


def _validation(e: ValidationError) -> HttpError:
    errs = e.errors(include_url=False)
    bad_json = next((err for err in errs if err["type"] == "json_invalid"), None)
    if bad_json is not None:
        why = (bad_json.get("ctx") or {}).get("error", bad_json["msg"])
        return HttpError(400, f"malformed JSON: {why}; send a JSON object")
    parts = []
    for err in errs[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (and {len(errs) - 5} more)" if len(errs) > 5 else ""
    return HttpError(422, "; ".join(parts) + more)


async def read_body(request: Request, model: type[BaseModel]) -> Any:
    """The body as `model`: HttpError 413 over MAX_BODY_BYTES, 400 for malformed JSON, 422 for a wrong shape."""
    too_big = HttpError(413, f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HttpError(400, "bad Content-Length header")
        if int(length) > DRAIN_MAX_BYTES:
            raise too_big
    data = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen <= MAX_BODY_BYTES:
            data += chunk
        elif seen > DRAIN_MAX_BYTES:
            raise too_big
    if seen > MAX_BODY_BYTES:
        raise too_big
    try:
        return model.model_validate_json(bytes(data))
    except ValidationError as e:
        raise _validation(e) from None


def _client(conn: Request | WebSocket) -> str:
    return conn.client.host if conn.client else "?"


def _scheme(conn: Request | WebSocket) -> str:
    return "https" if conn.url.scheme in ("https", "wss") else "http"


@dataclass
class Client:
    """One connected console (a websocket); touched on the loop only."""
    ws: WebSocket
    token: str
    who: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    replies: deque = field(default_factory=lambda: deque(maxlen=20))
    closing: tuple[int, str] | None = None


class StaffRoutes:
    def __init__(self, feature: "StaffFeature"):
        self.f = feature
        self._ids = itertools.count(1)

    def router(self) -> APIRouter:
        r = APIRouter()
        get = dict(methods=["GET"], include_in_schema=False)
        post = dict(methods=["POST"], include_in_schema=False)
        r.add_api_route("/staff", self.page, **get)
        r.add_api_route("/staff/static/{name}", self.asset, **get)
        r.add_api_route("/staff/images/{name}", self.image, **get)
        r.add_api_route("/staff/login", self.login, **post)
        r.add_api_route("/staff/logout", self.logout, **post)
        r.add_api_route("/staff/api/state", self.get_state, **get)
        r.add_api_route("/staff/api/catalog", self.catalog, **get)
        r.add_api_route("/staff/api/suggestions", self.suggestions, **post)
        r.add_api_route("/staff/api/requests/{request_id}/reply", self.reply, **post)
        r.add_api_route("/staff/api/reservations", self.reservations, **get)
        r.add_api_route("/staff/api/reservations", self.reserve, **post)
        r.add_api_route("/staff/api/reservations/{hold_id}/{how}", self.close_hold, **post)
        r.add_api_route("/staff/api/members/{member_id}/notes", self.note, **post)
        r.add_api_route("/staff/api/members/{member_id}/forget", self.forget, **post)
        r.add_api_route("/api/reservations", self.webstore_reservation, **post)
        r.add_api_route("/api/wishlist", self.webstore_wishlist, **post)
        r.add_api_websocket_route("/staff/ws", self.ws)
        return r

    # --- checks ------------------------------------------------------------------------
    def _origin(self, conn: Request | WebSocket) -> None:
        problem = auth.origin_problem(conn.headers.get("origin"), self.f.origins(_scheme(conn)))
        if problem is not None:
            log.warning("staff console: refused %s %s from %s: %s", getattr(conn, "method", "WebSocket"),
                        conn.url.path, _client(conn), problem)
            raise HttpError(403, f"Forbidden: {problem}")

    def _session(self, conn: Request | WebSocket) -> auth.StaffSession:
        s = self.f.sessions.get(conn.cookies.get(auth.COOKIE), time.time())
        if s is None:
            raise HttpError(401, "log in first (no session, or it has expired)")
        return s

    async def _guard(self, handler, *args) -> Response:
        """Run a handler; HttpError and the database's errors become one-line JSON errors."""
        from mirror.storage.catalogue import CatalogueError, DatabaseError, UnknownProduct
        from mirror.storage.members import MemberError, UnknownMember
        from mirror.staff.service import CardError
        try:
            return await handler(*args)
        except HttpError as e:
            return _error(e.status, e.message, e.headers)
        except CardError as e:
            return _error(e.status, str(e))
        except (UnknownProduct, UnknownMember) as e:
            return _error(404, str(e))
        except MemberError as e:
            return _error(400, str(e))
        except CatalogueError as e:
            return _error(400, str(e))
        except (DatabaseError, sqlite3.Error) as e:
            log.error("staff console: the database is unavailable: %s", e)
            return _error(503, f"the staff database is unavailable: {e}")

    # --- pages ---------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        live = self.f.sessions.get(request.cookies.get(auth.COOKIE), time.time()) is not None
        name = "console.html" if live else "login.html"
        return Response((STATIC / name).read_bytes(), media_type="text/html; charset=utf-8",
                        headers=SECURITY_HEADERS)

    async def asset(self, name: str) -> Response:
        if name not in ASSETS:
            return Response("Not Found\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name], headers=SECURITY_HEADERS)

    async def image(self, request: Request, name: str) -> Response:
        async def run():
            self._session(request)
            path = self.f.images_dir / name
            if not IMAGE_NAME_RE.fullmatch(name) or not path.is_file():
                raise HttpError(404, f"no catalogue picture {name[:100]!r}")
            return FileResponse(path, headers={"Cache-Control": "private, max-age=3600",
                                               "X-Content-Type-Options": "nosniff"})
        return await self._guard(run)

    # --- login ---------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        return await self._guard(self._login, request)

    async def _login(self, request: Request) -> Response:
        self._origin(request)
        client = _client(request)
        limiter = self.f.limiter
        now = time.monotonic()
        if limiter.blocked(client, now):
            wait = limiter.retry_after(client, now)
            if limiter.first_refusal(client, now):
                log.warning("staff console: logins from %s refused for %d s (too many wrong PINs)", client, wait)
                await self.f.audit(f"web:{client}", "staff.login_refused", {"client": client, "retry_after": wait})
            raise HttpError(429, f"too many wrong PINs from this device; try again in {wait} s",
                            {"Retry-After": str(wait)})
        body = await read_body(request, LoginBody)
        attempt = time.monotonic()
        limiter.failed(client, attempt)              # counted before the check; forgiven when right
        who = await self.f.db.run(lambda db: db.users.verify(None, body.pin))
        if who is None:
            log.warning("staff console: wrong PIN from %s", client)
            await self.f.audit(f"web:{client}", "staff.login_failed", {"client": client})
            raise HttpError(401, "wrong PIN")
        limiter.forgive(client, attempt)
        s = self.f.sessions.create(who, time.time())
        await self.f.audit(who, "staff.login", {"client": client})
        log.info("staff console: %s logged in from %s", who, client)
        resp = JSONResponse({"ok": True, "user": who, "expires": s.expires}, headers=API_HEADERS)
        resp.headers["Set-Cookie"] = auth.cookie_header(s.token, s.expires - s.created,
                                                        secure=_scheme(request) == "https")
        return resp

    async def logout(self, request: Request) -> Response:
        async def run():
            self._origin(request)
            s = self.f.sessions.drop(request.cookies.get(auth.COOKIE))
            if s is not None:
                await self.f.audit(s.who, "staff.logout", {"client": _client(request)})
                self._end_clients(s.token, "logged out")
            resp = JSONResponse({"ok": True}, headers=API_HEADERS)
            resp.headers["Set-Cookie"] = auth.clear_cookie_header(secure=_scheme(request) == "https")
            return resp
        return await self._guard(run)

    # --- the API -----------------------------------------------------------------------------------
    async def get_state(self, request: Request) -> Response:
        async def run():
            s = self._session(request)
            return JSONResponse({**self.f.state(), "user": s.who}, headers=API_HEADERS)
        return await self._guard(run)

    async def catalog(self, request: Request, q: str = "", goes_with: str = "") -> Response:
        async def run():
            self._session(request)
            if len(q) > 100 or len(goes_with) > 40:
                raise HttpError(422, "q has at most 100 characters and goes_with at most 40")

            def find(db) -> list[dict]:
                cat = db.catalogue
                found = cat.goes_with(goes_with) if goes_with else cat.search(q, limit=200)
                now = time.time()
                out = []
                for p in found:
                    d = p.as_dict()
                    stock: dict[str, dict[str, int]] = {}
                    for lv in cat.stock_levels(p.sku, now):
                        stock.setdefault(lv["colour"], {})[lv["size"]] = lv["available"]
                    d.update(stock=stock, image=f"/staff/images/{p.image}" if p.image else "")
                    out.append(d)
                return out
            return JSONResponse({"products": await self.f.db.run(find)}, headers=API_HEADERS)
        return await self._guard(run)

    async def suggestions(self, request: Request) -> Response:
        async def run():
            self._origin(request)
            s = self._session(request)
            body = await read_body(request, PushBody)
            return JSONResponse(await self.f.push(s.who, list(body.skus), body.session_id), headers=API_HEADERS)
        return await self._guard(run)

    async def reply(self, request: Request, request_id: str) -> Response:
        async def run():
            self._origin(request)
            s = self._session(request)
            body = await read_body(request, ReplyBody)
            return JSONResponse(await self.f.reply(s.who, request_id, body.text), headers=API_HEADERS)
        return await self._guard(run)

    async def reservations(self, request: Request) -> Response:
        async def run():
            self._session(request)
            from mirror.staff.service import reservation_list
            return JSONResponse({"reservations": await self.f.db.run(lambda db: reservation_list(db.catalogue))},
                                headers=API_HEADERS)
        return await self._guard(run)

    async def reserve(self, request: Request) -> Response:
        async def run():
            self._origin(request)
            s = self._session(request)
            body = await read_body(request, ReserveBody)
            return JSONResponse(await self.f.reserve(s.who, body.sku, body.colour, body.size), headers=API_HEADERS)
        return await self._guard(run)

    async def close_hold(self, request: Request, hold_id: str, how: str) -> Response:
        async def run():
            self._origin(request)
            s = self._session(request)
            if how not in ("collect", "release") or not hold_id.isdigit() or len(hold_id) > 12:
                raise HttpError(404, "use /staff/api/reservations/ID/collect or /staff/api/reservations/ID/release")
            return JSONResponse(await self.f.close_hold(s.who, int(hold_id), how), headers=API_HEADERS)
        return await self._guard(run)

    async def note(self, request: Request, member_id: str) -> Response:
        async def run():
            self._origin(request)
            s = self._session(request)
            body = await read_body(request, NoteBody)
            return JSONResponse(await self.f.note(s.who, member_id[:64], body.text), headers=API_HEADERS)
        return await self._guard(run)

    async def forget(self, request: Request, member_id: str) -> Response:
        async def run():
            self._origin(request)
            s = self._session(request)
            return JSONResponse(await self.f.forget(s.who, member_id[:64]), headers=API_HEADERS)
        return await self._guard(run)

    # --- the web store (server to server: a bearer token, no cookie) ------------------------------------
    def _webstore(self, request: Request) -> None:
        token = self.f.cfg.webstore_token
        if not token:
            raise HttpError(404, "the web-store endpoints are off (set staff.webstore_token)")
        client, now = _client(request), time.monotonic()
        if self.f.limiter.blocked(client, now):
            wait = self.f.limiter.retry_after(client, now)
            raise HttpError(429, f"too many bad tokens from this address; try again in {wait} s",
                            {"Retry-After": str(wait)})
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            self.f.limiter.failed(client, now)
            log.warning("web store: refused %s from %s: bad or missing bearer token", request.url.path, client)
            raise HttpError(401, "send Authorization: Bearer <staff.webstore_token>", {"WWW-Authenticate": "Bearer"})

    async def webstore_reservation(self, request: Request) -> Response:
        async def run():
            self._webstore(request)
            b = await read_body(request, WebstoreReservationBody)
            out = await self.f.webstore_reserve(b.member_id, b.first_name, b.sku, b.colour, b.size)
            return JSONResponse(out, status_code=201, headers=API_HEADERS)
        return await self._guard(run)

    async def webstore_wishlist(self, request: Request) -> Response:
        async def run():
            self._webstore(request)
            b = await read_body(request, WishlistBody)
            items = [(i.sku, i.colour, i.size) for i in b.items]
            return JSONResponse(await self.f.webstore_wishlist(b.member_id, b.first_name, items), headers=API_HEADERS)
        return await self._guard(run)

    # --- the websocket -------------------------------------------------------------------------------
    async def ws(self, websocket: WebSocket) -> None:
        try:                       # refusals are plain HTTP answers at the handshake, before accepting
            self._origin(websocket)
            s = self._session(websocket)
        except HttpError as e:
            await websocket.send_denial_response(_error(e.status, e.message))
            return
        await websocket.accept()
        cid = next(self._ids)
        client = Client(websocket, s.token, s.who)
        self.f.clients[cid] = client
        client.wake.set()                            # the state at once
        log.info("staff console: %s connected (%d console%s)", s.who, len(self.f.clients),
                 "" if len(self.f.clients) == 1 else "s")
        reader = asyncio.ensure_future(self._read(client))
        sender = asyncio.ensure_future(self._send(client))
        try:
            await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (reader, sender):
                if not t.done():
                    t.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)
            self.f.clients.pop(cid, None)
            if client.closing is not None:
                await send_if_open(websocket, {"type": "websocket.close", "code": client.closing[0],
                                               "reason": client.closing[1]}, WHO)
            log.info("staff console: %s disconnected", s.who)

    async def _read(self, c: Client) -> None:
        while True:
            msg = await c.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            c.replies.append(_answer(msg.get("text"), msg.get("bytes")))
            c.wake.set()

    async def _send(self, c: Client) -> None:
        sent = -1
        while True:
            try:
                await asyncio.wait_for(c.wake.wait(), WS_CHECK_S)
            except asyncio.TimeoutError:
                pass
            c.wake.clear()
            if self.f.sessions.get(c.token, time.time()) is None:
                await send_if_open(c.ws, {"type": "websocket.send", "text": json.dumps(
                    {"type": "logged_out", "reason": "your session has ended; log in again"})}, WHO)
                c.closing = (4001, "logged out")
                return
            if c.closing is not None:
                return
            while c.replies:
                reply = c.replies.popleft()
                if reply == "state":
                    sent = -1
                else:
                    await send_if_open(c.ws, {"type": "websocket.send", "text": json.dumps(reply)}, WHO)
            version = self.f.version
            if version != sent:
                state = self.f.state()
                await send_if_open(c.ws, {"type": "websocket.send",
                                          "text": json.dumps({"type": "state", "user": c.who, "state": state})}, WHO)
                sent = version

    def wake_all(self) -> None:
        for c in list(self.f.clients.values()):
            c.wake.set()

    def _end_clients(self, token: str, why: str) -> None:
        for c in list(self.f.clients.values()):
            if c.token == token:
                c.wake.set()                        # the sender sees the session gone and closes

    async def close_all(self, code: int, reason: str) -> None:
        for c in list(self.f.clients.values()):
            c.closing = (code, reason)
            c.wake.set()
        for _ in range(50):
            if not self.f.clients:
                return
            await asyncio.sleep(0.02)


def _answer(text: str | None, data: bytes | None) -> dict | str:
    """The reply to one websocket message: a dict to send, or "state" for a fresh state."""
    if text is None:
        return {"type": "error", "reason": "send JSON text, not binary"}
    if len(text) > WS_MAX_MESSAGE_CHARS:
        return {"type": "error", "reason": f"message longer than {WS_MAX_MESSAGE_CHARS} characters"}
    try:
        msg = json.loads(text)
    except ValueError:
        return {"type": "error", "reason": "malformed JSON"}
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return {"type": "error", "reason": "expected an object with a \"type\""}
    if msg["type"] == "ping":
        return {"type": "pong"}
    if msg["type"] == "state":
        return "state"
    return {"type": "error", "reason": f"unknown message type {msg['type'][:40]!r} (ping, state)"}
