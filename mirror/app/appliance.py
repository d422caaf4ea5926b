"""Talking to systemd when the kiosk runs as a `Type=notify` service.

`Appliance` is a frame-loop add-on. Only when `NOTIFY_SOCKET` is set (systemd
sets it for `Type=notify` units) it sends, through the `sdnotify` library:

* `READY=1` after the first composed frame (the models are loaded and the
  screen shows the mirror), so `systemctl start` returns then;
* `WATCHDOG=1` from `on_composed`, at most every `WatchdogSec/2`
  (`WATCHDOG_USEC` / 2; none when `WATCHDOG_PID` names another process). The
  ping rides on composed frames only, so a hung render loop stops the pings and
  systemd restarts the kiosk after `WatchdogSec`. systemd arms the watchdog at
  `READY=1`, so the seconds of model loading before it are covered by
  `TimeoutStartSec`, not by the watchdog;
* `STATUS=` with one line of health about every 5 s (what `systemctl status`
  shows), from the `status` callable the app passes in: this module imports no
  feature;
* `STOPPING=1` once, from `stopping()` (the SIGTERM handler calls it before the
  slow shutdown) or at the latest from `stop()`.

Without `NOTIFY_SOCKET` it does nothing at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Callable, Iterator, Mapping

from mirror.core.feature import Feature

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
STATUS_MAX_CHARS = 200


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when the
    watchdog is off or meant for another process (sd_watchdog_enabled's rules)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wpid = environ.get("WATCHDOG_PID")
    if wpid:
        try:
            if int(wpid) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1e6 / 2.0


def health_line(facts: dict) -> str:
    """One line for `systemctl status`, e.g. "serving 29 fps · camera ok ·
    reader ok · friend connected". Keys: fps, camera ("ok" or the problem),
    present; and when those features run, reader and checkout (the checkout),
    connected/knocking (the friend call)."""
    parts = [f"serving {float(facts.get('fps', 0.0)):.0f} fps"]
    camera = facts.get("camera", "ok")
    parts.append("camera ok" if camera == "ok" else f"camera: {camera}")
    if facts.get("present"):
        parts.append("shopper present")
    if "reader" in facts:
        parts.append(f"reader: {facts['reader']}" if facts["reader"] else "reader ok")
    if facts.get("checkout") not in (None, "", "idle", "status"):
        parts.append(f"checkout {facts['checkout']}")
    if "connected" in facts:
        parts.append("friend connected" if facts["connected"]
                     else "friend knocking" if facts.get("knocking") else "no call")
    line = " · ".join(str(p) for p in parts).replace("\n", " ")
    return line[:STATUS_MAX_CHARS]


def kiosk_facts(kiosk: Any) -> dict:
    """The facts `health_line` reads, from a running Kiosk (main thread; read
    only). A feature whose status() fails is named, never raised."""
    st = kiosk.loop.stats
    src = kiosk.camera.source
    facts: dict = {"fps": st.fps, "frames": st.frames, "present": kiosk.session.present,
                   "camera": "ok" if src.ok else (src.problem or "lost")}
    for f in kiosk.features:
        try:
            facts.update(f.status())
        except Exception as e:          # its state changed under us (another thread); next time
            facts[f.name] = f"status unavailable ({e.__class__.__name__})"
    return facts


class _Notifier:
    """sdnotify's SystemdNotifier, reconnected once when a send fails (the
    socket is re-created when systemd re-executes itself)."""

    def __init__(self):
        import sdnotify
        self._make = lambda: sdnotify.SystemdNotifier(debug=True)
        self._n = None

    def __call__(self, state: str) -> None:
        for attempt in (1, 2):
            try:
                if self._n is None:
                    self._n = self._make()
                # sdnotify encodes with latin-1; systemd reads UTF-8 (the status has a "·"):
                # hand it the UTF-8 bytes as latin-1 text, which encodes back to exactly them
                self._n.notify(state.encode("utf-8").decode("latin-1"))
                return
            except Exception as e:
                self._n = None
                if attempt == 2:
                    log.warning("cannot notify systemd (%s): %s", state.split("=", 1)[0], e)


class Appliance(Feature):
    name = "appliance"

    def __init__(self, status: Callable[[], dict], *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, send: Callable[[str], None] | None = None,
                 status_every_s: float = STATUS_EVERY_S):
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.status = status
        self.clock = clock
        self.status_every_s = status_every_s
        self.ping_every_s = watchdog_interval(env) if self.enabled else None
        self._send = (send or _Notifier()) if self.enabled else None
        self.ready = False
        self.stopped = False
        self._last_ping = 0.0
        self._last_status = 0.0

    def _notify(self, *states: str) -> None:
        if self._send is not None:
            self._send("\n".join(states))

    def _status_line(self) -> str:
        try:
            return health_line(self.status())
        except Exception as e:          # health is informative; it must never stop the pings
            return f"serving · status unavailable ({e.__class__.__name__})"

    def on_composed(self, frame) -> None:
        if not self.enabled or self.stopped:
            return
        now = self.clock()
        if not self.ready:
            self.ready = True
            self._last_ping = self._last_status = now
            self._notify("READY=1", f"STATUS={self._status_line()}")
            log.info("told systemd the kiosk is ready (watchdog %s)",
                     f"ping every {self.ping_every_s:.1f} s" if self.ping_every_s else "off")
            return
        if self.ping_every_s is not None and now - self._last_ping >= self.ping_every_s:
            self._last_ping = now
            self._notify("WATCHDOG=1")
        if now - self._last_status >= self.status_every_s:
            self._last_status = now
            self._notify(f"STATUS={self._status_line()}")

    def stopping(self) -> None:
        """The kiosk was asked to stop (SIGTERM): say so before the slow part."""
        if not self.enabled or self.stopped:
            return
        self.stopped = True
        self._notify("STOPPING=1", "STATUS=stopping")

    def stop(self) -> None:
        self.stopping()



def model_load_error(e: BaseException) -> Exception | None:
    """`e`, raised while the kiosk was built, as the one-line ModelError that
    `mirror run` exits 2 with, when a model failed to load (ModelError itself,
    or an error raised inside MediaPipe); None for anything else."""
    from vision.models import ModelError
    if isinstance(e, ModelError):
        return e
    tb = e.__traceback__
    while tb is not None:
        if "/mediapipe/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            msg = " ".join(str(e).split()) or e.__class__.__name__
            return ModelError(f"a vision model failed to load: {msg}")
        tb = tb.tb_next
    return None


class _InitializerErrors(logging.Filter):
    """Holds back a thread pool's "Exception in initializer" record when the
    exception is a model failing to load: the pipeline builds some models on a
    worker thread, and the caller then only sees BrokenThreadPool."""

    def __init__(self):
        super().__init__()
        self.error: Exception | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and self.error is None:
            self.error = model_load_error(exc)
            if self.error is not None:
                return False
        return True


@contextlib.contextmanager
def model_errors_in_one_line() -> Iterator[None]:
    """Around building the kiosk: a model that fails to load (vision.models.
    ModelError, or MediaPipe's RuntimeError/ValueError/OSError, also from the
    pipeline's worker thread) comes out as one ModelError, which `mirror run`
    prints as one line and exits 2 with."""
    from concurrent.futures import BrokenExecutor
    held = _InitializerErrors()
    pool_log = logging.getLogger("concurrent.futures")
    pool_log.addFilter(held)
    try:
        yield
    except (RuntimeError, ValueError, OSError) as e:
        err = model_load_error(e)
        if err is None and isinstance(e, BrokenExecutor):
            err = held.error
        if err is None or err is e:
            raise
        raise err from e
    finally:
        pool_log.removeFilter(held)
