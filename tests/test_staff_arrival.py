"""The staff console on a live kiosk whose camera first sees nobody, then a shopper
stepping up, then nobody again (issue 10: "login, and the alert when she arrives",
"the session wipe when she leaves"), in a real headless Chromium; and `mirror
staff push`, the scripts' way to push suggestions, against the same kiosk.

The camera is call_bench's Stage, an image folder holding one frame that the test
swaps atomically: an empty grey scene, or the shared photo of a woman.
The kiosk re-reads it every frame, so arriving and leaving go through the real
models, the presence debounce and the session, not through a command.
"""

from __future__ import annotations

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

from mirror.harness.call_bench import CHROMIUM_FLAGS, Stage
from tests.kiosk_proc import ROOT, control_line, free_port, kiosk_config, staff_only, start_kiosk, stop_kiosk
from tests.test_staff_console import page_problems, picture_pixels, wait

PIN = "61842"

# every oscillator the page starts, by frequency: the console's beeps (console.js beep())
TONE_SPY = """
(() => {
  window.__tones = [];
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...a) { window.__tones.push(this.frequency.value); return start.apply(this, a); };
})();
"""


@dataclass
class Rig:
    folder: Path
    cfg: Path
    port: int
    stage: Stage
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, stdin: str | None = None, check: bool = True,
            config: Path | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "mirror", *args, "--config", str(config or self.cfg)], cwd=ROOT,
                           input=stdin, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def status(self) -> dict:
        return control_line(self.folder / "control.sock", {"cmd": "status"})

    def snapshot(self, name: str) -> np.ndarray:
        out = self.folder / f"{name}.png"
        self.cli("snapshot", "--out", str(out))
        return cv2.imread(str(out))


@pytest.fixture(scope="module")
def rig(media, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arrival")
    stage = Stage(folder, media)
    person = cv2.imread(str(media / "images" / "pointing_up.jpg"))
    assert person is not None
    stage.frames["person"] = Stage.framed(person)
    stage.show("empty")
    port = free_port()
    cfg = kiosk_config(folder, stage.folder, staff_only(folder, port))
    r = Rig(folder, cfg, port, stage)
    r.cli("staff", "add-user", "Carla", "--pin-stdin", stdin=PIN + "\n")
    r.proc = start_kiosk(cfg)
    try:
        wait(lambda: r.status()["frames"] > 10, 90, "kiosk composing frames")
        wait(lambda: json.loads(urllib.request.urlopen(f"{r.base}/healthz", timeout=2).read())["ok"], 30,
             "staff listener")
        assert r.status()["present"] is False, "the empty scene must show nobody"
        yield r
        assert r.proc.poll() is None, "the kiosk stopped during the tests"
    finally:
        stop_kiosk(r.proc)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirror: error: "), r.stderr
    return lines[0]


def test_staff_push_without_a_kiosk_or_a_shopper_is_one_line_and_exit_2(rig):
    nowhere = rig.folder / "nowhere.toml"
    nowhere.write_text(f'[control]\nsocket = "{rig.folder / "no-kiosk" / "control.sock"}"\n')
    assert "no running kiosk" in one_line_error(rig.cli("staff", "push", "SHOE-0301", check=False, config=nowhere))
    assert "nobody is at the mirror" in one_line_error(rig.cli("staff", "push", "SHOE-0301", check=False))
    assert "is not a SKU" in one_line_error(rig.cli("staff", "push", " ", check=False))
    bad = control_line(rig.folder / "control.sock", {"cmd": "staff.push", "skus": "SHOE-0301"})
    assert bad["ok"] is False and bad["status"] == 400


def test_the_console_alerts_when_she_steps_up_and_wipes_her_card_when_she_leaves(rig):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})        # a tablet, landscape
            ctx.add_init_script(TONE_SPY)
            page = ctx.new_page()
            problems = page_problems(page)
            page.goto(f"{rig.base}/staff")
            page.fill("#pin", PIN)
            page.click("#go")
            expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
            expect(page.locator("#presence")).to_have_text(re.compile("nobody at the mirror", re.I))
            expect(page.locator("#alert")).to_be_hidden()
            page.click("#sound")                                     # browsers allow sound after a tap
            expect(page.locator("#sound")).to_have_text("Sound on", timeout=5_000)
            page.evaluate("window.__tones = []")

            # she steps up: a visible alert and its two-tone chime, on the real camera path
            rig.stage.show("person")
            alert = page.locator("#alert")
            expect(alert).to_be_visible(timeout=20_000)
            expect(alert).to_have_text(re.compile("stepped up", re.I))
            expect(page.locator("#presence")).to_have_text(re.compile("someone at the mirror", re.I))
            wait(lambda: page.evaluate("window.__tones").count(520) == 1
                 and page.evaluate("window.__tones").count(780) == 1, 3, "the arrival chime (520 + 780 Hz)")
            state = json.loads(page.request.get(f"{rig.base}/staff/api/state").body())
            assert state["present"] is True and state["session_id"] and state["product"]["sku"]
            expect(page.locator("#cart li")).not_to_have_count(0)

            # a script pushes two suggestions for her; an unknown SKU is refused as the API's 404
            assert "NOPE-1" in one_line_error(rig.cli("staff", "push", "SHOE-0301", "NOPE-1", check=False))
            # a raw client cannot pose as someone else: the socket names the Unix user
            raw = control_line(rig.folder / "control.sock", {"cmd": "staff.push", "skus": ["ACC-0210"],
                                                             "peer": "Anna"})
            assert raw["ok"] is True and raw["by"] != "control:Anna" and raw["by"].startswith("control:")
            pushed = json.loads(rig.cli("staff", "push", "SHOE-0301", "MAKE-0101", "--json").stdout)
            assert pushed["by"] == raw["by"]
            assert pushed["items"] == ["SHOE-0301", "MAKE-0101"] and pushed["session_id"] == state["session_id"]
            assert pushed["by"].startswith("control:")
            expect(page.locator("#pushed-items li")).to_have_count(2, timeout=10_000)
            expect(page.locator("#push-status")).to_contain_text("On the mirror now", timeout=10_000)
            expect(page.locator("#push-status")).to_contain_text(pushed["by"])
            wait(lambda: picture_pixels(rig.snapshot("carousel")) > 300, 10, "the suggestion card on the mirror")
            # when it reached the glass (what mirror bench-staff reads), on the kiosk's monotonic clock
            shown = control_line(rig.folder / "control.sock", {"cmd": "staff.shown", "push_id": pushed["push_id"]})
            assert shown["ok"] and shown["sku"] == "SHOE-0301" and 0 <= shown["shown_at"] - shown["t_sent"] < 5
            assert shown["shown_at"] <= time.monotonic()
            assert control_line(rig.folder / "control.sock", {"cmd": "staff.shown", "push_id": "nope"})["status"] == 404
            # she takes the first card into her cart (her thumbs-up's action), and asks for help
            arrived_cart = state["cart"]["items"]
            sock = rig.folder / "control.sock"
            assert control_line(sock, {"cmd": "action", "action": "confirm"})["ok"]
            expect(page.locator("#accepted li")).to_have_count(1, timeout=10_000)
            expect(page.locator("#cart li")).to_have_count(len(arrived_cart) + 1)
            assert control_line(rig.folder / "control.sock", {"cmd": "action", "action": "call_staff"})["ok"]
            expect(page.locator("#requests .request.open")).to_have_count(1, timeout=10_000)

            # she walks away: the console says the session ended, and nothing of hers is left
            rig.stage.show("empty")
            expect(page.locator("#presence")).to_have_text(re.compile("session ended", re.I), timeout=20_000)
            expect(page.locator("#session")).to_contain_text("wiped")
            for sel in ("#cart li", "#pushed-items li", "#requests li", "#accepted li"):
                expect(page.locator(sel)).to_have_count(0)
            expect(page.locator("#no-requests")).to_be_visible()
            expect(page.locator("#push-status")).to_have_text("Nothing pushed to the mirror yet.")
            expect(page.locator("#product")).to_have_text("–")
            state = json.loads(page.request.get(f"{rig.base}/staff/api/state").body())
            assert state["present"] is False and state["ended"] is True
            assert state["suggestions"] == [] and state["requests"] == [] and state["accepted"] == []
            assert state["push"] is None and state["profile"] is None
            assert [e["event"] for e in state["timeline"]] == ["session.ended"]      # her timeline is gone
            # nothing of hers: no product, no cart (the mirror's default garment is nobody's)
            assert state["cart"] == {"items": [], "reserve": False} and state["product"] is None, state
            assert state["colour"] == "" and state["size"] == ""
            assert picture_pixels(rig.snapshot("left")) == 0                    # the carousel is gone from the mirror
            assert rig.status()["present"] is False
            # the next shopper's arrival alerts again
            page.evaluate("window.__tones = []")
            page.click("#alert")
            expect(alert).to_be_hidden()
            rig.stage.show("person")
            expect(alert).to_be_visible(timeout=20_000)
            expect(page.locator("#pushed-items li")).to_have_count(0)
            assert not problems, problems
        finally:
            browser.close()
    audit = json.loads(rig.cli("staff", "audit", "--json").stdout)["audit"]
    push = next(a for a in audit if a["action"] == "staff.push_suggestions")
    assert push["who"] == pushed["by"] and push["detail"]["skus"] == ["SHOE-0301", "MAKE-0101"]
