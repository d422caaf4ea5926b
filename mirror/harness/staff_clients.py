"""Logged-in staff consoles as a load, for `mirror soak`.

`python -m mirror.harness.staff_clients --port P --seconds S [--clients N]`
runs N tablets against the kiosk's staff listener on 127.0.0.1:P (inside the
kiosk's network namespace when the soak runs one, hence a process of its
own). Each logs in, keeps /staff/ws open and reads every state, reconnects
every RECONNECT_S (a tablet that sleeps and wakes), and pushes one suggestion
every PUSH_EVERY_S while someone is at the mirror. The last line on stdout is
`{"clients", "connects", "pushes", "errors": [...]}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from mirror.harness.staff_bench import _Console

RECONNECT_S = 60.0
PUSH_EVERY_S = 45.0
SKUS = (["SHOE-0301"], ["ACC-0250"], ["SHOE-0315", "ACC-0210"])


class _Tablet(threading.Thread):
    def __init__(self, n: int, port: int, until: float):
        super().__init__(name=f"tablet-{n}", daemon=True)
        self.n, self.port, self.until = n, port, until
        self.connects = self.pushes = 0
        self.errors: list[str] = []

    def run(self) -> None:
        pushes = 0
        while time.monotonic() < self.until:
            console = _Console(self.port)
            try:
                console.login()
                console.open_ws()
                self.connects += 1
                end = min(self.until, time.monotonic() + RECONNECT_S)
                next_push = time.monotonic() + PUSH_EVERY_S * (0.5 + self.n / 2)
                while time.monotonic() < end:
                    time.sleep(0.5)
                    if time.monotonic() >= next_push:
                        next_push += PUSH_EVERY_S
                        with console.lock:
                            present = console.present
                        if present:
                            status, body = console.call("POST", "/staff/api/suggestions",
                                                        {"skus": SKUS[pushes % len(SKUS)]})
                            pushes += 1
                            if status == 200:
                                self.pushes += 1
                            elif status != 409:          # she left meanwhile: not a fault
                                self.errors.append(f"tablet {self.n}: push answered {status} {body}")
                if console.ws is None or console._reader is None or not console._reader.is_alive():
                    self.errors.append(f"tablet {self.n}: the websocket closed by itself")
            except Exception as e:                       # a load reports, it never stops the soak
                self.errors.append(f"tablet {self.n}: {type(e).__name__}: {str(e)[:160]}")
                time.sleep(2.0)
            finally:
                console.close()


def run_clients(port: int, seconds: float, clients: int = 2) -> dict:
    until = time.monotonic() + seconds
    tablets = [_Tablet(i, port, until) for i in range(clients)]
    for t in tablets:
        t.start()
    for t in tablets:
        t.join(seconds + 60)
    return {"clients": clients, "connects": sum(t.connects for t in tablets),
            "pushes": sum(t.pushes for t in tablets),
            "errors": [e for t in tablets for e in t.errors][:20]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--clients", type=int, default=2)
    a = p.parse_args(argv)
    print(json.dumps(run_clients(a.port, a.seconds, a.clients)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
