"""The call's web server on its own, over TLS on loopback: the join page with
its security headers, the Origin check at the handshake, and the join refusal
for a forged token, as a non-browser client sees them."""

import asyncio
import dataclasses
import http.client
import json
import socket
import ssl
import subprocess

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from call.server import CallServer, allowed_origins
from call.tokens import JoinTokens
from mirror.core.config import CallConfig


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


def test_tls_join_page_origin_check_and_forged_token(cert):
    port = free_port()
    cfg = dataclasses.replace(CallConfig(), port=port, tls_cert=cert[0], tls_key=cert[1])
    base = f"https://127.0.0.1:{port}"
    events = []
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: events.append(n),
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))
    client_ssl = ssl.create_default_context(cafile=cert[0])
    client_ssl.check_hostname = False

    async def scenario():
        await server.start()
        try:
            def get(path):
                c = http.client.HTTPSConnection("127.0.0.1", port, context=client_ssl, timeout=5)
                c.request("GET", path)
                r = c.getresponse()
                return r.status, dict(r.getheaders()), r.read()
            status, headers, body = await asyncio.to_thread(get, "/join")
            assert status == 200 and b"/join.js" in body
            assert headers["Content-Type"].startswith("text/html")
            assert headers["Referrer-Policy"] == "no-referrer" and "frame-ancestors 'none'" in \
                headers["Content-Security-Policy"]
            assert (await asyncio.to_thread(get, "/etc/passwd"))[0] == 404
            with pytest.raises(InvalidStatus) as e:
                async with connect(f"wss://127.0.0.1:{port}/ws/join", ssl=client_ssl, origin="https://evil.example"):
                    pass
            assert e.value.response.status_code == 403
            async with connect(f"wss://127.0.0.1:{port}/ws/join", ssl=client_ssl, origin=base) as ws:
                await ws.send(json.dumps({"type": "join", "token": "abc.def", "name": "Eve"}))
                assert json.loads(await ws.recv()) == {"type": "error", "reason": "forged"}
                await ws.wait_closed()
                assert ws.close_code == 4001
        finally:
            await server.stop()

    asyncio.run(scenario())
    assert "call.refused" in events


def test_shopper_leaving_ends_a_waiting_friend_and_attempts_are_rate_limited():
    port = free_port()
    cfg = dataclasses.replace(CallConfig(), port=port, join_attempts_per_minute=3)
    base = f"http://127.0.0.1:{port}"
    events = []
    server = CallServer(cfg, tokens=JoinTokens(b"s" * 32), publish=lambda n, **d: events.append((n, d)),
                        peer_factory=None, public_base=base, origins=allowed_origins(base, ""))

    async def scenario():
        await server.start()
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
            await server.stop()

    asyncio.run(scenario())
    assert ("call.ended", {"name": "Jane", "reason": "shopper_left"}) in events
