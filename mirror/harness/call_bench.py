"""`mirror bench-call`: a friend call measured end to end, and the harness the
call tests share.

Everything runs inside a network namespace made for the run: aioice leaves
127.0.0.1 out of its candidates and must not use the machine's real
interfaces, so the namespace's `lo` carries 127.0.0.2 as well. The kiosk runs
headless on a clip in a subprocess (`mirror run`), and Debian's Chromium is
started by Playwright through a wrapper that enters the same namespace. The
two talk over loopback; this process talks to the kiosk over its control
socket (a Unix socket works across namespaces).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirror.core.config import DEMO_CLIP
from mirror.app.control import ControlError, request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream=fps=30",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-gpu",
]


class BenchError(Exception):
    pass


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed: {r.stderr.strip() or r.stdout.strip()}")


class NetNamespace:
    """A throwaway network namespace with lo up and a second loopback address."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> "NetNamespace":
        if os.geteuid() != 0:
            raise BenchError("making a network namespace needs root; run as root (CI does)")
        if not shutil.which("ip"):
            raise BenchError("the 'ip' command is missing; install iproute2")
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")
            _run("ip", "netns", "exec", self.name, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
        except BenchError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        # anything still running inside would keep the namespace alive
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def pids(self) -> list[int]:
        """The processes running inside this namespace (nobody else's)."""
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    def wrap(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def chromium_wrapper(self, folder: Path) -> Path:
        """An executable Playwright can launch that runs Chromium in here."""
        if not Path(CHROMIUM).exists():
            raise BenchError(f"{CHROMIUM} not found; install Debian's chromium package")
        path = folder / "chromium-in-netns"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {CHROMIUM} "$@"\n')
        path.chmod(0o755)
        return path


class Stage:
    """A camera the tests direct: an image folder holding one frame that is
    swapped atomically. The kiosk re-reads it every frame, so `show("thumbs_up")`
    is a real thumbs-up through the real models (letting a friend in is the
    shopper's gesture alone; no command can do it)."""

    def __init__(self, folder: Path, media: Path):
        self.folder = folder / "camera"
        self.folder.mkdir()
        import cv2
        import numpy as np
        suit = cv2.imread(str(media / "images" / "portrait_suit.jpg"))
        # her thumbs-up as the mirror must see it to act on it: facing it, hand raised in front of her
        clip = cv2.VideoCapture(str(media / "clips" / "thumbs_up_720p.mp4"))
        clip.set(cv2.CAP_PROP_POS_MSEC, 5000)
        ok, thumb = clip.read()
        clip.release()
        if suit is None or not ok:
            raise BenchError(f"the stage needs {media} (images/portrait_suit.jpg, clips/thumbs_up_720p.mp4)")

        # head and shoulders only: a person at the mirror with no hand in view; and nobody at all
        self.frames = {"there": self.framed(suit[: int(suit.shape[0] * 0.6)]), "thumbs_up": self.framed(thumb),
                       "empty": np.full((720, 1280, 3), 90, np.uint8)}
        self.show("there")

    @staticmethod
    def framed(img):
        """`img` centred on a 1280x720 camera frame (a scene to `show`: add it to `frames`)."""
        import cv2
        import numpy as np
        h, w = img.shape[:2]
        k = min(1280 / w, 720 / h)
        img = cv2.resize(img, (round(w * k), round(h * k)))
        out = np.full((720, 1280, 3), 90, np.uint8)
        y, x = (720 - img.shape[0]) // 2, (1280 - img.shape[1]) // 2
        out[y:y + img.shape[0], x:x + img.shape[1]] = img
        return out

    def show(self, name: str) -> None:
        import cv2
        tmp = self.folder / ".next.png"
        cv2.imwrite(str(tmp), self.frames[name])
        os.replace(tmp, self.folder / "frame.png")


def kiosk_config(folder: Path, *, clip: Path | None = None, stage: Stage | None = None, port: int = 8443,
                 width: int = 1080, height: int = 1920, extra: str = "") -> Path:
    cfg = folder / "kiosk.toml"
    camera = (f'source = "images"\npath = "{stage.folder}"\nfps = 15' if stage is not None
              else f'source = "video"\npath = "{clip}"')
    cfg.write_text(f"""
[camera]
{camera}
[display]
fullscreen = false
width = {width}
height = {height}
[control]
socket = "{folder / 'control.sock'}"
[call]
host = "127.0.0.1"
port = {port}
{extra}
[nfc]
enabled = false
[checkout]
enabled = false
""")
    return cfg


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoNamespace:
    """Runs a command where we are: for a kiosk that needs no network namespace."""
    name = "-"

    def wrap(self, *cmd: str) -> list[str]:
        return list(cmd)


class KioskProcess:
    """`mirror run --headless` in a namespace (or NoNamespace), driven over its control socket."""

    def __init__(self, ns: NetNamespace | NoNamespace, config: Path, log_path: Path):
        self.sock = config.parent / "control.sock"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(ns.wrap(sys.executable, "-m", "mirror", "run", "--headless",
                                             "--config", str(config)),
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def control(self, cmd: str, **args) -> dict:
        return request(self.sock, cmd, **args)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        """Until the control socket answers and a shopper is seen on the clip."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the kiosk exited with {self.proc.returncode}; see {self.log_path}")
            try:
                st = self.control("status", timeout=2)
                if st["present"]:
                    return st
                last = "no shopper seen yet"
            except ControlError as e:
                last = str(e)
            time.sleep(0.3)
        raise BenchError(f"the kiosk was not ready within {timeout:.0f} s ({last}); see {self.log_path}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def join_page(browser, url: str, name: str = "Jane", *, camera: bool = True):
    """Open a join link in a fresh browser context and press Join."""
    # bypass_csp only so Playwright may evaluate its own scripts in the page
    ctx = browser.new_context(bypass_csp=True)
    page = ctx.new_page()
    page.goto(url)
    page.fill("#name", name)
    page.click("#join" if camera else "#join-nocam")
    return page


def wait_in_lobby(page) -> None:
    page.wait_for_function("window.mirrorCall.phase === 'lobby'", timeout=15000)


def admit(kiosk: KioskProcess, page, stage: Stage | None = None) -> None:
    """The shopper's thumbs-up on the knock card: shown on the stage, or, on a
    clip, her own when it comes round; then wait for the media path."""
    if stage is not None:
        stage.show("thumbs_up")
        try:
            page.wait_for_function("window.mirrorCall.phase !== 'lobby'", timeout=20000)
        finally:
            stage.show("there")
    page.wait_for_function("window.mirrorCall.pc && window.mirrorCall.pc.connectionState === 'connected'",
                           timeout=60000)


STATS_JS = """async () => {
  const pc = window.mirrorCall.pc; if (!pc) return null;
  const r = await pc.getStats(); let v = null, codecs = {};
  r.forEach(s => { if (s.type === 'codec') codecs[s.id] = s.mimeType;
                   if (s.type === 'inbound-rtp' && s.kind === 'video') v = s; });
  if (!v) return null;
  return {decoded: v.framesDecoded || 0, fps: v.framesPerSecond || 0, freezes: v.freezeCount || 0,
          freeze_s: v.totalFreezesDuration || 0, width: v.frameWidth || 0, height: v.frameHeight || 0,
          codec: (codecs[v.codecId] || '').replace('video/', ''), t: performance.now()};
}"""


def bench_call(seconds: float, video: str | None = None, progress: bool = True, warmup: float = 4.0) -> dict:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    clip = Path(video) if video else DEMO_CLIP
    if not clip.is_file():
        raise BenchError(f"{clip}: no such clip")

    def say(msg: str) -> None:
        if progress:
            print(f"bench-call: {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="mirror-bench-call-") as tmp, \
            NetNamespace(f"mirror-bench-{os.getpid()}") as ns:
        folder = Path(tmp)
        cfg = kiosk_config(folder, clip=clip.resolve(), extra="timecode = true")
        say(f"starting the kiosk headless on {clip.name} in namespace {ns.name}")
        kiosk = KioskProcess(ns, cfg, folder / "kiosk.log")
        try:
            kiosk.wait_ready()
            url = kiosk.control("link")["url"]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(ns.chromium_wrapper(folder)),
                                             args=CHROMIUM_FLAGS, headless=True)
                try:
                    say("friend joining from headless Chromium")
                    page = join_page(browser, url)
                    wait_in_lobby(page)
                    say("waiting for the shopper's thumbs-up in the clip to let her in")
                    admit(kiosk, page)
                    page.evaluate("window.mirrorCall.startTimecode()")
                    say(f"connected; warming up {warmup:.0f} s, then measuring {seconds:.0f} s")
                    time.sleep(warmup)
                    first = page.evaluate(STATS_JS)
                    k0 = kiosk.control("status")
                    g0 = page.evaluate("window.mirrorCall.g2g.length")
                    t0 = time.monotonic()
                    fps_samples = []
                    while (el := time.monotonic() - t0) < seconds:
                        time.sleep(min(5.0, seconds - el))
                        st = page.evaluate(STATS_JS)
                        ks = kiosk.control("status")
                        fps_samples.append(ks["fps"])
                        say(f"{time.monotonic() - t0:4.0f}/{seconds:.0f} s  browser {st['fps']:.0f} fps "
                            f"{st['width']}x{st['height']}  freezes {st['freezes'] - first['freezes']}  "
                            f"mirror {ks['fps']:.1f} fps")
                    last = page.evaluate(STATS_JS)
                    k1 = kiosk.control("status")
                    g2g = page.evaluate(f"window.mirrorCall.g2g.slice({g0})")
                    elapsed_browser = (last["t"] - first["t"]) / 1000.0
                    elapsed = time.monotonic() - t0
                    page.click("#hangup")
                except PlaywrightError as e:
                    raise BenchError(f"the browser side failed: {str(e).splitlines()[0]}; see {folder / 'kiosk.log'}")
                finally:
                    browser.close()
        finally:
            kiosk.stop()
    if len(g2g) < 10:
        raise BenchError("too few time codes were read back in the browser to measure latency")
    g2g.sort()
    return {
        "browser_fps": round((last["decoded"] - first["decoded"]) / elapsed_browser, 1),
        "freezes": last["freezes"] - first["freezes"],
        "g2g_p50_ms": round(statistics.median(g2g), 1),
        "g2g_p95_ms": round(g2g[min(len(g2g) - 1, int(0.95 * len(g2g)))], 1),
        "mirror_fps": round((k1["frames"] - k0["frames"]) / elapsed, 1),
        "codec": last["codec"],
        "width": last["width"],
        "height": last["height"],
        "seconds": round(elapsed, 1),
        "g2g_samples": len(g2g),
        "freeze_s": round(last["freeze_s"] - first["freeze_s"], 2),
        "mirror_fps_min_1s": min(fps_samples) if fps_samples else None,
    }
