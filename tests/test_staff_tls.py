"""The staff listener over TLS: the config asks for it off loopback, and the
login cookie is Secure when it is on (the console in the web host, in process)."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl

import pytest

from mirror.core import config
from mirror.core.bus import EventBus
from mirror.staff.service import StaffFeature
from mirror.storage.staff import StaffUsers
from mirror.web.host import Listener, WebHost
from tests.kiosk_proc import free_port
from tests.test_call_server import cert  # noqa: F401  (the fixture)


def test_a_staff_listener_off_loopback_needs_tls():
    with pytest.raises(config.ConfigError) as e:
        config.load(None, env={"MIRROR_STAFF_HOST": "0.0.0.0"})
    assert e.value.problems[0].startswith("staff.tls_cert: empty while staff.host is '0.0.0.0'")
    with pytest.raises(config.ConfigError) as e:
        config.load(None, env={"MIRROR_STAFF_TLS_CERT": "nope.pem"})
    assert "staff.tls_key: set both" in " ".join(e.value.problems)


def test_over_tls_the_login_cookie_is_secure(cert, tmp_path):      # noqa: F811
    port = free_port()
    db = tmp_path / "orders.db"
    with StaffUsers(db) as users:
        users.add_user("Anna", "27182")
    cfg = config.load(None, env={"MIRROR_STAFF_PORT": str(port), "MIRROR_STAFF_TLS_CERT": cert[0],
                                 "MIRROR_STAFF_TLS_KEY": cert[1], "MIRROR_CHECKOUT_DB_PATH": str(db)})
    feature = StaffFeature(cfg, EventBus())
    host = WebHost([Listener("staff", "127.0.0.1", port, tls_cert=cert[0], tls_key=cert[1],
                             routers=[feature.router])])
    client = ssl.create_default_context(cafile=cert[0])
    client.check_hostname = False

    def login(pin: str):
        c = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=10)
        try:
            c.request("POST", "/staff/login", body=json.dumps({"pin": pin}),
                      headers={"Content-Type": "application/json", "Origin": f"https://127.0.0.1:{port}"})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    async def scenario():
        await host.start()
        feature.start(asyncio.get_running_loop())
        try:
            status, headers, body = await asyncio.to_thread(login, "27182")
            assert status == 200, body
            flags = [f.strip().lower() for f in headers["Set-Cookie"].split(";")]
            assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags
            assert headers["Strict-Transport-Security"] == "max-age=31536000"
            status, _, _ = await asyncio.to_thread(login, "00000")
            assert status == 401
        finally:
            await host.stop()
    try:
        asyncio.run(scenario())
    finally:
        feature.stop()
