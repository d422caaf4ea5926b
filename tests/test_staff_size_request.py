"""A size request from the mirror's size picker, answered from the staff API,
shown on the mirror (issue 10): the real kiosk in process (real models on a
photo of a person, the real session, the real staff feature on its web host),
with her two button presses synthesized as the hand input publishes them."""

from __future__ import annotations

import http.client
import json
import threading
import time

import cv2

from mirror.app.kiosk import Kiosk
from mirror.core import config
from mirror.core.feature import Feature
from mirror.storage.staff import StaffUsers
from tests.kiosk_proc import free_port

PIN = "31415"
REPLY = "Size L is out - bringing the M and the XL"


class Script(Feature):
    """Once she is there: press "Size", then "Size L", then wait for the reply on the mirror."""

    def __init__(self, kiosk: Kiosk):
        self.k, self.step, self.t = kiosk, 0, 0.0
        self.seen_reply: str | None = None
        self.picker_labels: list[str] = []

    def _press(self, control_id: str) -> None:
        c = next(c for c in self.k.session.controls() if c.id == control_id)
        x, y, w, h = c.rect
        self.k.bus.publish("cursor.dwell", x=x + w / 2, y=y + h / 2, control=c.id)

    def before_frame(self, now: float) -> None:
        s = self.k.session
        if self.step == 0 and s.present:
            self._press("sizes")
            self.step, self.t = 1, now
        elif self.step == 1 and now - self.t > 0.3:
            self.picker_labels = [c.label for c in s.controls()]
            self._press("size:L")
            self.step = 2
        elif self.step == 2 and s.message == REPLY:
            self.seen_reply = s.message
            self.k.stop()


def test_a_size_picked_on_the_mirror_reaches_the_tablet_and_the_answer_comes_back(media, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), cv2.imread(str(media / "images" / "portrait_suit.jpg")))
    port = free_port()
    db = tmp_path / "orders.db"
    with StaffUsers(db) as users:
        users.add_user("Anna", PIN)
    cfg = config.load(None, env={
        "MIRROR_CAMERA_SOURCE": "images", "MIRROR_CAMERA_PATH": str(frames), "MIRROR_CAMERA_FPS": "10",
        "MIRROR_DISPLAY_FULLSCREEN": "false", "MIRROR_DISPLAY_WIDTH": "270", "MIRROR_DISPLAY_HEIGHT": "480",
        "MIRROR_CONTROL_SOCKET": str(tmp_path / "control.sock"), "MIRROR_CALL_ENABLED": "false",
        "MIRROR_NFC_ENABLED": "false", "MIRROR_CHECKOUT_DB_PATH": str(db), "MIRROR_STAFF_PORT": str(port)})
    k = Kiosk(cfg, headless=True)
    script = Script(k)
    k.add(script)
    answered: dict = {}

    def tablet():                                      # what the console does, over HTTP
        origin = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"}

        def call(method, path, body=None, cookie=""):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={**origin, **({"Cookie": cookie} if cookie else {})})
                r = c.getresponse()
                return r.status, r.headers, json.loads(r.read() or b"{}")
            finally:
                c.close()
        deadline = time.monotonic() + 120
        cookie = ""
        while time.monotonic() < deadline:
            try:
                if not cookie:
                    status, headers, _ = call("POST", "/staff/login", {"pin": PIN})
                    cookie = headers["Set-Cookie"].split(";")[0] if status == 200 else ""
                    continue
                _, _, state = call("GET", "/staff/api/state", cookie=cookie)
                sized = [r for r in state.get("requests", []) if r["kind"] == "size" and r["open"]]
                if sized:
                    answered["request"] = sized[0]
                    answered["reply"] = call("POST", f"/staff/api/requests/{sized[0]['id']}/reply",
                                             {"text": REPLY}, cookie=cookie)[0]
                    return
            except OSError:
                pass                                   # the listener is not up yet
            time.sleep(0.2)

    helper = threading.Thread(target=tablet, daemon=True)
    helper.start()
    k.run(150.0)                                       # a cap: it stops when the reply is on the mirror
    helper.join(5)
    assert script.seen_reply == REPLY, (script.step, answered, k.session.message)
    req = answered["request"]
    assert answered["reply"] == 200
    assert (req["product"]["sku"], req["size"], req["colour"]) == ("TOP-0412", "L", k.session.color_name)
    assert "Size L (now)" not in script.picker_labels and "Size M (now)" in script.picker_labels
    assert k.session.cart()["items"][0]["size"] == "L"
