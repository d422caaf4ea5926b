"""The kiosk's own health, for `mirror status`: memory, open file
descriptors, threads and uptime of this process (read from /proc/self), and
the last warnings and errors it logged.

`install_error_log()` puts one `RecentErrors` handler on the root logger
(idempotent: the Kiosk calls it when it is built, the status command again in
case logging was set up afresh since). It keeps the last `RecentErrors.KEEP`
WARNING/ERROR records as one-line strings with their local time, and counts
them all, so a months-long run shows what went wrong last without a journal.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path

MAX_LINE = 300          # one record, one line, at most this many characters

_PROC = Path("/proc/self")


class RecentErrors(logging.Handler):
    """The last KEEP records at WARNING or above, as "YYYY-mm-dd HH:MM:SS LEVEL
    logger: message (ExceptionType: text)" on one line each."""
    KEEP = 10

    def __init__(self, keep: int = KEEP):
        super().__init__(level=logging.WARNING)
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.counts = {"warnings": 0, "errors": 0}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(one_line(record))
            self.counts["errors" if record.levelno >= logging.ERROR else "warnings"] += 1
        except Exception:           # a health helper must never break logging
            self.handleError(record)

    def recent(self) -> list[str]:
        return list(self.lines)


def one_line(record: logging.LogRecord) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
    try:
        msg = record.getMessage()
    except Exception:               # bad %-args: show the template rather than nothing
        msg = str(record.msg)
    if record.exc_info and record.exc_info[1] is not None:
        e = record.exc_info[1]
        msg = f"{msg} ({type(e).__name__}: {e})" if str(e) else f"{msg} ({type(e).__name__})"
    msg = " ".join(msg.split())     # tracebacks, multi-line messages: one line
    line = f"{when} {record.levelname} {record.name}: {msg}"
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…"


_lock = threading.Lock()
_handler: RecentErrors | None = None


def install_error_log() -> RecentErrors:
    """The process's one RecentErrors handler, on the root logger (added again
    if logging was reconfigured and dropped it)."""
    global _handler
    with _lock:
        if _handler is None:
            _handler = RecentErrors()
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)
        return _handler


def _status_fields(pid: str = "self") -> dict[str, str]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
    except OSError:
        pass
    return out


def rss_mb(pid: str = "self") -> float | None:
    """Resident memory in MB (VmRSS), None where /proc is not there."""
    v = _status_fields(pid).get("VmRSS", "")
    try:
        return round(int(v.split()[0]) / 1024.0, 1)
    except (ValueError, IndexError):
        return None


def open_fds(pid: str = "self") -> int | None:
    try:
        n = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return n - 1 if pid == "self" else n          # our own listing held one open


def threads(pid: str = "self") -> int | None:
    """Every thread of the process, native ones (MediaPipe's, aiortc's) included."""
    try:
        return int(_status_fields(pid).get("Threads", ""))
    except ValueError:
        return threading.active_count() if pid == "self" else None


def uptime_s(pid: str = "self") -> float | None:
    """Seconds since the process started (its start time in /proc, in clock
    ticks after boot, against the machine's uptime)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])     # field 22: starttime
        up = float(Path("/proc/uptime").read_text().split()[0])
        return round(max(0.0, up - start_ticks / os.sysconf("SC_CLK_TCK")), 1)
    except (OSError, ValueError, IndexError):
        return None


def process_health(pid: str = "self") -> dict:
    """{"rss_mb", "fds", "threads", "uptime_s"} of a process (this one by default)."""
    return {"rss_mb": rss_mb(pid), "fds": open_fds(pid), "threads": threads(pid), "uptime_s": uptime_s(pid)}


def trim_heap() -> int:
    """Hand the heap's free pages back to the system (glibc `malloc_trim`).
    A friend call's codec threads free tens of MB that glibc otherwise keeps:
    the resting RSS stepped up 3-7 MB with every call. Returns 1 when memory
    was released, 0 when none was, -1 where there is no glibc."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return int(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return -1
