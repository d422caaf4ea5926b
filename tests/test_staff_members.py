"""Members, reservations and the web store (issue 10), end to end: a real
`mirror run` kiosk whose camera is a stage the test directs (a real
thumbs-up through the real models is her yes), a member card tapped on the
real pcscd's virtual reader, the staff API over HTTP, and the console in a
real headless Chromium.
"""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright

from mirror.core.session import CONSENT_S
from mirror.harness.call_bench import CHROMIUM_FLAGS, Stage
from tests.kiosk_proc import control_line, free_port, kiosk_config, start_kiosk, stop_kiosk
from tests.pcsc_fixtures import member_tag
from tests.test_staff_console import Mirror, error_of, wait

PIN = "61803"
TOKEN = "webstore-token-0123456789abcdef"
QUESTION = (0.235, 0.35)                   # the profile question's card (render/overlays.py, like the knock card)


def _band_changed(a: np.ndarray, b: np.ndarray, band) -> float:
    h = a.shape[0]
    y0, y1 = round(h * band[0]), round(h * band[1])
    return float((np.abs(a[y0:y1].astype(int) - b[y0:y1].astype(int)).max(axis=2) > 40).mean())


@pytest.fixture(scope="module")
def mirror(media, pcscd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("members")
    stage = Stage(folder, media)
    port = free_port()
    cfg = kiosk_config(folder, stage.folder, f"""
[call]
enabled = false
[nfc]
reader = "Virtual PCD"
poll_s = 0.2
[checkout]
db_path = "{folder / 'orders.db'}"
[staff]
port = {port}
webstore_token = "{TOKEN}"
""")
    m = Mirror(folder, cfg, port, None)
    m.stage = stage
    m.cli("staff", "add-user", "Anna", "--pin-stdin", stdin=PIN + "\n")
    m.proc = start_kiosk(cfg, **pcscd.env())
    try:
        wait(lambda: m.status()["present"], 90, "shopper seen by the kiosk")
        yield m
        assert m.proc.poll() is None, "the kiosk stopped during the tests"
    finally:
        stop_kiosk(m.proc)


def _webstore(m: Mirror, path: str, body, token: str | None = TOKEN):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=15)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def _tap(m: Mirror, pcscd, member: str = "M5001", name: str = "Jenny") -> None:
    with member_tag(bytes.fromhex("04CD000000AA01"), member=member, name=name).insert(port=pcscd.port):
        time.sleep(1.5)


def _db(m: Mirror, sql: str, *args):
    db = sqlite3.connect(m.folder / "orders.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def test_the_web_store_puts_one_aside_for_a_member_with_its_token_only(mirror):
    cookie = mirror.login(PIN)
    good = {"member_id": "M5001", "first_name": "Jenny", "sku": "DRESS-0930", "colour": "Emerald", "size": "M"}
    assert _webstore(mirror, "/api/reservations", good, token=None)[0] == 401
    assert _webstore(mirror, "/api/reservations", good, token="x" * 30)[0] == 401
    status, body = _webstore(mirror, "/api/reservations", {**good, "sku": "NOPE-1"})
    assert status == 404 and "NOPE-1" in error_of(body)
    status, body = _webstore(mirror, "/api/reservations", {**good, "sku": "TOP-0412", "colour": "Black",
                                                           "size": "XS"})
    assert status == 409 and "available" in error_of(body)                  # Black/XS: none in this store
    status, body = _webstore(mirror, "/api/reservations", {**good, "member_id": "bad id"})
    assert status == 422
    status, body = _webstore(mirror, "/api/reservations", good)
    assert status == 201, body
    held = json.loads(body)["reservation"]
    assert (held["sku"], held["colour"], held["size"]) == ("DRESS-0930", "Emerald", "M")
    status, body = _webstore(mirror, "/api/wishlist", {"member_id": "M5001", "items": [{"sku": "SHOE-0301"}]})
    assert status == 200 and json.loads(body)["added"] == 1
    state = wait(lambda: (lambda s: s if len(s["news"]) == 2 else None)(mirror.state(cookie)), 10, "the news")
    assert state["news"][1]["text"] == "Jenny reserved the Wrap dress in M (Emerald) for today"
    assert any(r["id"] == held["id"] and r["source"] == "webstore" and r["for"] == "Jenny"
               for r in state["reservations"])


def test_a_member_who_does_not_answer_keeps_her_profile_private(mirror, pcscd):
    cookie = mirror.login(PIN)
    calm = mirror.quick_snapshot()
    _tap(mirror, pcscd)
    state = wait(lambda: (lambda s: s if s["member_status"] == "asked" else None)(mirror.state(cookie)), 10,
                 "the question asked")
    asked = mirror.quick_snapshot()
    assert _band_changed(calm, asked, QUESTION) > 0.1, "the question's card is on the mirror"
    # a store tool cannot answer for her
    assert control_line(mirror.folder / "control.sock", {"cmd": "action", "action": "confirm"})["ok"] is True
    time.sleep(1.0)
    assert mirror.state(cookie)["member_status"] == "asked"
    state = wait(lambda: (lambda s: s if s["member_status"] == "declined" else None)(mirror.state(cookie)),
                 CONSENT_S + 10, "no answer taken as a no")
    assert state["profile"] is None
    status, _, body = mirror.http("POST", "/staff/api/members/M5001/notes", {"text": "hello"}, cookie=cookie)
    assert status == 409 and "not shared" in error_of(body)
    assert _band_changed(calm, mirror.quick_snapshot(), QUESTION) < 0.01, "the question is gone"


def test_a_member_who_says_yes_is_known_to_staff_until_she_leaves_or_is_forgotten(mirror, pcscd):
    m = mirror
    # she leaves and comes back: a new shopper, asked again
    m.stage.show("empty")
    wait(lambda: not m.status()["present"], 60, "the shopper gone")
    m.stage.show("there")
    wait(lambda: m.status()["present"], 60, "a shopper back")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})       # a tablet, landscape
            page = ctx.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(f"{m.base}/staff")
            page.fill("#pin", PIN)
            page.click("#go")
            expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
            expect(page.locator("#profile")).to_be_hidden()

            _tap(m, pcscd)
            expect(page.locator("#member-status")).to_contain_text("being asked", timeout=10_000)
            m.stage.show("thumbs_up")                                   # her yes, through the real models
            expect(page.locator("#profile-name")).to_have_text("Jenny", timeout=20_000)
            m.stage.show("there")
            expect(page.locator("#profile-reservations")).to_contain_text("Wrap dress")
            expect(page.locator("#profile-reservations")).to_contain_text("from the web store")
            expect(page.locator("#profile-wishlist")).to_contain_text("Strappy high heels")
            expect(page.locator("#profile-orders li")).not_to_have_count(0)    # her taps made orders (pay at till)
            state = json.loads(page.request.get(f"{m.base}/staff/api/state").body())
            assert state["member_status"] == "shared" and state["profile"]["member_id"] == "M5001"

            # she puts one aside from the mirror: it is held for her by name
            assert control_line(m.folder / "control.sock", {"cmd": "action", "action": "reserve"})["ok"] is True
            mine = page.locator("#reservations .reservation", has_text="from the mirror")
            expect(mine).to_contain_text("for Jenny", timeout=10_000)
            expect(mine).to_contain_text("Ribbed tank top")
            # staff add a note, then mark her item collected
            page.fill("#note", "Loves green; wrap dresses in M")
            page.click("#note-form button")
            expect(page.locator("#profile-notes")).to_contain_text("Loves green; wrap dresses in M · Anna")
            mine.locator("button[data-how=collect]").click()
            expect(page.locator("#reservations .reservation.closed", has_text="from the mirror")).to_contain_text(
                "collected")

            # forget her: everything about her goes, with an audit entry
            page.once("dialog", lambda d: d.accept())
            page.click("#forget")
            expect(page.locator("#profile")).to_be_hidden(timeout=10_000)
            assert _db(m, "SELECT COUNT(*) FROM members WHERE member_id='M5001'") == [(0,)]
            assert _db(m, "SELECT COUNT(*) FROM member_notes") == [(0,)]
            assert _db(m, "SELECT COUNT(*) FROM orders WHERE member_id='M5001'") == [(0,)]
            assert _db(m, "SELECT COUNT(*) FROM orders") != [(0,)]          # the orders stay, without her
            assert _db(m, "SELECT COUNT(*) FROM stock_holds WHERE member_id='M5001' OR for_name='Jenny'") == [(0,)]
            assert not problems, problems
        finally:
            browser.close()
    audit = json.loads(m.cli("staff", "audit", "--json").stdout)["audit"]
    forgot = [a for a in audit if a["action"] == "staff.member_forgotten"]
    assert forgot and forgot[0]["who"] == "Anna" and forgot[0]["detail"]["member_notes"] == 1
    # she leaves: the console shows the session ended and nothing of her
    cookie = m.login(PIN)
    m.stage.show("empty")
    state = wait(lambda: (lambda s: s if s["ended"] and not s["present"] else None)(m.state(cookie)), 60,
                 "the session ended on the console")
    assert state["profile"] is None and state["member_status"] == "none" and state["requests"] == []
    m.stage.show("there")
