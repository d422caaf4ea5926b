"""The kiosk's web host: FastAPI apps served by uvicorn in the kiosk's own
asyncio loop (the `aio` thread, not the main thread).

One `uvicorn.Server` per `Listener` (address, optional TLS, the routers it
serves), each run as a task of the loop that calls `WebHost.start()`; never
`uvicorn.run`, which wants the main thread and installs signal handlers. The
host binds the listening sockets itself, so a taken port is a clear
`ListenError` (an `OSError`) from `start()` instead of uvicorn's `sys.exit`.

Websockets go through uvicorn's "websockets-sansio" implementation (a small
subclass of it, `_WebSocketProtocol`, see there); the plain "websockets" one
uses websockets' legacy API.

Every listener answers `GET /healthz` with `{"ok": true, ...}` (plus what the
`health` callable returns). No `Server` header, no /docs or /openapi.json.
Access lines go to the "mirror.web" logger at INFO; uvicorn's own access log
is off and its "uvicorn.error" logger is kept at WARNING (startup chatter and
per-websocket lines would duplicate ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import h11
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("mirror.web")

HealthFn = Callable[[], dict]


@dataclass
class Listener:
    """One address the host listens on and what it serves there.

    Give `routers` (mounted on a fresh FastAPI app without docs) or a ready
    `app`; either way the host adds `GET /healthz`."""
    name: str
    host: str
    port: int                                   # 0 = any free port (see WebHost.address)
    tls_cert: str = ""                          # PEM certificate; empty = plain http
    tls_key: str = ""
    routers: Sequence[APIRouter] = ()
    app: FastAPI | None = None
    ws_max_size: int = 1 << 20                  # a bigger websocket message closes the socket (1009)
    ws_ping_interval: float | None = 5.0
    ws_ping_timeout: float | None = 10.0
    access_log: bool = True                     # one INFO line per request on "mirror.web"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


class ListenError(OSError):
    """A listener's address could not be bound (port taken, address not local,
    no permission). `errno`/`strerror` are the system's; str() names the
    listener and its host:port."""

    def __init__(self, listener: Listener, err: OSError):
        super().__init__(err.errno, err.strerror or str(err))
        self.listener = listener.name
        self.host, self.port = listener.host, listener.port

    def __str__(self) -> str:
        return f"web listener {self.listener!r} cannot listen on {self.host}:{self.port}: {self.strerror}"


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's "websockets-sansio" implementation, which sends a websocket
    denial response (`WebSocket.send_denial_response`, e.g. our 403/429 at the
    handshake) correctly but then forgets that the handshake is over and logs
    "ASGI callable returned without completing handshake." at ERROR for every
    refusal (uvicorn 0.54; Kludex/uvicorn PR #3138). Mark it over once the
    denial's last body part is sent. Drop this class when uvicorn has the fix."""

    async def send(self, message) -> None:
        await super().send(message)
        if (message["type"] == "websocket.http.response.body" and not message.get("more_body", False)
                and getattr(self, "close_sent", False)):
            self.handshake_complete = True


class _GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with two limits it lacks: a connection that
    has not sent a whole request's headers within FIRST_REQUEST_S is closed
    (uvicorn's keep-alive timer, armed from the start; a complete request
    cancels it), and beyond MAX_CONNECTIONS on a listener a new connection is
    closed at once. Without them, idle or half-sent connections from the store
    network held open until the kiosk ran out of file descriptors."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_by = self.loop.time() + FIRST_REQUEST_S
        if len(self.connections) > MAX_CONNECTIONS:
            _say_full(self.client)
            self.transport.close()
            return
        self._close_at_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)            # which cancels the timer on any data
        if self.conn.their_state == h11.IDLE and not self.transport.is_closing():
            self._close_at_deadline()          # half a request's headers so far

    def on_response_complete(self) -> None:
        super().on_response_complete()         # arms uvicorn's keep-alive timer
        self._headers_by = self.loop.time() + self.timeout_keep_alive + FIRST_REQUEST_S

    def _close_at_deadline(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(max(0.0, self._headers_by - self.loop.time()),
                                                            self.timeout_keep_alive_handler)


FIRST_REQUEST_S = 10.0      # a request's headers arrive within this, or the connection goes
MAX_CONNECTIONS = 400       # per listener, websockets included (the unit allows 4096 open files)
_last_full_log = 0.0


def _say_full(client) -> None:
    """Log a refused connection at most once a minute (a flood would fill the journal)."""
    global _last_full_log
    now = time.monotonic()
    if now - _last_full_log > 60.0:
        _last_full_log = now
        log.warning("web host: more than %d connections on one listener; refusing new ones (the latest from %s)",
                    MAX_CONNECTIONS, client[0] if client else "?")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server as a task of a loop it does not own: it leaves the
    process's signal handlers alone (the app owns them) and says when its
    sockets are serving."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = asyncio.Event()

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


@dataclass
class _Running:
    listener: Listener
    server: _EmbeddedServer
    task: asyncio.Task
    address: tuple[str, int]
    stopping: bool = field(default=False)


class WebHost:
    def __init__(self, listeners: Sequence[Listener], *, health: HealthFn | None = None,
                 stop_timeout_s: float = 5.0, uvicorn_log_level: str | int = "warning"):
        names = [lst.name for lst in listeners]
        if len(set(names)) != len(names):
            raise ValueError(f"listener names must be unique: {names}")
        self.listeners = list(listeners)
        self.health = health
        self.stop_timeout_s = stop_timeout_s
        self.uvicorn_log_level = uvicorn_log_level
        self._apps = {lst.name: self._app_for(lst) for lst in self.listeners}
        self._running: dict[str, _Running] = {}

    # --- lifecycle (in the loop that serves) --------------------------------------
    async def start(self) -> None:
        """Serve every listener; returns once all of them accept connections.
        Raises `ListenError` (an OSError) if an address cannot be bound and
        RuntimeError for anything else (bad TLS files, ...); listeners already
        started are stopped again first."""
        if self._running:
            raise RuntimeError("the web host is already started")
        try:
            for lst in self.listeners:
                await self._start_one(lst)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop accepting, close open connections (websockets get 1012), wait
        up to stop_timeout_s for handlers to finish, then cancel the rest."""
        running, self._running = list(self._running.values()), {}
        if not running:
            return
        for r in running:
            r.stopping = True
            r.server.should_exit = True
        tasks = {r.task for r in running}
        _, pending = await asyncio.wait(tasks, timeout=self.stop_timeout_s + 1.0)
        for r in running:
            if r.task in pending:
                log.warning("web listener %r did not stop in time; cancelling it", r.listener.name)
                r.server.force_exit = True
                r.task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        for r in running:
            if r.task.done() and not r.task.cancelled() and r.task.exception() is not None:
                log.error("web listener %r failed while stopping: %s", r.listener.name, r.task.exception())
        log.info("web host stopped")

    @property
    def running(self) -> bool:
        return bool(self._running)

    def address(self, name: str) -> tuple[str, int]:
        """(host, port) a running listener is bound to (the real port for port 0)."""
        return self._running[name].address

    # --- one listener ------------------------------------------------------------
    async def _start_one(self, lst: Listener) -> None:
        app = _StrictTransport(self._apps[lst.name]) if lst.tls_cert else self._apps[lst.name]
        config = uvicorn.Config(
            _AccessLog(app, lst.name) if lst.access_log else app,
            host=lst.host, port=lst.port, http=_GuardedH11, ws=_WebSocketProtocol, interface="asgi3",
            lifespan="off", log_config=None, log_level=self.uvicorn_log_level, access_log=False,
            server_header=False, proxy_headers=False, ws_max_size=lst.ws_max_size,
            ws_ping_interval=lst.ws_ping_interval, ws_ping_timeout=lst.ws_ping_timeout,
            ws_per_message_deflate=False, timeout_graceful_shutdown=max(1, round(self.stop_timeout_s)),
            ssl_certfile=lst.tls_cert or None, ssl_keyfile=lst.tls_key or None)
        try:
            config.load()                                    # the TLS context is made here
        except (OSError, ssl.SSLError, ValueError) as e:
            what = f"cannot load TLS certificate {lst.tls_cert!r} / key {lst.tls_key!r}" if lst.tls_cert else \
                "cannot be set up"
            raise RuntimeError(f"web listener {lst.name!r}: {what}: {e}") from e
        socks = await _bind(lst)
        server = _EmbeddedServer(config)
        task = asyncio.get_running_loop().create_task(_serve(server, socks), name=f"web:{lst.name}")
        ready = asyncio.ensure_future(server.ready.wait())
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:                                # start() itself cancelled: leave nothing behind
            task.cancel()
            for s in socks:
                s.close()
            raise
        finally:
            ready.cancel()
        if not server.started:
            for s in socks:
                s.close()
            exc = task.exception() if task.done() else None
            if not task.done():
                task.cancel()
            raise RuntimeError(f"web listener {lst.name!r} on {lst.host}:{lst.port} did not start: {exc}") from exc
        host, port = socks[0].getsockname()[:2]
        running = _Running(lst, server, task, (host, port))
        self._running[lst.name] = running
        task.add_done_callback(lambda t, r=running: _ended(r, t))
        log.info("web listener %r on %s://%s:%d", lst.name, lst.scheme,
                 f"[{host}]" if ":" in host else host, port)

    def _app_for(self, lst: Listener) -> FastAPI:
        app = lst.app
        if app is None:
            app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, swagger_ui_oauth2_redirect_url=None)
        for router in lst.routers:
            app.include_router(router)
        if not any(getattr(route, "path", None) == "/healthz" for route in app.routes):
            app.add_api_route("/healthz", self._healthz, methods=["GET"], include_in_schema=False)
        return app

    async def _healthz(self) -> JSONResponse:
        body: dict[str, Any] = {"ok": True}
        if self.health is not None:
            try:
                body.update(self.health())
            except Exception:
                log.exception("health check failed")
                return JSONResponse({"ok": False, "error": "health check failed"}, status_code=503)
        return JSONResponse(body, status_code=200 if body.get("ok") else 503,
                            headers={"Cache-Control": "no-store"})


async def _bind(lst: Listener) -> list[socket.socket]:
    """Bound (not yet listening) sockets for a listener's host:port, one per
    address family the host name resolves to, as asyncio's create_server would."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(lst.host or None, lst.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError(lst, OSError(e.errno, f"cannot resolve {lst.host!r}: {e.strerror}")) from None
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            s = socket.socket(family, kind, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # restart while old sockets linger
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
    except OSError as e:
        for s in socks:
            s.close()
        raise ListenError(lst, e) from None
    return socks


async def _serve(server: _EmbeddedServer, socks: list[socket.socket]) -> None:
    # uvicorn reports some startup failures with sys.exit(); a SystemExit that
    # left this task would stop the whole loop, so it becomes an ordinary error
    try:
        await server.serve(sockets=socks)
    except SystemExit as e:
        raise RuntimeError(f"uvicorn exited with status {e.code}") from None


def _ended(r: _Running, task: asyncio.Task) -> None:
    if r.stopping or task.cancelled():
        return
    exc = task.exception()
    log.error("web listener %r stopped on its own%s", r.listener.name, f": {exc}" if exc else "")


HSTS = b"max-age=31536000"      # a year; not includeSubDomains: other hosts of the store are not ours to bind


class _StrictTransport:
    """ASGI middleware for a TLS listener: every HTTP response says to use https
    only (HSTS), so a browser that has once reached it is not talked back down
    to plain http on the store's network. Browsers ignore it on a bare IP address
    or a certificate they had to accept by hand."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_hsts(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"strict-transport-security" for k, _ in headers):
                    message = {**message, "headers": [*headers, (b"strict-transport-security", HSTS)]}
            await send(message)

        await self.app(scope, receive, with_hsts)


class _AccessLog:
    """ASGI middleware: one line per request or websocket handshake on the
    "mirror.web" logger (INFO; /healthz at DEBUG). Paths only: no query string
    (and a join link's token is in the fragment, which never reaches a server)."""

    def __init__(self, app, listener: str):
        self.app = app
        self.listener = listener

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        who = f"{client[0]}:{client[1]}" if client else "-"
        # the path as sent (still percent-encoded), so no decoded control character reaches the log
        path = scope.get("raw_path", b"").decode("latin-1") or repr(scope["path"])[1:-1]
        what = f"{scope.get('method', 'GET')} {path}" if kind == "http" else f"WebSocket {path}"
        level = logging.DEBUG if scope["path"] == "/healthz" else logging.INFO
        state = {"accepted": False}

        async def logged_send(message) -> None:
            t = message["type"]
            status = None
            if t in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif t == "websocket.accept":
                status, state["accepted"] = 101, True
            elif t == "websocket.close" and not state["accepted"]:
                status = 403                                   # closed before accepting: uvicorn sends 403
            if status is not None:
                log.log(level, '%s %s - "%s" %d', self.listener, who, what, status)
            await send(message)

        await self.app(scope, receive, logged_send)


async def send_if_open(ws: WebSocket, message: dict, who: str) -> None:
    """Send an ASGI message on a websocket unless it is already gone: the peer may
    have closed it, or uvicorn may just have closed it itself (too big a message,
    no pong) a moment before the handler hears of it. `who` names it in the log."""
    if ws.application_state is not WebSocketState.CONNECTED or ws.client_state is not WebSocketState.CONNECTED:
        return
    try:
        await ws.send(message)
    except (WebSocketDisconnect, OSError, RuntimeError) as e:
        log.debug("%s: websocket already closed (%s)", who, type(e).__name__)
