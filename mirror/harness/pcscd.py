"""A pcscd of our own, for tests and `mirror bench-checkout`.

pcscd's client socket is fixed at /run/pcscd/pcscd.comm and Debian's vpcd
reader listens on 35963, so two pcscd cannot normally coexist, and a pcscd
left running for a long time was once seen stuck reporting a card. So the
tests and the bench start a *fresh, private* pcscd:

* in its own mount namespace (`unshare --mount`), with a private directory
  bind-mounted over /run/pcscd, so its socket appears in that directory and
  any system pcscd is left alone;
* with its own reader.conf.d (`pcscd -c DIR`) whose vpcd slots listen on free
  ports;
* clients reach it through `PCSCLITE_CSOCK_NAME`, which libpcsclite reads
  (once per process, at the first PC/SC call).

Stopping it (SIGTERM, then SIGKILL) also ends the namespace.

Where a mount namespace is not allowed (a container without CAP_SYS_ADMIN), or
with MIRROR_PCSCD_PRIVATE=off, it falls back to the system path /run/pcscd,
but only when no pcscd runs there: a pcscd this harness did not start is never
stopped (it may serve a real reader, or another run); the start fails with a
message saying so instead. MIRROR_PCSCD_PRIVATE=require turns the fallback off.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
PCSCD = "/usr/sbin/pcscd"
SYSTEM_RUN = "/run/pcscd"


class PcscdError(RuntimeError):
    pass


def _free_port_pair() -> int:
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
            return port
        except OSError:
            continue
    raise PcscdError("no free pair of TCP ports for the virtual reader")


class PrivatePcscd:
    def __init__(self, workdir: str | Path | None = None, port: int | None = None):
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mirror-pcscd-"))
        self._own_dir = workdir is None
        self.run_dir = self.dir / "run"
        self.conf_dir = self.dir / "reader.conf.d"
        self.port = port or _free_port_pair()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "pcscd.log"
        # Shared mode: no mount namespace, the system path /run/pcscd (see start()).
        self.shared = os.environ.get("MIRROR_PCSCD_PRIVATE") == "off"

    @property
    def socket_path(self) -> str:
        return str(Path(SYSTEM_RUN if self.shared else self.run_dir) / "pcscd.comm")

    @property
    def vpcd_ports(self) -> tuple[int, int]:
        return self.port, self.port + 1

    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": self.socket_path}

    def activate(self) -> None:
        """Point this process's PC/SC calls at this pcscd (before the first call)."""
        os.environ["PCSCLITE_CSOCK_NAME"] = self.socket_path

    def _command(self) -> list[str]:
        if self.shared:
            return [PCSCD, "--foreground", "--error", "-c", str(self.conf_dir)]
        inner = (f"mkdir -p /run/pcscd && mount --bind '{self.run_dir}' /run/pcscd && "
                 f"exec {PCSCD} --foreground --error -c '{self.conf_dir}'")
        base = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            base = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
        return base + ["sh", "-c", inner]

    def _refuse_running_system_pcscd(self) -> None:
        """Shared mode only: a pcscd named by /run/pcscd/pcscd.pid is not ours
        to stop (we never kill a process we did not start): say so and stop."""
        try:
            pid = int(Path(SYSTEM_RUN, "pcscd.pid").read_text().split()[0])
            if Path(f"/proc/{pid}/comm").read_text().strip() != "pcscd":
                return                  # a stale pid file
        except (OSError, ValueError, IndexError):
            return
        raise PcscdError(f"a pcscd this harness did not start runs on {SYSTEM_RUN} (pid {pid}) and a private one "
                         "needs a mount namespace (root or user namespaces); stop that pcscd yourself "
                         "(systemctl stop pcscd.socket pcscd) or run where namespaces are allowed")

    def start(self, timeout: float = 10.0) -> "PrivatePcscd":
        """Start it; when a mount namespace is not allowed (a container without
        CAP_SYS_ADMIN), fall back to the system socket path, when no other
        pcscd runs there (none is ever stopped: see the module's docstring)."""
        try:
            return self._start(timeout)
        except PcscdError:
            if self.shared or os.environ.get("MIRROR_PCSCD_PRIVATE") == "require":
                raise
            log.warning("a private pcscd could not start (%s); using the system socket path", self.tail())
            self.shared = True
            return self._start(timeout)

    def _start(self, timeout: float) -> "PrivatePcscd":
        for tool in (PCSCD,) if self.shared else ("unshare", PCSCD):
            if not shutil.which(tool):
                raise PcscdError(f"{tool} not found; install util-linux and pcscd (./setup.sh)")
        if not os.path.exists(VPCD_DRIVER):
            raise PcscdError(f"{VPCD_DRIVER} not found; install vsmartcard-vpcd (./setup.sh)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        if self.shared:
            self._refuse_running_system_pcscd()
            for stale in ("pcscd.comm", "pcscd.pid"):
                try:
                    Path(SYSTEM_RUN, stale).unlink()
                except OSError:
                    pass
        for stale in self.run_dir.iterdir():       # left by a killed pcscd of ours
            stale.unlink()
        (self.conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x{self.port:04X}\n'
            f"LIBPATH      {VPCD_DRIVER}\nCHANNELID    0x{self.port:04X}\n")
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command(), stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PcscdError(f"pcscd exited with {self.proc.returncode}: {self.tail()}")
            if os.path.exists(self.socket_path) and self._port_open():
                return self
            time.sleep(0.05)
        self.stop()
        raise PcscdError(f"pcscd did not come up within {timeout:g} s: {self.tail()}")

    def _port_open(self) -> bool:
        """vpcd listens (read from /proc, so no connection is made: a connect
        would look like a card to vpcd)."""
        want = f":{self.port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if len(parts) > 3 and parts[1].endswith(want) and parts[3] == "0A":   # 0A = LISTEN
                    return True
        return False

    def tail(self, n: int = 400) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip().replace("\n", " | ")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, like a crash (tests use it to check the watcher recovers)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
