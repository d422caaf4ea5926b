"""The staff console (issue 10, first slice), against a real kiosk (`mirror run
--headless` on a photo of a person) and, for the page itself, a real headless
Chromium through Playwright.

One kiosk serves the whole module; the tests run in file order. Login
failures are counted per client address, so the rate-limit test logs in from
127.0.0.2 (any 127/8 address reaches a 127.0.0.1 listener on Linux) and the
other tests' logins from 127.0.0.1 are not affected by it.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from mirror.harness.call_bench import CHROMIUM_FLAGS
from tests.kiosk_proc import ROOT, control_line, free_port, kiosk_config, staff_only, start_kiosk, stop_kiosk

PIN, OTHER_PIN = "48213", "52917"
REPLY = "Size M is out - bringing the L and the S"
H, W = 480, 270                                     # kiosk_config's screen
CAROUSEL = (0.545, 0.655)                           # render/overlays.py SUGGESTIONS_BAND
TOAST = (0.56, 0.68)                                # the message toast is centred at 0.62 of the height


@dataclass
class Mirror:
    folder: Path
    cfg: Path
    port: int
    proc: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "mirror", *args, "--config", str(self.cfg)], cwd=ROOT,
                           input=stdin, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)

    def control(self, msg: dict) -> dict:
        return control_line(self.folder / "control.sock", msg)

    def snapshot(self, name: str) -> np.ndarray:
        """`mirror snapshot --out`: the composed picture, camera blanked while she is there."""
        out = self.folder / f"{name}.png"
        self.cli("snapshot", "--out", str(out))
        return cv2.imread(str(out))

    def quick_snapshot(self) -> np.ndarray:
        """The same picture straight from the control socket (`snapshot`, what `mirror snapshot`
        asks for) without starting a Python: for a message that shows for 2.5 s only."""
        png = base64.b64decode(self.control({"cmd": "snapshot"})["png_b64"])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def http(self, method: str, path: str, body=None, *, cookie: str | None = None, origin: str | None = "own",
             raw: bytes | None = None, source: str = "127.0.0.1") -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15, source_address=(source, 0))
        headers = {}
        if origin is not None:
            headers["Origin"] = self.base if origin == "own" else origin
        if cookie:
            headers["Cookie"] = cookie
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def login(self, pin: str = PIN) -> str:
        status, headers, body = self.http("POST", "/staff/login", {"pin": pin})
        assert status == 200, body
        return headers["Set-Cookie"].split(";")[0]

    def state(self, cookie: str) -> dict:
        status, _, body = self.http("GET", "/staff/api/state", cookie=cookie)
        assert status == 200, body
        return json.loads(body)


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = pred()
            if isinstance(got, np.ndarray) or got:
                return got
        except (OSError, AssertionError, ValueError, KeyError, subprocess.SubprocessError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s (last problem: {last!r})")


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


@pytest.fixture(scope="module")
def mirror(media, tmp_path_factory):
    folder = tmp_path_factory.mktemp("staff")
    frames = folder / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), cv2.imread(str(media / "images" / "pointing_up.jpg")))
    port = free_port()
    cfg = kiosk_config(folder, frames, staff_only(folder, port))
    proc = None
    m = Mirror(folder, cfg, port, proc)
    # the staff users and the catalogue, as a store sets them up: through the command line
    m.cli("staff", "add-user", "Anna", "--pin-stdin", stdin=PIN + "\n")
    m.cli("staff", "add-user", "Ben", "--pin-stdin", stdin=OTHER_PIN + "\n")
    m.cli("catalog", "import", str(ROOT / "config" / "catalog.csv"))
    m.proc = start_kiosk(cfg)
    try:
        wait(lambda: m.status()["present"], 90, "shopper seen by the kiosk")
        wait(lambda: json.loads(urllib.request.urlopen(f"{m.base}/healthz", timeout=2).read())["ok"], 30,
             "staff listener")
        yield m
        assert m.proc.poll() is None, "the kiosk stopped during the tests"
    finally:
        stop_kiosk(m.proc)


# --- the pure parts ------------------------------------------------------------------------
def test_sessions_expire_and_tokens_are_random():
    from mirror.staff.auth import Sessions
    sessions = Sessions(ttl_s=60)
    a, b = sessions.create("Anna", 1000.0), sessions.create("Ben", 1000.0)
    assert a.token != b.token and len(a.token) >= 40
    assert sessions.get(a.token, 1059.0).who == "Anna"
    assert sessions.get(a.token, 1060.0) is None and sessions.get(a.token, 1000.0) is None    # gone for good
    assert sessions.get("", 1000.0) is None and sessions.get("x" * 500, 1000.0) is None
    assert sessions.drop(b.token) is b and sessions.get(b.token, 1001.0) is None


def test_login_limiter_counts_failures_per_address_in_a_minute():
    from mirror.staff.auth import LoginLimiter
    lim = LoginLimiter()
    for i in range(4):
        lim.failed("10.0.0.1", 100.0 + i)
    assert not lim.blocked("10.0.0.1", 104.0)
    lim.failed("10.0.0.1", 104.0)
    lim.failed("10.0.0.2", 104.0)
    lim.forgive("10.0.0.2", 104.0)                       # a right PIN takes its attempt back
    assert lim.blocked("10.0.0.1", 104.5) and lim.retry_after("10.0.0.1", 104.5) == 56
    assert not lim.blocked("10.0.0.2", 104.5)
    assert not lim.blocked("10.0.0.1", 160.0)            # the first failure is a minute old


def test_only_the_first_refusal_of_a_window_is_worth_auditing():
    from mirror.staff.auth import LoginLimiter
    lim = LoginLimiter()
    assert lim.first_refusal("10.0.0.1", 100.0) and lim.first_refusal("10.0.0.2", 100.5)
    assert not lim.first_refusal("10.0.0.1", 101.0) and not lim.first_refusal("10.0.0.1", 159.9)
    assert lim.first_refusal("10.0.0.1", 160.0)           # a minute on: a new episode


def test_login_limiter_holds_off_guesses_spread_over_many_addresses():
    """Forty addresses at five wrong PINs each tried 200 PINs a minute (an attacker probe)."""
    from mirror.staff.auth import LOGIN_FAILURES_PER_MINUTE_ALL, LoginLimiter
    lim = LoginLimiter()
    for i in range(LOGIN_FAILURES_PER_MINUTE_ALL):
        assert not lim.blocked(f"10.0.1.{i}", 100.0 + i * 0.1)
        lim.failed(f"10.0.1.{i}", 100.0 + i * 0.1)
    assert lim.blocked("10.0.2.1", 104.0) and lim.retry_after("10.0.2.1", 104.0) == 56    # a new address too
    lim.forgive("10.0.1.29", 102.9)                       # a right PIN takes its place back
    assert not lim.blocked("10.0.2.1", 104.0)
    assert not lim.blocked("10.0.2.1", 161.0)


def test_the_allowed_origins_are_the_listener_itself_and_the_configured_ones():
    from mirror.staff.auth import allowed_origins, origin_problem
    own = allowed_origins("http", "127.0.0.1", 8080, "https://Tablet.store.lan:8443/")
    assert {"http://127.0.0.1:8080", "http://localhost:8080", "https://tablet.store.lan:8443"} <= own
    assert origin_problem("http://127.0.0.1:8080", own) is None
    assert origin_problem("http://127.0.0.1:8081", own) and origin_problem("https://127.0.0.1:8080", own)
    assert "no Origin" in origin_problem(None, own) and origin_problem("null", own)
    assert allowed_origins("http", "0.0.0.0", 80, "") == set()        # a wildcard host names nobody
    assert allowed_origins("http", "mirror.lan", 80, "") == {"http://mirror.lan:80", "http://mirror.lan"}


def test_the_card_follows_the_bus_and_forgets_her_when_she_leaves():
    from mirror.staff.service import MirrorCard
    card = MirrorCard()
    cart = {"items": [{"sku": "DRESS-0930", "name": "Wrap dress", "colour": "Emerald", "size": "M",
                       "price": "79.00", "qty": 1}], "reserve": False}
    card.handle("session.started", {"id": "s1"}, 10.0)
    card.handle("cart.changed", {"cart": cart, "session_id": "s1"}, 10.1)
    card.handle("staff.called", {"product": "DRESS-0930"}, 11.0)
    card.handle("call.knock", {"conn": "f1", "name": "Jane"}, 12.0)
    card.handle("suggestions.pushed", {"items": [{"sku": "SHOE-0301", "name": "Heels", "price": "95.00",
                                                  "image": "/x/shoe-0301.png", "colour": "Nude", "size": "",
                                                  "in_stock": None}], "by": "Anna", "push_id": "p1",
                                       "t_sent": 1.0}, 13.0)
    card.handle("suggestion.taken", {"sku": "SHOE-0301", "name": "Heels", "price": "95.00", "colour": "Nude",
                                     "size": "", "by": "shopper"}, 14.0)
    s = card.snapshot(20.0)
    assert s["present"] and s["product"] == {"sku": "DRESS-0930", "name": "Wrap dress", "price": "79.00"}
    assert (s["colour"], s["size"], s["call"]["state"], s["call"]["name"]) == ("Emerald", "M", "knocking", "Jane")
    [req] = s["requests"]
    assert req["open"] and req["age_s"] == 9.0 and req["product"]["name"] == "Wrap dress" and req["size"] == "M"
    assert s["suggestions"][0]["image"] == "/staff/images/shoe-0301.png"        # a console URL, not a path
    assert s["suggestions"][0]["taken"] and s["accepted"][0]["pushed_by"] == "Anna"
    assert [t["event"] for t in s["timeline"]] == ["session.started", "staff.called", "call.knock",
                                                  "suggestions.pushed", "suggestion.taken"]
    assert set(s["timeline"][0]) == {"event", "t"}
    card.handle("session.ended", {"id": "s1", "wiped": True}, 30.0)
    s = card.snapshot(31.0)
    assert not s["present"] and s["ended"] and s["ended_at"] == 30.0
    assert s["requests"] == s["suggestions"] == s["accepted"] == [] and s["call"] is None and s["profile"] is None
    assert [t["event"] for t in s["timeline"]] == ["session.ended"]


def test_the_mirror_says_a_staff_reply():
    from mirror.core import config
    from mirror.core.bus import EventBus
    from mirror.core.session import Session
    bus = EventBus()
    session = Session.from_config(config.load(None, env={}))
    session.attach(bus)
    bus.publish("staff.replied", request_id="r1", text=REPLY, by="Anna")
    bus.dispatch()
    assert session.message == REPLY


# --- against a real kiosk --------------------------------------------------------------------
def test_without_a_login_there_is_nothing(mirror):
    status, headers, body = mirror.http("GET", "/staff", origin=None)
    assert status == 200 and b'id="pin"' in body and b"console.js" not in body      # only the login page
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    for path in ("/staff/api/state", "/staff/api/catalog", "/staff/api/catalog?q=dress",
                 "/staff/images/dress-0930.png"):
        status, _, body = mirror.http("GET", path, origin=None)
        assert status == 401 and "log in" in error_of(body), (path, body)
    status, _, body = mirror.http("POST", "/staff/api/suggestions", {"skus": ["SHOE-0301"]})
    assert status == 401
    status, _, body = mirror.http("POST", "/staff/api/requests/r1/reply", {"text": "hi"})
    assert status == 401
    status, _, _ = mirror.http("GET", "/staff/api/state", cookie="mirror_staff=forged-token", origin=None)
    assert status == 401
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"ws://127.0.0.1:{mirror.port}/staff/ws", origin=mirror.base, open_timeout=10).close()
    assert refused.value.response.status_code == 401
    for path in ("/openapi.json", "/docs", "/redoc"):                 # no API description on this listener
        assert mirror.http("GET", path, origin=None)[0] == 404


def test_a_foreign_or_missing_origin_is_refused(mirror):
    for origin in ("http://evil.example", f"http://127.0.0.1:{mirror.port + 1}", "null", None):
        status, headers, body = mirror.http("POST", "/staff/login", {"pin": PIN}, origin=origin)
        assert status == 403 and "Set-Cookie" not in headers, (origin, body)
    cookie = mirror.login()
    status, _, body = mirror.http("POST", "/staff/api/suggestions", {"skus": ["SHOE-0301"]}, cookie=cookie,
                                  origin="http://evil.example")
    assert status == 403 and "Origin" in error_of(body)
    status, _, _ = mirror.http("POST", "/staff/api/requests/r1/reply", {"text": "hi"}, cookie=cookie,
                               origin="https://evil.example")
    assert status == 403
    status, _, _ = mirror.http("POST", "/staff/logout", cookie=cookie, origin="http://evil.example")
    assert status == 403
    url = f"ws://127.0.0.1:{mirror.port}/staff/ws"
    for origin in ("http://evil.example", None):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, origin=origin, additional_headers={"Cookie": cookie}, open_timeout=10).close()
        assert refused.value.response.status_code == 403
    assert mirror.state(cookie)["user"] == "Anna"                    # the session was never touched


def test_bad_input_gets_a_clear_answer_and_the_kiosk_runs_on(mirror):
    cookie = mirror.login()
    post = lambda path, **kw: mirror.http("POST", path, cookie=cookie, **kw)     # noqa: E731
    status, _, body = post("/staff/api/suggestions", raw=b'{"skus": ["SHOE-0301"], ' + b" " * 70_000 + b"}")
    assert status == 413 and "64 KiB" in error_of(body)
    status, _, body = post("/staff/api/suggestions", raw=b"x" * 3_000_000)
    assert status == 413
    status, _, body = post("/staff/api/suggestions", raw=b'{"skus": ["SHOE-0301"')
    assert status == 400 and error_of(body).startswith("malformed JSON")
    status, _, body = post("/staff/api/suggestions", raw=b"")
    assert status == 400 and error_of(body).startswith("malformed JSON")
    status, _, body = post("/staff/api/suggestions", body={"skus": ["SHOE-0301"], "push": True})
    assert status == 422 and "push: Extra inputs are not permitted" in error_of(body)
    status, _, body = post("/staff/api/suggestions", body={"skus": []})
    assert status == 422 and error_of(body).startswith("skus:")
    status, _, body = post("/staff/api/suggestions", body={"skus": "SHOE-0301"})
    assert status == 422
    status, _, body = post("/staff/api/suggestions", body={"skus": ["NOPE-1", "SHOE-0301"]})
    assert status == 404 and "NOPE-1" in error_of(body)
    status, _, body = post("/staff/api/suggestions", body={"skus": ["SHOE-0301"], "session_id": "gone"})
    assert status == 409 and "stale" in error_of(body)
    status, _, body = post("/staff/api/requests/r999-none/reply", body={"text": "On my way"})
    assert status == 404
    status, _, body = post("/staff/api/requests/r999-none/reply", body={"text": "x" * 201})
    assert status == 422
    status, _, body = mirror.http("POST", "/staff/login", raw=b"{pin: 48213}")
    assert status == 400 and error_of(body).startswith("malformed JSON")
    status, _, body = mirror.http("POST", "/staff/login", body={"pin": PIN, "name": "Anna"})
    assert status == 422
    with ws_connect(f"ws://127.0.0.1:{mirror.port}/staff/ws", origin=mirror.base,
                    additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        first = json.loads(ws.recv(10))
        assert first["type"] == "state" and first["user"] == "Anna" and first["state"]["present"] is True
        for bad in ("not json", "[1, 2]", '{"type": "launch"}', b"\x00\x01"):
            ws.send(bad)
            reply = json.loads(ws.recv(10))
            assert reply["type"] == "error" and reply["reason"], (bad, reply)
        ws.send('{"type": "ping"}')
        assert json.loads(ws.recv(10)) == {"type": "pong"}
    assert mirror.status()["camera"] == "ok" and mirror.proc.poll() is None


def _band(img: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    return img[round(H * band[0]):round(H * band[1])].astype(int)


def _changed(a: np.ndarray, b: np.ndarray, band: tuple[float, float]) -> float:
    return float((np.abs(_band(a, band) - _band(b, band)).sum(2) > 30).mean())


def picture_pixels(img: np.ndarray) -> int:
    """Pixels of a catalogue picture's light background (BGR 239, 243, 245) in the left part of the
    carousel's band, where the card shows the product's picture (as tests/test_suggestions.py)."""
    band = _band(img, CAROUSEL)[:, :round(W * 0.2)]
    return int((np.abs(band - (239, 243, 245)).sum(2) < 12).sum())


def page_problems(page) -> list[str]:
    """The page's script errors and console errors, collected as they happen."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # Chromium reports every 4xx answer as a console error (a wrong PIN's 401 is one): not a problem
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    return problems


def test_the_console_in_chromium_pushes_suggestions_and_answers_a_request(mirror):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 800, "height": 1280})        # a tablet, portrait
            page = ctx.new_page()
            problems = page_problems(page)
            page.goto(f"{mirror.base}/staff")

            # a wrong PIN, then the right one, on the page's keypad
            page.fill("#pin", "99999")
            page.click("#go")
            expect(page.locator("#msg")).to_have_text("Wrong PIN")
            for digit in PIN:
                page.click(f"#keypad button:text-is('{digit}')")
            page.click("#go")
            expect(page.locator("#presence")).to_have_text(re.compile("someone at the mirror", re.I), timeout=20_000)
            expect(page.locator("#conn")).to_have_text("live")
            expect(page.locator("#user")).to_have_text("Anna")
            [cookie] = ctx.cookies()
            assert cookie["name"] == "mirror_staff" and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
            assert cookie["path"] == "/staff" and cookie["secure"] is False                 # plain http here
            assert page.evaluate("document.cookie") == ""                                  # HttpOnly: no script sees it
            wait(lambda: mirror.status()["staff_clients"] >= 1, 10, "the console counted in mirror status")
            state = json.loads(page.request.get(f"{mirror.base}/staff/api/state").body())
            assert state["present"] is True and state["session_id"] and state["product"]["sku"] == "TOP-0412"

            # two suggestions: one the console proposes as going with her top, one found by search
            tile = page.locator('#goes-with .product[data-sku="SHOE-0315"]')
            expect(tile).to_be_visible(timeout=10_000)
            expect(tile.locator("img")).to_have_js_property("complete", True)
            assert tile.locator("img").evaluate("i => i.naturalWidth") > 0       # the picture, behind the login
            tile.click()
            page.fill("#q", "heels")
            page.click("#search button")
            page.locator('#results .product[data-sku="SHOE-0301"]').click()
            expect(page.locator("#push")).to_have_text("Push 2 to the mirror")
            before = mirror.snapshot("before-push")
            page.click("#push")
            expect(page.locator("#push-msg")).to_have_text("Pushed 2")
            expect(page.locator("#pushed-items li")).to_have_count(2)
            state = json.loads(page.request.get(f"{mirror.base}/staff/api/state").body())
            assert [s["sku"] for s in state["suggestions"]] == ["SHOE-0315", "SHOE-0301"]
            assert state["push"]["by"] == "Anna" and state["suggestion_status"] in ("pushed", "shown")
            expect(page.locator("#push-status")).to_contain_text("On the mirror now", timeout=10_000)
            assert picture_pixels(before) == 0
            after = wait(lambda: (lambda img: img if picture_pixels(img) > 300 else None)(
                mirror.snapshot("after-push")), 10, "the carousel's card with its picture on the mirror")
            assert _changed(before, after, CAROUSEL) > 0.1                       # the card's panel, text, dots
            assert _changed(before, after, (0.0, 0.5)) < 0.02                    # and nothing above its band

            # she takes the first card (the thumbs-up's action): the console shows it, and the cart has it
            assert mirror.control({"cmd": "action", "action": "confirm"})["ok"] is True
            expect(page.locator("#accepted li")).to_have_count(1, timeout=10_000)
            expect(page.locator("#accepted li")).to_contain_text("White leather sneakers")
            state = json.loads(page.request.get(f"{mirror.base}/staff/api/state").body())
            assert [a["sku"] for a in state["accepted"]] == ["SHOE-0315"]
            assert "SHOE-0315" in [i["sku"] for i in state["cart"]["items"]]

            # she asks for help (her pinch maps to call_staff): the request pops up; the reply reaches the mirror
            time.sleep(3.0)                                             # the "Added ..." message has faded
            calm = mirror.quick_snapshot()
            assert mirror.control({"cmd": "action", "action": "call_staff"})["ok"] is True
            asked = wait(lambda: (lambda img: img if _changed(calm, img, TOAST) > 0.05 else None)(
                mirror.quick_snapshot()), 2.0, "her own request's message on the mirror")   # "... on the way"
            request = page.locator("#requests .request.open")
            expect(request).to_have_count(1, timeout=10_000)
            expect(request).to_contain_text("Ribbed tank top")
            expect(page.locator("#alert")).to_contain_text("She asks for help")
            state = json.loads(page.request.get(f"{mirror.base}/staff/api/state").body())
            [req] = state["requests"]
            assert req["open"] is True and req["product"]["sku"] == "TOP-0412" and req["size"] == state["size"]
            quiet = wait(lambda: (lambda img: img if _changed(calm, img, TOAST) < 0.01 else None)(
                mirror.quick_snapshot()), 5.0, "her own request's message gone")
            request.locator("input").fill(REPLY)
            request.locator("button[type=submit]").click()
            replied = wait(lambda: (lambda img: img if _changed(quiet, img, TOAST) > 0.05 else None)(
                mirror.quick_snapshot()), 2.0, "the reply on the mirror")
            assert _changed(asked, replied, TOAST) > 0.05, "the mirror shows another text than her own request's"
            answered = page.locator("#requests .request:not(.open)")
            expect(answered).to_contain_text(f"Anna: “{REPLY}”")
            state = json.loads(page.request.get(f"{mirror.base}/staff/api/state").body())
            assert state["requests"][0]["answered_by"] == "Anna" and state["requests"][0]["reply"] == REPLY
            # a second tablet cannot take the same request again
            other = mirror.login(OTHER_PIN)
            status, _, body = mirror.http("POST", f"/staff/api/requests/{req['id']}/reply", {"text": "me too"},
                                          cookie=other)
            assert status == 409 and "Anna" in error_of(body)

            page.click("#logout")
            expect(page.locator("#pin")).to_be_visible()
            assert page.request.get(f"{mirror.base}/staff/api/state").status == 401
            assert not problems, problems                               # no script error, no CSP violation
        finally:
            browser.close()
    audit = json.loads(mirror.cli("staff", "audit", "--json").stdout)["audit"]
    did = [(a["who"], a["action"]) for a in audit]
    for entry in [("Anna", "staff.login"), ("Anna", "staff.push_suggestions"), ("Anna", "staff.reply"),
                  ("Anna", "staff.logout"), ("web:127.0.0.1", "staff.login_failed")]:
        assert entry in did, (entry, did)
    push = next(a for a in audit if a["action"] == "staff.push_suggestions")
    assert push["detail"]["skus"] == ["SHOE-0315", "SHOE-0301"]


def test_wrong_pins_are_rate_limited_per_address(mirror):
    for i in range(5):
        status, _, body = mirror.http("POST", "/staff/login", {"pin": f"1111{i}"}, source="127.0.0.2")
        assert status == 401 and error_of(body) == "wrong PIN"
    status, headers, body = mirror.http("POST", "/staff/login", {"pin": PIN}, source="127.0.0.2")
    assert status == 429 and int(headers["Retry-After"]) > 0 and "Set-Cookie" not in headers   # even the right PIN
    assert mirror.http("POST", "/staff/login", {"pin": "22222"}, source="127.0.0.2")[0] == 429
    status, headers, _ = mirror.http("POST", "/staff/login", {"pin": PIN})    # another address logs in
    assert status == 200
    flags = [f.strip() for f in headers["Set-Cookie"].split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/staff" in flags and "Secure" not in flags
    assert "Strict-Transport-Security" not in headers                  # plain http: nothing to pin
    assert any(f.startswith("Max-Age=") and int(f[8:]) == 480 * 60 for f in flags)
    audit = json.loads(mirror.cli("staff", "audit", "--json").stdout)["audit"]
    assert sum(a["who"] == "web:127.0.0.2" and a["action"] == "staff.login_failed" for a in audit) == 5
    refused = [a for a in audit if a["action"] == "staff.login_refused"]      # once, not per refused attempt
    assert [(a["who"], a["detail"]["client"]) for a in refused] == [("web:127.0.0.2", "127.0.0.2")], refused


def test_removing_a_staff_user_ends_their_logins_and_console(mirror):
    """`mirror staff remove-user` runs in another process; the kiosk's sessions used to
    outlive it (the removed user could still reserve, audited under their name)."""
    mirror.cli("staff", "add-user", "Cleo", "--pin-stdin", stdin="73019\n")
    cookie = mirror.login("73019")
    anna = mirror.login()
    with ws_connect(f"ws://127.0.0.1:{mirror.port}/staff/ws", origin=mirror.base,
                    additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        assert json.loads(ws.recv(10))["user"] == "Cleo"
        mirror.cli("staff", "remove-user", "Cleo")
        t0 = time.monotonic()
        said = []
        try:
            while True:
                said.append(json.loads(ws.recv(15)))
        except Exception:
            pass
        assert time.monotonic() - t0 < 15
        assert said and said[-1]["type"] == "logged_out", said
        assert ws.close_code == 4001
    assert mirror.http("GET", "/staff/api/state", cookie=cookie)[0] == 401
    assert mirror.state(anna)["user"] == "Anna"                      # nobody else is logged out
