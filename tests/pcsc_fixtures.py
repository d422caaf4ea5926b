"""Shared fixtures for the NFC checkout tests: a fresh private pcscd with the
vpcd reader for the whole session, a loopback store checkout, and helpers to
collect reader-watcher events and to drive the checkout host.

Registered through tests/conftest.py (one pcscd per session: libpcsclite
reads PCSCLITE_CSOCK_NAME once per process).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pcscd():
    """A fresh pcscd (own socket, own vpcd ports), stopped at the end."""
    from mirror.harness.pcscd import PrivatePcscd
    daemon = PrivatePcscd().start()
    daemon.activate()            # this process's PC/SC calls, and child processes, use it
    yield daemon
    daemon.close()


@pytest.fixture
def store():
    from mirror.harness.store_server import StoreServer
    with StoreServer(seed=1) as s:
        yield s


class Events:
    """A thread-safe event sink with wait_for."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        self.seen: list[tuple[str, dict]] = []

    def __call__(self, kind: str, **data):
        self.q.put((kind, data))

    def wait_for(self, kinds, timeout: float = 5.0):
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kinds} within {timeout} s; saw {[k for k, _ in self.seen]}")
            try:
                kind, data = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append((kind, data))
            if kind in kinds:
                return kind, data


class HostProc:
    """`mirror checkout-host` as a subprocess, driven over stdin/stdout."""

    def __init__(self, env: dict):
        full = dict(os.environ)
        full.update(env)
        full.update({"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONUNBUFFERED": "1",
                     "MIRROR_DISPLAY_WIDTH": "270", "MIRROR_DISPLAY_HEIGHT": "480"})
        self.proc = subprocess.Popen([sys.executable, "-m", "mirror", "checkout-host"], cwd=str(ROOT),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full, text=True, bufsize=1)
        self.q: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("ready", 60)

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                pass
        self.q.put({"ev": "exited"})

    def send(self, event: str, **data):
        self.proc.stdin.write(json.dumps({"publish": event, "data": data}) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, name: str, timeout: float = 10.0, **match) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} {match} within {timeout} s; saw {[e['ev'] for e in self.seen]}; "
                                     f"stderr: {self.stderr_tail()}")
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if ev["ev"] == name and all(ev.get(k) == v for k, v in match.items()):
                return ev
            if ev["ev"] == "exited" and name != "exited":
                raise AssertionError(f"checkout host exited ({self.proc.wait()}) waiting for {name}; "
                                     f"stderr: {self.stderr_tail()}")

    def shopper(self, sku: str = "DRESS-0930", size: str = "S", colour_steps: int = 1, reserve: bool = False):
        self.send("presence.changed", present=False)
        self.send("presence.changed", present=True)
        self.send("product.select", sku=sku)
        for _ in range(colour_steps):
            self.send("action.requested", action="next_color", source="test")
        self.send("size.select", size=size)
        if reserve:
            self.send("reserve.requested", on=True)
        self.send("bench.marker", id=1)
        return self.wait_for("bench.marker", 10)

    def stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return (self.proc.stderr.read() or "")[-800:]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"quit": true}\n')
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def member_tag(uid: bytes, member: str = "M1001", name: str = "Jenny", **kw):
    import ndef
    from mirror.harness.vpcd import Type4Tag
    recs = [ndef.Record("urn:nfc:ext:store.example:member", "", f"id={member}&name={name}".encode())]
    return Type4Tag(uid, b"".join(ndef.message_encoder(recs)), **kw)
