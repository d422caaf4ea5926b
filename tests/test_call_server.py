"""The call's web side mounted on the kiosk's web host, over TLS on loopback:
the join page with its security headers, /healthz, the Origin check at the
handshake, the join refusal for a forged token, the message size limit, and a
taken port, as a non-browser client sees them."""

import asyncio
import http.client
import json
import logging
import socket
import ssl
import subprocess

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from call import protocol as P
from call.server import CallServer, allowed_origins
from call.tokens import JoinTokens
from mirror.core.config import CallConfig
from mirror.web.host import ListenError, Listener, WebHost


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cert(tmp_path):
    crt, key = tmp_path / "mirror.crt", tmp_path / "mirror.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return str(crt), str(key)


def call_host(cfg, server: CallServer, **kw) -> WebHost:
    """The web host as the kiosk builds it for the call: one listener."""
    return WebHost([Listener("call", cfg.host, cfg.port, tls_cert=cfg.tls_cert, tls_key=cfg.tls_key,
                             routers=[server.router()], ws_max_size=P.MAX_MESSAGE_BYTES)], **kw)


def no_errors_logged(caplog) -> bool:
    """Refusals, closes and the shutdown are normal: nothing at ERROR, no traceback."""
    return not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_tls_join_page_origin_check_and_forged_token(cert, caplog):
    port = free_port()
    cfg = CallConfig(port=port, tls_cert=cert[0], tls_key=cert[1])
    base = f"https://127.0.0.1:{port}"
    events = []
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: events.append(n),
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))
    host = call_host(cfg, server, health=lambda: {"call": server.status()})
    client_ssl = ssl.create_default_context(cafile=cert[0])
    client_ssl.check_hostname = False

    async def scenario():
        await host.start()
        try:
            assert host.address("call") == ("127.0.0.1", port)

            def get(path):
                c = http.client.HTTPSConnection("127.0.0.1", port, context=client_ssl, timeout=5)
                try:
                    c.request("GET", path)
                    r = c.getresponse()
                    return r.status, r.headers, r.read()             # case-insensitive headers
                finally:
                    c.close()
            status, headers, body = await asyncio.to_thread(get, "/join")
            assert status == 200 and b"/join.js" in body
            assert headers["Content-Type"].startswith("text/html")
            assert headers["Referrer-Policy"] == "no-referrer" and "frame-ancestors 'none'" in \
                headers["Content-Security-Policy"]
            assert "Server" not in headers
            status, headers, body = await asyncio.to_thread(get, "/join.js")
            assert status == 200 and headers["Content-Type"].startswith("text/javascript")
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert (await asyncio.to_thread(get, "/favicon.ico"))[0] == 204
            for path in ("/etc/passwd", "/../etc/passwd", "/join/../../etc/passwd", "/%2e%2e/etc/passwd",
                         "/docs", "/openapi.json", "/ws/join"):
                assert (await asyncio.to_thread(get, path))[0] == 404, path
            status, headers, body = await asyncio.to_thread(get, "/healthz")
            assert status == 200 and headers["Content-Type"] == "application/json"
            health = json.loads(body)
            assert health["ok"] is True and health["call"]["friends"] == []
            with pytest.raises(InvalidStatus) as e:
                async with connect(f"wss://127.0.0.1:{port}/ws/join", ssl=client_ssl, origin="https://evil.example"):
                    pass
            assert e.value.response.status_code == 403
            async with connect(f"wss://127.0.0.1:{port}/ws/join", ssl=client_ssl, origin=base) as ws:
                await ws.send(json.dumps({"type": "join", "token": "abc.def", "name": "Eve"}))
                assert json.loads(await ws.recv()) == {"type": "error", "reason": "forged"}
                await ws.wait_closed()
                assert ws.close_code == 4001
            # a message over the limit closes the socket at once (1009), before the protocol sees it
            async with connect(f"wss://127.0.0.1:{port}/ws/join", ssl=client_ssl, origin=base) as ws:
                await ws.send("x" * (P.MAX_MESSAGE_BYTES + 1))
                await asyncio.wait_for(ws.wait_closed(), 5)
                assert ws.close_code == 1009
        finally:
            await server.close()
            await host.stop()

    asyncio.run(scenario())
    assert "call.refused" in events
    assert no_errors_logged(caplog)


def test_shopper_leaving_ends_a_waiting_friend_and_attempts_are_rate_limited(caplog):
    port = free_port()
    cfg = CallConfig(port=port, join_attempts_per_minute=3)
    base = f"http://127.0.0.1:{port}"
    events = []
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: events.append((n, d)),
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))
    host = call_host(cfg, server)

    async def scenario():
        await host.start()
        try:
            await server.new_session("shopper-1")
            link = server.issue_link()
            assert link["url"].startswith(f"{base}/join#")
            token = link["url"].split("#", 1)[1]
            async with connect(f"ws://127.0.0.1:{port}/ws/join", origin=base) as ws:
                await ws.send(json.dumps({"type": "join", "token": token, "name": "Jane"}))
                assert json.loads(await ws.recv()) == {"type": "lobby", "name": "Jane"}
                await server.new_session(None)                       # the shopper walked away
                assert json.loads(await ws.recv()) == {"type": "ended", "reason": "shopper_left"}
                await ws.wait_closed()
            for _ in range(100):                                     # the handler lets go right after
                if not server.status()["friends"]:
                    break
                await asyncio.sleep(0.02)
            assert server.status()["friends"] == []
            with pytest.raises(LookupError):
                server.issue_link()                                  # no shopper, no link
            for _ in range(2):                                       # 3 attempts a minute: 1 used above
                async with connect(f"ws://127.0.0.1:{port}/ws/join", origin=base):
                    pass
            with pytest.raises(InvalidStatus) as e:
                async with connect(f"ws://127.0.0.1:{port}/ws/join", origin=base):
                    pass
            assert e.value.response.status_code == 429
        finally:
            await server.close()
            await host.stop()

    asyncio.run(scenario())
    assert ("call.ended", {"name": "Jane", "reason": "shopper_left"}) in events
    assert no_errors_logged(caplog)


def test_deep_nesting_and_non_finite_numbers_get_a_clean_bad_message(caplog):
    port = free_port()
    cfg = CallConfig(port=port)
    base = f"http://127.0.0.1:{port}"
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: None,
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))
    host = call_host(cfg, server)
    deep = "[" * 32000 + "]" * 32000                                 # within the size limit, too deep to parse
    assert len(deep) < P.MAX_MESSAGE_BYTES

    async def scenario():
        await host.start()
        try:
            for raw in (deep, '{"type":"join","token":' + deep[2:] + "}", '{"type":"join","token":NaN}',
                        '{"type":"join","token":"a.b","n":-Infinity}', '{"type":"join","n":1e999}'):
                async with connect(f"ws://127.0.0.1:{port}/ws/join", origin=base) as ws:
                    await ws.send(raw)
                    assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == \
                        {"type": "error", "reason": "bad_message"}, raw[:40]
                    await asyncio.wait_for(ws.wait_closed(), 5)
                    assert ws.close_code == 4007
        finally:
            await host.stop()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert no_errors_logged(caplog)
    assert not [r for r in caplog.records if "Traceback" in r.getMessage() or "RecursionError" in r.getMessage()]


def test_a_silent_websocket_is_closed_when_the_join_timeout_passes():
    port = free_port()
    cfg = CallConfig(port=port, join_timeout_s=1.0)
    base = f"http://127.0.0.1:{port}"
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: None,
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))
    host = call_host(cfg, server)

    async def scenario():
        await host.start()
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/join", origin=base) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 4)) == {"type": "error", "reason": "timeout"}
                await ws.wait_closed()
                assert ws.close_code == 4010
        finally:
            await host.stop()

    asyncio.run(scenario())


def test_a_waiting_friend_is_hung_up_when_the_mirror_closes():
    port = free_port()
    cfg = CallConfig(port=port)
    base = f"http://127.0.0.1:{port}"
    events = []
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: events.append((n, d)),
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))
    host = call_host(cfg, server)

    async def scenario():
        await host.start()
        try:
            await server.new_session("shopper-1")
            token = server.issue_link()["url"].split("#", 1)[1]
            async with connect(f"ws://127.0.0.1:{port}/ws/join", origin=base) as ws:
                await ws.send(json.dumps({"type": "join", "token": token, "name": "Jane"}))
                assert json.loads(await ws.recv()) == {"type": "lobby", "name": "Jane"}
                await server.close()
                assert json.loads(await ws.recv()) == {"type": "ended", "reason": "mirror_closed"}
                await ws.wait_closed()
                assert ws.close_code == 1000
        finally:
            await host.stop()
        assert not host.running

    asyncio.run(scenario())
    assert ("call.ended", {"name": "Jane", "reason": "mirror_closed"}) in events


def test_a_taken_port_is_a_clear_error_and_nothing_stays_open():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    first = free_port()
    host = WebHost([Listener("status", "127.0.0.1", first), Listener("call", "127.0.0.1", busy)])

    async def scenario():
        with pytest.raises(ListenError) as e:
            await host.start()
        assert isinstance(e.value, OSError) and e.value.strerror
        assert f"127.0.0.1:{busy}" in str(e.value) and "'call'" in str(e.value)
        assert not host.running
        with socket.socket() as s:                                   # the first listener let its port go
            s.bind(("127.0.0.1", first))

    try:
        asyncio.run(scenario())
    finally:
        taken.close()


def test_idle_and_surplus_connections_are_closed_and_the_host_still_answers(monkeypatch):
    """Connections that send nothing (or half a request) used to stay open until the
    kiosk ran out of file descriptors; now they go after FIRST_REQUEST_S, and those
    past MAX_CONNECTIONS at once."""
    import select
    import mirror.web.host as web_host
    monkeypatch.setattr(web_host, "FIRST_REQUEST_S", 1.5)
    monkeypatch.setattr(web_host, "MAX_CONNECTIONS", 4)
    port = free_port()
    host = WebHost([Listener("status", "127.0.0.1", port)])

    def closed(socks: list, within: float) -> list[bool]:
        """Which of `socks` the host has closed (readable: EOF, as none was answered)."""
        ready, _, _ = select.select(socks, [], [], within)
        return [s in ready for s in socks]

    def health() -> int:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            c.request("GET", "/healthz")
            return c.getresponse().status
        finally:
            c.close()

    async def scenario():
        await host.start()
        loop = asyncio.get_running_loop()
        idle = []
        try:
            for _ in range(6):
                idle.append(socket.create_connection(("127.0.0.1", port)))
                await asyncio.sleep(0.02)
            idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")        # half a request
            await asyncio.sleep(0.3)
            # the two beyond the cap were closed at once; the first four are still open ...
            assert await loop.run_in_executor(None, closed, idle, 0.05) == [False] * 4 + [True] * 2
            # ... until the first-request timeout, the half-sent one included
            await asyncio.sleep(1.5)
            assert await loop.run_in_executor(None, closed, idle[:4], 1.0) == [True] * 4
            assert all(s.recv(64) == b"" for s in idle)
            for s in idle:
                s.close()
            await asyncio.sleep(0.1)
            assert await loop.run_in_executor(None, health) == 200
        finally:
            for s in idle:
                s.close()
            await host.stop()

    asyncio.run(scenario())
