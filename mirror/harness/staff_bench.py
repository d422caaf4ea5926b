"""`mirror bench-staff`: a staff push, from the tablet's request to the glass.

The bench starts the real kiosk (`mirror run --headless`, 1080x1920) in a
subprocess, its vision loop on a clip with a shopper in it, with a staff user
it adds to the kiosk's database first. Then it does what a tablet does: logs
in through `POST /staff/login`, keeps `/staff/ws` open, and pushes
suggestions through `POST /staff/api/suggestions`, N times, spaced out by a
random 0.4-0.8 s and rotating the SKUs, so each push is a new card.

push-to-frame is measured from the moment the bench sends the request
(`time.monotonic()` just before the bytes go out) to the first composed frame
that shows the card: the kiosk's push probe publishes `suggestions.shown` with
its own `time.monotonic()` after that frame (mirror/app/push_probe.py), and
the control socket's `staff.shown` hands it out. Both ends read
CLOCK_MONOTONIC on the same machine, which Linux keeps system-wide, so the
difference is the real latency; the bench checks that the kiosk's arrival
time of each request is not before its send time. As a cross-check it also
reports when the console's websocket said "shown" (that adds the
websocket's own delay). The mirror's fps is sampled once a second over the
control socket (`status`) while the pushes run.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from mirror.app.control import ControlError
from mirror.core.config import DEMO_CLIP
from mirror.harness.call_bench import BenchError, KioskProcess, NoNamespace, free_port
from mirror.harness.checkout_bench import percentile

PIN = "73519"
USER = "bench"
# rotated so that every push shows another card than the one before (config/catalog.csv)
SKU_SETS = (["SHOE-0301"], ["MAKE-0101", "ACC-0210"], ["SHOE-0315"], ["ACC-0250", "MAKE-0120"], ["ACC-0233"])
SHOWN_TIMEOUT_S = 3.0


def staff_only(folder: Path, port: int) -> str:
    """Config sections for a kiosk with the staff console alone (its database in `folder`)."""
    return f"""
[call]
enabled = false
[nfc]
enabled = false
[checkout]
enabled = false
db_path = "{folder / 'orders.db'}"
[staff]
port = {port}
"""


def _config(folder: Path, clip: Path, port: int, width: int, height: int) -> Path:
    cfg = folder / "kiosk.toml"
    cfg.write_text(f"""
[camera]
source = "video"
path = "{clip}"
[display]
fullscreen = false
width = {width}
height = {height}
[control]
socket = "{folder / 'control.sock'}"
{staff_only(folder, port)}""")
    return cfg


class _Console:
    """What a logged-in tablet does: HTTP with the cookie and Origin, and /staff/ws open on a thread."""

    def __init__(self, port: int):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.conn: http.client.HTTPConnection | None = None
        self.cookie = ""
        self.lock = threading.Lock()
        self.shown_seen: dict[str, float] = {}          # push_id -> monotonic time the websocket said "shown"
        self.present = False
        self.ws = None
        self._reader: threading.Thread | None = None

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        headers = {"Origin": self.origin}
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):                          # a keep-alive connection the server closed: once more
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                if r.getheader("Set-Cookie"):
                    self.cookie = r.getheader("Set-Cookie").split(";")[0]
                return r.status, (json.loads(raw) if raw else {})
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def login(self) -> None:
        status, body = self.call("POST", "/staff/login", {"pin": PIN})
        if status != 200 or not self.cookie:
            raise BenchError(f"staff login failed: {status} {body.get('error', '')}")

    def open_ws(self) -> None:
        from websockets.sync.client import connect
        self.ws = connect(f"ws://127.0.0.1:{self.port}/staff/ws", origin=self.origin,
                          additional_headers={"Cookie": self.cookie}, open_timeout=10)
        first = json.loads(self.ws.recv(10))
        if first.get("type") != "state":
            raise BenchError(f"the staff websocket sent {first.get('type')!r} first, not the state")
        self._take(first["state"])
        self._reader = threading.Thread(target=self._read, name="bench-staff-ws", daemon=True)
        self._reader.start()

    def _take(self, state: dict) -> None:
        with self.lock:
            self.present = bool(state.get("present"))
            push = state.get("push") or {}
            if state.get("suggestion_status") == "shown" and push.get("push_id"):
                self.shown_seen.setdefault(push["push_id"], time.monotonic())

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if msg.get("type") == "state":
                    self._take(msg["state"])
        except (ConnectionClosed, OSError, ValueError):
            pass

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.conn is not None:
            self.conn.close()


def _add_user(db_path: Path) -> None:
    from mirror.storage.staff import StaffUsers
    users = StaffUsers(db_path)
    try:
        users.add_user(USER, PIN, by="bench-staff")
    finally:
        users.close()


def bench_staff(pushes: int = 40, video: str | None = None, progress: bool = True, *,
                width: int = 1080, height: int = 1920, warmup: float = 2.0) -> dict:
    clip = Path(video) if video else DEMO_CLIP
    if not clip.is_file():
        raise BenchError(f"{clip}: no such clip")

    def say(msg: str) -> None:
        if progress:
            print(f"bench-staff: {msg}", file=sys.stderr, flush=True)

    rng = random.Random()
    frame_ms: list[float] = []          # request sent -> first composed frame with the card
    console_ms: list[float] = []        # request sent -> the console's websocket says "shown"
    http_ms: list[float] = []           # request sent -> the 200 answer
    fps_samples: list[float] = []
    refused = 0
    not_shown = 0
    gone_before_shown = 0               # taken or dismissed by the clip's gestures before any frame showed it
    with tempfile.TemporaryDirectory(prefix="mirror-bench-staff-") as tmp:
        folder = Path(tmp)
        port = free_port()
        cfg = _config(folder, clip.resolve(), port, width, height)
        _add_user(folder / "orders.db")
        say(f"starting the kiosk headless on {clip.name} ({width}x{height}), staff console on port {port}")
        kiosk = KioskProcess(NoNamespace(), cfg, folder / "kiosk.log")
        console = _Console(port)
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(1.0):
                try:
                    fps_samples.append(float(kiosk.control("status", timeout=5)["fps"]))
                except (ControlError, KeyError, ValueError):
                    pass
        sampler = threading.Thread(target=sample, name="bench-staff-fps", daemon=True)
        try:
            kiosk.wait_ready(timeout=90)
            console.login()
            console.open_ws()
            say(f"logged in as {USER!r}, /staff/ws open; warming up {warmup:.0f} s")
            time.sleep(warmup)
            k0 = kiosk.control("status", timeout=5)
            t_start = time.monotonic()
            sampler.start()
            done = 0
            while done < pushes:
                if kiosk.proc.poll() is not None:
                    raise BenchError(f"the kiosk exited with {kiosk.proc.returncode}; see {kiosk.log_path}")
                time.sleep(rng.uniform(0.4, 0.8))       # a random phase against the frame clock
                skus = SKU_SETS[(done + refused) % len(SKU_SETS)]
                t0 = time.monotonic()
                status, body = console.call("POST", "/staff/api/suggestions", {"skus": skus})
                t_answer = time.monotonic()
                if status == 409:                        # the clip's shopper stepped away: wait, and again
                    refused += 1
                    if refused > pushes:
                        raise BenchError(f"the kiosk refused {refused} pushes: {body.get('error')}")
                    continue
                if status != 200:
                    raise BenchError(f"POST /staff/api/suggestions answered {status}: {body.get('error', body)}")
                push_id = body["push_id"]
                http_ms.append((t_answer - t0) * 1000)
                deadline = t0 + SHOWN_TIMEOUT_S
                rec: dict = {}
                seen = None
                while time.monotonic() < deadline:
                    with console.lock:
                        seen = console.shown_seen.get(push_id)
                    if seen is not None:
                        break
                    time.sleep(0.005)
                for _ in range(20):                      # the websocket may be a frame ahead of nothing: poll
                    rec = kiosk.control("staff.shown", timeout=5, push_id=push_id)
                    if rec.get("shown_at") is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                if rec.get("t_sent") is not None and rec["t_sent"] < t0 - 0.001:
                    raise BenchError("the kiosk's monotonic clock is behind the bench's (a time namespace?); "
                                     "push-to-frame cannot be measured across them")
                done += 1
                if rec.get("shown_at") is None:
                    _, st = console.call("GET", "/staff/api/state")
                    mine = [c for c in st.get("suggestions", []) if c.get("push_id") == push_id]
                    gone = (not st.get("present") or st.get("suggestion_status") == "dismissed"
                            or (st.get("push") or {}).get("push_id") != push_id or all(c["taken"] for c in mine))
                    if gone:                            # the clip's shopper took or closed it within that frame
                        gone_before_shown += 1
                    else:                               # lost: counted at the timeout, not left out
                        not_shown += 1
                        frame_ms.append(SHOWN_TIMEOUT_S * 1000)
                    say(f"push {push_id} ({', '.join(skus)}) not on the mirror within {SHOWN_TIMEOUT_S:.0f} s"
                        f"{' (her gesture took or closed it first; not counted)' if gone else ''}: present "
                        f"{st.get('present')}, suggestions {st.get('suggestion_status')}, last events "
                        f"{[e['event'] for e in st.get('timeline', [])[-4:]]}")
                else:
                    frame_ms.append((rec["shown_at"] - t0) * 1000)
                    if seen is not None:
                        console_ms.append((seen - t0) * 1000)
                if done % 10 == 0 or done == pushes:
                    recent = frame_ms[-10:]
                    say(f"{done}/{pushes} pushes  push-to-frame last {len(recent)}: median "
                        f"{statistics.median(recent) if recent else float('nan'):.0f} ms, max "
                        f"{max(recent) if recent else float('nan'):.0f} ms  mirror "
                        f"{fps_samples[-1] if fps_samples else float('nan'):.1f} fps")
            elapsed = time.monotonic() - t_start
            k1 = kiosk.control("status", timeout=5)
        except (ControlError, OSError, http.client.HTTPException) as e:
            raise BenchError(f"talking to the kiosk failed: {e}; see {kiosk.log_path}") from None
        finally:
            stop_sampling.set()
            console.close()
            rc = kiosk.stop()
        log_text = (folder / "kiosk.log").read_text(errors="replace")
        if "Traceback" in log_text:
            kept = Path(tempfile.gettempdir()) / f"mirror-bench-staff-{os.getpid()}.log"
            kept.write_text(log_text)
            raise BenchError(f"the kiosk logged a traceback during the bench; its log is in {kept}")
        if rc not in (0, None):
            raise BenchError(f"the kiosk exited with {rc} at the end of the bench")
    if not_shown == len(frame_ms):                 # also when there is none
        raise BenchError(f"no push was seen on the mirror within {SHOWN_TIMEOUT_S:.0f} s")
    mean_fps = (k1["frames"] - k0["frames"]) / max(elapsed, 1e-6)
    return {
        "pushes": done,
        "push_to_frame_p50_ms": round(statistics.median(frame_ms), 1),
        "push_to_frame_p95_ms": round(percentile(frame_ms, 95), 1),
        "mirror_fps": round(statistics.median(fps_samples), 1) if fps_samples else round(mean_fps, 1),
        "mirror_fps_min": round(min(fps_samples), 1) if fps_samples else None,
        "mirror_fps_mean": round(mean_fps, 1),
        "push_to_frame_max_ms": round(max(frame_ms), 1),
        "push_to_console_p95_ms": round(percentile(console_ms, 95), 1) if console_ms else None,
        "http_p95_ms": round(percentile(http_ms, 95), 1) if http_ms else None,
        "not_shown": not_shown,
        "gone_before_shown": gone_before_shown,
        "refused_nobody_there": refused,
        "seconds": round(elapsed, 1),
        "screen": f"{width}x{height}",
    }
