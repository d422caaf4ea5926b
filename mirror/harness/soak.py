"""`mirror soak`: the whole kiosk for M minutes under a store's everyday load,
watched for leaks. A benchmark, not a test: it reports figures against the
targets and never fails on them.

It starts `mirror run --headless` on the bundled clip, looping, at the default
1080x1920 display, with a config it writes to a temporary folder (control
socket there too), and while it runs:

* a friend call from headless Chromium every few minutes (`CALL_EVERY_S`):
  the kiosk then runs in a network namespace of its own and Chromium joins
  inside it (mirror.harness.call_bench); the friend is let in by the clip's own
  thumbs-up, stays `CALL_CONNECTED_S`, and hangs up. Calls are timed to be
  over before the samples that the growth figures compare (the first three
  after the warm-up and the last three). Skipped, with a note, without root,
  `ip` or Chromium;
* a card tap every `TAP_EVERY_S` through a fresh private pcscd and vpcd
  (mirror.harness.pcscd, mirror.harness.vpcd), a new loyalty member each time,
  so each tap writes an order. Skipped, with a note, without pcscd/vpcd;
* two logged-in staff consoles (mirror.harness.staff_clients, in the kiosk's
  namespace): /staff/ws open all the time, a reconnect a minute, a suggestion
  pushed now and then while someone is at the mirror;
* every `SAMPLE_EVERY_S` it samples the kiosk process's RSS, open file
  descriptors and threads from /proc/PID, and its fps from the control
  socket's `status`, with a progress line on stderr.

The result: {"minutes", "rss_start_mb", "rss_end_mb", "rss_slope_mb_per_h",
"fd_growth", "thread_growth", "fps_p5", "errors"}:

* the RSS slope is a least-squares fit over the samples after a 3-minute
  warm-up (runs shorter than 6 minutes: after the first half, and the notes
  say so);
* fd and thread growth: the median of the last 3 samples after the warm-up
  minus the median of the first 3;
* fps_p5 over every sample;
* errors: the kiosk's log records at ERROR or above, tracebacks, failed calls
  and failed taps (the notes list the first few), and a kiosk that exited by
  itself or uncleanly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mirror.app.control import ControlError
from mirror.app.health import process_health
from mirror.core.config import DEMO_CLIP

SAMPLE_EVERY_S = 10.0
WARMUP_S = 180.0
SHORT_RUN_S = 360.0             # shorter runs: the warm-up is the first half
FIRST_CALL_S = 20.0
CALL_EVERY_S = 240.0
CALL_CONNECTED_S = 30.0
CALL_QUIET_END_S = 120.0        # no call starts this close to the end (the last samples are without one)
TAP_EVERY_S = 20.0
TAP_FIRST_S = 10.0
# the kiosk's environment as systemd/smart-mirror.service sets it, so the soak
# measures the heap the appliance runs with (see MALLOC_ARENA_MAX there)
APPLIANCE_ENV = {"MALLOC_ARENA_MAX": "2"}

TARGETS = {  # key: (comparison, bound, meaning)
    "rss_slope_mb_per_h": ("<=", 5.0, "RSS slope after the warm-up of at most 5 MB/h"),
    "fd_growth": ("<=", 0, "no growth in open file descriptors"),
    "thread_growth": ("<=", 0, "no growth in threads"),
    "fps_p5": (">=", 25.0, "fps p5 of at least 25"),
    "errors": ("<=", 0, "0 errors"),
}


class SoakError(Exception):
    pass


@dataclass
class Sample:
    t: float                    # seconds since the soak started sampling
    rss_mb: float
    fds: int
    threads: int
    fps: float


# --- the figures -------------------------------------------------------------------
def slope_per_hour(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys against ts (seconds), per hour."""
    n = len(ts)
    if n < 2:
        return None
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600.0


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def growth(values: list[float]) -> float | None:
    """Median of the last 3 minus median of the first 3 (fewer when the run is short)."""
    if len(values) < 2:
        return None
    k = min(3, len(values) // 2)
    return statistics.median(values[-k:]) - statistics.median(values[:k])


def warmup_s(duration_s: float) -> tuple[float, str]:
    if duration_s < SHORT_RUN_S:
        return duration_s / 2, (f"the run is shorter than {SHORT_RUN_S / 60:.0f} minutes: the warm-up is its first "
                                f"half ({duration_s / 120:.1f} min) instead of {WARMUP_S / 60:.0f} minutes")
    return WARMUP_S, f"warm-up: the first {WARMUP_S / 60:.0f} minutes"


def summarize(samples: list[Sample], duration_s: float, errors: int) -> dict:
    warm, _ = warmup_s(duration_s)
    after = [s for s in samples if s.t >= warm] or samples[-2:]
    slope = slope_per_hour([s.t for s in after], [s.rss_mb for s in after])
    fdg, thg = growth([s.fds for s in after]), growth([s.threads for s in after])
    p5 = percentile([s.fps for s in samples], 5)
    return {
        "minutes": round((samples[-1].t if samples else 0.0) / 60.0, 2),
        "rss_start_mb": round(samples[0].rss_mb, 1) if samples else None,
        "rss_end_mb": round(samples[-1].rss_mb, 1) if samples else None,
        "rss_slope_mb_per_h": None if slope is None else round(slope, 2),
        "fd_growth": None if fdg is None else round(fdg, 1),
        "thread_growth": None if thg is None else round(thg, 1),
        "fps_p5": None if p5 is None else round(p5, 1),
        "errors": errors,
    }


def verdicts(result: dict) -> list[tuple[str, str, bool]]:
    """(key, line, met) per target."""
    out = []
    for key, (op, bound, meaning) in TARGETS.items():
        v = result.get(key)
        met = v is not None and (v <= bound if op == "<=" else v >= bound)
        out.append((key, f"{'met    ' if met else 'NOT MET'}  {meaning}: {key} = {v}", met))
    return out


_RECORD = re.compile(r"^(?:\d\d:\d\d:\d\d )?(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.<>-]+: ")


def log_errors(text: str) -> list[str]:
    """The kiosk log's records at ERROR/CRITICAL, and tracebacks that are not
    part of such a record (a thread that died, an uncaught exception): one
    short line each."""
    found: list[str] = []
    in_error = False
    for line in text.splitlines():
        m = _RECORD.match(line)
        if m:
            in_error = m.group(1) in ("ERROR", "CRITICAL")
            if in_error:
                found.append(line[:200])
        elif line.startswith("Traceback (most recent call last)") and not in_error:
            found.append("traceback: " + line[:160])
            in_error = True        # its lines belong to this one
    return found


# --- the kiosk's config ---------------------------------------------------------------
def soak_config(folder: Path, *, clip: Path, call_port: int, with_reader: bool, staff_port: int) -> Path:
    cfg = folder / "kiosk.toml"
    reader = (f'[nfc]\nreader = "Virtual PCD"\npoll_s = 0.2\n[checkout]\ndb_path = "{folder / "orders.db"}"\n'
              "confirm_s = 5\n") if with_reader else (f'[nfc]\nenabled = false\n[checkout]\nenabled = false\n'
                                                       f'db_path = "{folder / "orders.db"}"\n')
    cfg.write_text(f"""
[camera]
source = "video"
path = "{clip}"
loop = true
[display]
fullscreen = false
[control]
socket = "{folder / 'control.sock'}"
[logging]
journal = false
[call]
host = "127.0.0.1"
port = {call_port}
[staff]
port = {staff_port}
{reader}""")
    return cfg


# --- the load ------------------------------------------------------------------------------
@dataclass
class Activity:
    name: str
    done: int = 0
    failed: list[str] = field(default_factory=list)
    note: str = ""
    detail: dict = field(default_factory=dict)


class _Load(threading.Thread):
    """One kind of load, on its own thread, at times counted from `t0`."""

    def __init__(self, name: str, t0: float, duration_s: float, say):
        super().__init__(name=f"soak-{name}", daemon=True)
        self.act = Activity(name)
        self.t0, self.duration_s, self.say = t0, duration_s, say
        self.stopping = threading.Event()

    def _wait_until(self, t: float) -> bool:
        """Sleep until t seconds into the run; False when the soak is ending."""
        return not self.stopping.wait(max(0.0, self.t0 + t - time.monotonic()))

    def fail(self, what: str) -> None:
        self.act.failed.append(what)
        self.say(f"{self.act.name} failed: {what}")


class Calls(_Load):
    """A friend joins from headless Chromium, is let in by the clip's thumbs-up,
    stays CALL_CONNECTED_S and hangs up; every CALL_EVERY_S."""

    def __init__(self, kiosk, ns, folder: Path, *a):
        super().__init__("call", *a)
        self.kiosk, self.ns, self.folder = kiosk, ns, folder

    def times(self) -> list[float]:
        out, t = [], FIRST_CALL_S
        last_start = max(FIRST_CALL_S, self.duration_s - CALL_QUIET_END_S)
        while t <= last_start:
            out.append(t)
            t += CALL_EVERY_S
        return out

    def run(self) -> None:
        from playwright.sync_api import sync_playwright
        try:
            with sync_playwright() as pw:
                for t in self.times():
                    if not self._wait_until(t):
                        return
                    self._one(pw)
        except Exception as e:              # playwright itself: count it, say it, end the calls
            self.fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def _one(self, pw) -> None:
        from mirror.harness.call_bench import CHROMIUM_FLAGS, STATS_JS, admit, join_page, wait_in_lobby
        from playwright.sync_api import Error as PlaywrightError
        n = len(self.act.failed) + self.act.done + 1
        browser = pw.chromium.launch(executable_path=str(self.ns.chromium_wrapper(self.folder)),
                                     args=CHROMIUM_FLAGS, headless=True)
        step = "asking the kiosk for a join link"
        try:
            url = self.kiosk.control("link")["url"]
            step = "joining"
            page = join_page(browser, url, name=f"Friend {n}")
            wait_in_lobby(page)
            self.say(f"call {n}: friend in the lobby; waiting for the clip's thumbs-up")
            step = "being let in by the clip's thumbs-up"
            admit(self.kiosk, page)
            step = "on the call"
            first = page.evaluate(STATS_JS) or {"decoded": 0}
            t_end = time.monotonic() + CALL_CONNECTED_S
            while time.monotonic() < t_end and not self.stopping.is_set():
                time.sleep(0.5)
            last = page.evaluate(STATS_JS) or {"decoded": 0}
            decoded = last["decoded"] - first["decoded"]
            step = "hanging up"
            page.click("#hangup")
            deadline = time.monotonic() + 20
            while self.kiosk.control("status").get("connected") and time.monotonic() < deadline:
                time.sleep(0.3)
            if self.kiosk.control("status").get("connected"):
                self.fail(f"call {n}: the kiosk still shows the friend connected 20 s after she hung up")
            elif decoded < 10 and not self.stopping.is_set():
                self.fail(f"call {n}: the browser decoded only {decoded} frames in {CALL_CONNECTED_S:.0f} s")
            else:
                self.act.done += 1
                self.say(f"call {n}: ok ({decoded} frames shown in the browser), hung up")
        except (PlaywrightError, ControlError, KeyError) as e:
            self.fail(f"call {n}, {step}: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}")
        finally:
            try:
                browser.close()
            except Exception:
                pass


class StaffTablets(_Load):
    """Two logged-in staff consoles for the whole run (mirror.harness.staff_clients, in the
    kiosk's namespace): /staff/ws open, a reconnect a minute, a push now and then."""

    def __init__(self, kiosk, ns, port: int, *a):
        super().__init__("staff tablet", *a)
        self.kiosk, self.ns, self.port = kiosk, ns, port

    def run(self) -> None:
        seconds = max(10.0, self.duration_s - 20.0)
        cmd = self.ns.wrap(sys.executable, "-m", "mirror.harness.staff_clients", "--port", str(self.port),
                           "--seconds", f"{seconds:.0f}")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as e:
            self.fail(f"the staff tablets did not run: {type(e).__name__}: {str(e)[:160]}")
            return
        self.act.done = out["connects"]
        self.act.detail = {"pushes": out["pushes"]}
        for e in out["errors"]:
            self.fail(e)


def _member_tag(n: int):
    import ndef
    from mirror.harness.vpcd import Type4Tag
    uid = bytes([0x04, 0x50, 0x4B]) + n.to_bytes(4, "big")
    recs = [ndef.Record("urn:nfc:ext:store.example:member", "", f"id=S{n:05d}&name=Soak".encode())]
    return Type4Tag(uid, b"".join(ndef.message_encoder(recs)))


class Taps(_Load):
    """A member card on the vpcd reader every TAP_EVERY_S, held until the
    mirror confirms the order (or refuses it, or 10 s pass)."""

    def __init__(self, kiosk, pcscd, *a):
        super().__init__("tap", *a)
        self.kiosk, self.pcscd = kiosk, pcscd
        self.act.detail = {"orders": 0, "refused": 0}

    def run(self) -> None:
        t = TAP_FIRST_S
        while t < self.duration_s - 5 and self._wait_until(t):
            self._one(self.act.done + len(self.act.failed) + 1)
            t += TAP_EVERY_S

    def _one(self, n: int) -> None:
        seen: list[str] = []
        present = None
        tag = _member_tag(n)
        try:
            with tag.insert(port=self.pcscd.port):
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    st = self.kiosk.control("status", timeout=5)
                    kind, present = st.get("checkout"), st.get("present")
                    if not seen or seen[-1] != kind:
                        seen.append(kind)
                    if kind in ("confirmed", "refused", "error"):
                        break
                    time.sleep(0.15)
                time.sleep(0.5)             # lifted off a moment after the mirror answered
        except (OSError, ControlError) as e:
            self.fail(f"tap {n}: {type(e).__name__}: {e}")
            return
        if "confirmed" in seen:
            self.act.done += 1
            self.act.detail["orders"] += 1
        elif "refused" in seen and not present:
            self.act.done += 1               # nobody at the mirror at that moment: refusing is right
            self.act.detail["refused"] += 1
        else:
            self.fail(f"tap {n}: no confirmation within 10 s (the card got {len(tag.apdus)} APDUs; the checkout "
                      f"showed {' -> '.join(map(str, seen))}; present={present})")


# --- the run ------------------------------------------------------------------------------------
def soak(minutes: float, *, progress: bool = True) -> dict:
    """Runs the soak; returns {"result": the 8 figures, "targets": [(key, line, met)], "notes": [...]}."""
    from mirror.harness.call_bench import CHROMIUM, BenchError, KioskProcess, NetNamespace, NoNamespace, free_port
    from mirror.harness.pcscd import PcscdError, PrivatePcscd
    duration_s = minutes * 60.0
    notes: list[str] = [warmup_s(duration_s)[1]]

    def say(msg: str) -> None:
        if progress:
            print(f"soak: {msg}", file=sys.stderr, flush=True)

    if not DEMO_CLIP.is_file():
        raise SoakError(f"{DEMO_CLIP}: the bundled clip is missing")
    why_no_calls = ("needs root for its network namespace" if os.geteuid() != 0
                    else "the 'ip' command is missing (iproute2)" if not shutil.which("ip")
                    else f"{CHROMIUM} is missing (Debian's chromium)" if not Path(CHROMIUM).exists() else "")
    try:
        import playwright  # noqa: F401
    except ImportError:
        why_no_calls = why_no_calls or "playwright is not installed"

    with tempfile.TemporaryDirectory(prefix="mirror-soak-") as tmp:
        folder = Path(tmp)
        pcscd = None
        try:
            pcscd = PrivatePcscd(folder / "pcscd").start()
            pcscd.activate()                # the kiosk inherits PCSCLITE_CSOCK_NAME
        except PcscdError as e:
            pcscd = None
            notes.append(f"taps skipped: no pcscd/vpcd ({e})")
        ns = None
        try:
            if not why_no_calls:
                try:
                    ns = NetNamespace(f"mirror-soak-{os.getpid()}").__enter__()
                except BenchError as e:
                    why_no_calls = str(e)
            if why_no_calls:
                notes.append(f"friend calls skipped: {why_no_calls}")
            staff_port = 8080 if ns else free_port()
            cfg = soak_config(folder, clip=DEMO_CLIP.resolve(), call_port=8443 if ns else free_port(),
                              with_reader=pcscd is not None, staff_port=staff_port)
            from mirror.harness.staff_bench import _add_user
            _add_user(folder / "orders.db")         # the tablets' login
            say(f"starting the kiosk headless on {DEMO_CLIP.name} (1080x1920)"
                + (f" in network namespace {ns.name}" if ns else "")
                + f"; log in {folder / 'kiosk.log'} (kept after the run only when there were errors)")
            os.environ.update(APPLIANCE_ENV)        # KioskProcess builds the kiosk's env from ours
            kiosk = KioskProcess(ns or NoNamespace(), cfg, folder / "kiosk.log")
            return _run(kiosk, ns, pcscd, folder, duration_s, notes, say, staff_port)
        finally:
            if ns is not None:
                ns.__exit__(None, None, None)
            if pcscd is not None:
                pcscd.close()


def _run(kiosk, ns, pcscd, folder: Path, duration_s: float, notes: list[str], say, staff_port: int) -> dict:
    from mirror.harness.call_bench import BenchError, NoNamespace
    samples: list[Sample] = []
    loads: list[_Load] = []
    problems: list[str] = []
    log_text = ""
    try:
        try:
            kiosk.wait_ready(timeout=180)
        except BenchError as e:
            raise SoakError(str(e))
        pid = str(kiosk.proc.pid)
        say(f"kiosk ready (pid {pid}); sampling every {SAMPLE_EVERY_S:.0f} s for {duration_s / 60:.1f} min")
        t0 = time.monotonic()
        if ns is not None:
            loads.append(Calls(kiosk, ns, folder, t0, duration_s, say))
        if pcscd is not None:
            loads.append(Taps(kiosk, pcscd, t0, duration_s, say))
        loads.append(StaffTablets(kiosk, ns or NoNamespace(), staff_port, t0, duration_s, say))
        for load in loads:
            load.start()
        k = 0
        while True:
            target = t0 + k * SAMPLE_EVERY_S
            time.sleep(max(0.0, target - time.monotonic()))
            if kiosk.proc.poll() is not None:
                problems.append(f"the kiosk exited by itself with {kiosk.proc.returncode} after "
                                f"{time.monotonic() - t0:.0f} s")
                say(problems[-1])
                break
            t = time.monotonic() - t0
            h = process_health(pid)
            try:
                fps = float(kiosk.control("status", timeout=5)["fps"])
            except (ControlError, KeyError, ValueError) as e:
                problems.append(f"no status from the kiosk at {t:.0f} s: {e}")
                fps = 0.0
            if h["rss_mb"] is None or h["fds"] is None or h["threads"] is None:
                problems.append(f"cannot read /proc/{pid} at {t:.0f} s")
                break
            samples.append(Sample(t, h["rss_mb"], h["fds"], h["threads"], fps))
            done = ", ".join(f"{ld.act.name}s {ld.act.done} ok {len(ld.act.failed)} failed" for ld in loads)
            say(f"{int(t) // 60:2d}:{int(t) % 60:02d}/{int(duration_s) // 60}:{int(duration_s) % 60:02d}  "
                f"rss {h['rss_mb']:.1f} MB  fds {h['fds']}  threads {h['threads']}  fps {fps:.1f}"
                + (f"  ({done})" if done else ""))
            if t >= duration_s - 0.5:
                break
            k += 1
    finally:
        for load in loads:
            load.stopping.set()
        for load in loads:
            load.join(90)
            if load.is_alive():
                problems.append(f"the {load.act.name} load did not stop within 90 s")
        rc = kiosk.stop()
        if rc not in (0, None) and not any("exited by itself" in p for p in problems):
            problems.append(f"the kiosk exited with {rc} when stopped (SIGTERM)")
        try:
            log_text = kiosk.log_path.read_text(errors="replace")
        except OSError:
            pass
    logged = log_errors(log_text)
    failed = [f for ld in loads for f in ld.act.failed]
    errors = len(logged) + len(failed) + len(problems)
    if errors and log_text:             # the temporary folder goes; the kiosk's log stays for a look
        fd, kept = tempfile.mkstemp(prefix="mirror-soak-kiosk-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(log_text)
        notes.append(f"the kiosk's log is kept in {kept}")
    result = summarize(samples, duration_s, errors)
    for ld in loads:
        extra = "".join(f", {k} {v}" for k, v in ld.act.detail.items())
        notes.append(f"{ld.act.name}s: {ld.act.done} ok, {len(ld.act.failed)} failed{extra}")
    notes.append(f"kiosk log: {len(logged)} error records or tracebacks")
    notes += [f"  {x}" for x in (logged[:5] + failed[:5] + problems[:5])]
    notes.append(f"samples: {len(samples)} every {SAMPLE_EVERY_S:.0f} s")
    return {"result": result, "targets": verdicts(result), "notes": notes}
