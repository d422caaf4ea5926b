"""The friend call end to end: a real kiosk process, real headless Chromium
(Playwright, /usr/bin/chromium) and a raw websocket client, all inside a
network namespace this module creates. Nothing here is mocked: the kiosk runs
`mirror run` on the bundled clip, and the friend's fake camera is Chromium's.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from mirror.harness.call_bench import (CHROMIUM_FLAGS, KioskProcess, NetNamespace, Stage, admit, join_page,
                                       kiosk_config, wait_in_lobby)
from call.tokens import JoinTokens

PORT = 8443
BASE = f"http://127.0.0.1:{PORT}"
PROBE = Path(__file__).with_name("ws_probe.py")


@dataclass
class Rig:
    ns: NetNamespace
    kiosk: KioskProcess
    browser: object
    secret: bytes
    folder: Path
    stage: Stage

    def link(self) -> str:
        return self.kiosk.control("link")["url"]

    def status(self) -> dict:
        return self.kiosk.control("status")

    def wait_status(self, pred, timeout: float = 10.0, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"kiosk never reached {what or pred}: {st}")
            time.sleep(0.2)

    def screenshot(self, name: str) -> np.ndarray:
        png = base64.b64decode(self.kiosk.control("snapshot")["png_b64"])
        (self.folder / name).write_bytes(png)
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def probe(self, steps: list, token_url: str | None = None, origin: str = BASE, during=None) -> dict:
        proc = subprocess.Popen(self.ns.wrap(sys.executable, str(PROBE), f"ws://127.0.0.1:{PORT}/ws/join", origin,
                                             json.dumps(steps)), stdout=subprocess.PIPE, text=True)
        if during:
            during()
        out, _ = proc.communicate(timeout=60)
        return json.loads(out)

    def connect_friend(self, name: str):
        page = join_page(self.browser, self.link(), name)
        wait_in_lobby(page)
        self.wait_status(lambda s: s["knocking"] == name, what=f"{name} knocking")
        admit(self.kiosk, page, self.stage)
        self.wait_status(lambda s: s["connected"], what="connected")
        return page


def token_of(url: str) -> str:
    return url.split("#", 1)[1]


def claims_of(token: str) -> dict:
    body = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def page_message(page) -> tuple[str, str]:
    page.wait_for_function("window.mirrorCall.phase === 'message'", timeout=15000)
    return page.inner_text("#message-title"), page.inner_text("#message-text")


@pytest.fixture(scope="module")
def rig(tmp_path_factory, media):
    folder = tmp_path_factory.mktemp("call")
    secret = os.urandom(32)
    (folder / "secret").write_bytes(secret)
    stage = Stage(folder, media)          # the shopper: a person, and her thumbs-up when a test shows it
    cfg = kiosk_config(folder, stage=stage, port=PORT, width=540, height=960,
                       extra=f'secret_file = "{folder / "secret"}"\njoin_attempts_per_minute = 200')
    with NetNamespace(f"mirror-test-{os.getpid()}") as ns:
        kiosk = KioskProcess(ns, cfg, folder / "kiosk.log")
        try:
            kiosk.wait_ready()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(ns.chromium_wrapper(folder)),
                                             args=CHROMIUM_FLAGS, headless=True)
                try:
                    yield Rig(ns, kiosk, browser, secret, folder, stage)
                finally:
                    browser.close()
        finally:
            code = kiosk.stop()
            print((folder / "kiosk.log").read_text(errors="replace")[-3000:])
    assert code == 0, "the kiosk did not stop cleanly"


def red_heart_pixels(img: np.ndarray) -> int:
    b, g, r = img[..., 0].astype(int), img[..., 1].astype(int), img[..., 2].astype(int)
    return int(((abs(r - 235) < 30) & (abs(g - 60) < 30) & (abs(b - 90) < 30)).sum())


def green_pixels(img: np.ndarray) -> int:
    b, g, r = img[..., 0].astype(int), img[..., 1].astype(int), img[..., 2].astype(int)
    return int(((g > 100) & (g > r + 60) & (g > b + 60)).sum())


def test_friend_joins_sees_the_mirror_reacts_and_hangs_up(rig):
    page = join_page(rig.browser, rig.link(), "Jane")
    wait_in_lobby(page)
    rig.wait_status(lambda s: s["knocking"] == "Jane", what="Jane knocking")
    knock = rig.screenshot("knock.png")
    card = knock[int(0.235 * 960):int(0.235 * 960) + 110]      # where the compositor puts it
    b, g, r = card[..., 0].astype(int), card[..., 1].astype(int), card[..., 2].astype(int)
    assert ((abs(g - 220) < 30) & (abs(r - 90) < 30) & (abs(b - 140) < 30)).sum() > 300, "no 'wants to join' card"

    admit(rig.kiosk, page, rig.stage)
    # mirror -> friend: decoded frames at the configured 1280x720
    page.wait_for_function("""async () => { const r = await window.mirrorCall.pc.getStats(); let ok = false;
        r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 30
                             && s.frameWidth === 1280 && s.frameHeight === 720) ok = true; }); return ok; }""",
                           timeout=20000)
    # friend -> mirror: her fake camera (green) drawn in the tile
    st = rig.wait_status(lambda s: s["friend_frames"] > 30, what="friend video")
    assert st["codec"] == "VP8" and st["friend"] == "Jane"
    time.sleep(0.3)
    before = rig.screenshot("before.png")
    assert green_pixels(before) > 2000, "the friend's video tile is not on the mirror"
    assert red_heart_pixels(before) < 20

    page.click("[data-reaction=love]")
    rig.wait_status(lambda s: s["reactions"] >= 1, what="reaction")
    time.sleep(0.3)
    after = rig.screenshot("after.png")
    assert red_heart_pixels(after) > 150, "the love reaction is not drawn on the mirror"

    page.click("#hangup")
    assert page_message(page)[0] == "You left the call"
    rig.wait_status(lambda s: not s["call"]["friends"] and not s["connected"], timeout=5, what="call freed")
    page.context.close()


def test_shopper_and_staff_hang_up(rig):
    page = rig.connect_friend("Ann")
    rig.kiosk.control("action", action="hang_up", source="test")        # the shopper's gesture
    assert page_message(page) == ("The call has ended", "The shopper hung up.")
    rig.wait_status(lambda s: not s["call"]["friends"], timeout=5, what="call freed")
    page.context.close()

    page = rig.connect_friend("Bea")
    assert rig.kiosk.control("hangup")["ended"] == 1                    # staff, from the console
    assert page_message(page) == ("The call has ended", "The store ended the call.")
    rig.wait_status(lambda s: not s["call"]["friends"], timeout=5, what="call freed")
    page.context.close()


def test_forged_expired_reused_wrong_origin_and_second_friend_are_refused(rig):
    token = token_of(rig.link())
    body, sig = token.split(".")
    forged = body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    r = rig.probe([{"send": {"type": "join", "token": forged, "name": "Eve"}}])
    assert r["received"] == [{"type": "error", "reason": "forged"}] and r["close_code"] == 4001

    # the same claims, signed with the kiosk's secret but already expired
    claims = claims_of(token)
    expired, _ = JoinTokens(rig.secret, ttl_s=60).issue(claims["s"], time.time() - 3600)
    r = rig.probe([{"send": {"type": "join", "token": expired, "name": "Eve"}}])
    assert r["received"] == [{"type": "error", "reason": "expired"}]

    # the page says it plainly too
    page = rig.browser.new_context(bypass_csp=True).new_page()
    page.goto(f"{BASE}/join#{forged}")
    page.fill("#name", "Eve")
    page.click("#join")
    assert page_message(page)[0] == "This link isn't valid"
    page.context.close()

    # wrong Origin: refused at the handshake, before any token is looked at
    r = rig.probe([{"send": {"type": "join", "token": token, "name": "Eve"}}], origin="https://evil.example")
    assert r["http_status"] == 403

    # first use lets her knock; a replay of the same token is refused
    r = rig.probe([{"send": {"type": "join", "token": token, "name": "Kim"}}, {"expect": "lobby"},
                   {"send": {"type": "bye"}}])
    assert r["received"][0] == {"type": "lobby", "name": "Kim"}
    r = rig.probe([{"send": {"type": "join", "token": token, "name": "Kim"}}])
    assert r["received"] == [{"type": "error", "reason": "used"}] and r["close_code"] == 4003

    # a second friend while one is in
    page = rig.connect_friend("Liz")
    second = token_of(rig.link())
    r = rig.probe([{"send": {"type": "join", "token": second, "name": "Mia"}}])
    assert r["received"] == [{"type": "error", "reason": "busy"}]
    assert rig.status()["friend"] == "Liz", "the friend in the call was disturbed"
    page.click("#hangup")
    rig.wait_status(lambda s: not s["call"]["friends"], timeout=5, what="call freed")
    page.context.close()
    # "busy" did not burn the second link: it works once the mirror is free
    r = rig.probe([{"send": {"type": "join", "token": second, "name": "Mia"}}, {"expect": "lobby"},
                   {"send": {"type": "bye"}}])
    assert r["received"][0]["type"] == "lobby"


def test_malformed_offer_gets_an_error_and_the_kiosk_keeps_serving(rig):
    token = token_of(rig.link())

    def admit():
        rig.wait_status(lambda s: s["knocking"] == "Pat", what="Pat knocking")
        assert rig.kiosk.control("action", action="confirm", source="test")["ok"]
        time.sleep(1.0)
        assert rig.status()["knocking"] == "Pat"          # a command never lets a friend in
        rig.stage.show("thumbs_up")                       # her thumbs-up does
        try:
            rig.wait_status(lambda s: s["knocking"] == "", what="Pat let in")
        finally:
            rig.stage.show("there")

    r = rig.probe([{"send": {"type": "join", "token": token, "name": "Pat"}}, {"expect": "admitted"},
                   {"send": {"type": "offer", "sdp": "v=0\r\nm=video this is not sdp\r\n"}}], during=admit)
    assert r["received"][-1] == {"type": "error", "reason": "bad_offer"}
    assert r["close_code"] == 4008
    rig.wait_status(lambda s: not s["call"]["friends"], timeout=5, what="call freed")
    # not JSON at all
    r = rig.probe([{"send": "{{{"}])
    assert r["received"] == [{"type": "error", "reason": "bad_message"}]
    # and a real friend still gets in
    page = rig.connect_friend("Sam")
    page.click("#hangup")
    rig.wait_status(lambda s: not s["call"]["friends"], timeout=5, what="call freed")
    page.context.close()


def test_a_killed_tab_frees_the_call_within_seconds(rig):
    rig.connect_friend("Zoe")
    # only this test's own renderers: the processes in its network namespace
    pids = [pid for pid in rig.ns.pids() if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # the peer's loss is noticed (ICE/DTLS) and the call freed, without a restart
    rig.wait_status(lambda s: not s["call"]["friends"] and not s["connected"], timeout=20, what="call freed")
    frames = rig.status()["frames"]
    rig.wait_status(lambda s: s["frames"] > frames, what="the mirror still composing")
