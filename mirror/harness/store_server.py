"""A loopback stand-in for the store's checkout system (tests and the bench).

It is a real HTTP server on 127.0.0.1 that behaves like a payment provider's
order endpoint with idempotency keys:

* `POST /orders` with an `Idempotency-Key` header creates the order once;
  a repeat of the same key gets the first reply again (and is counted as a
  replay), never a second order;
* `POST /orders/<order_id>/cancel` cancels it (also keyed);
* it fails on purpose when told to: `500` (nothing applied), `timeout`
  (applied, but the reply comes only after the client gave up) and `drop`
  (applied, then the connection is closed without a reply). Faults come from
  a queue of planned ones (`plan`) or at random (`rates`).
"""

from __future__ import annotations

import collections
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StoreServer:
    def __init__(self, *, rates: dict[str, float] | None = None, timeout_delay_s: float = 2.0,
                 seed: int | None = None):
        self.rates = dict(rates or {})
        self.timeout_delay_s = timeout_delay_s
        self.plan: collections.deque[str] = collections.deque()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.orders: dict[str, dict] = {}          # idempotency key -> first body
        self.replies: dict[str, tuple[int, dict]] = {}
        self.applied = collections.Counter()       # order_id -> times a create was applied (must be 1)
        self.cancelled: set[str] = set()
        self.requests = 0
        self.replays = 0
        self.missing_key = 0
        self.faults = collections.Counter()
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                store._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/orders"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="store", daemon=True)

    def start(self) -> "StoreServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- queries for tests ---------------------------------------------------
    def created_keys(self) -> set[str]:
        with self.lock:
            return {k for k, b in self.orders.items() if b.get("action") != "cancel"}

    def order_ids(self) -> set[str]:
        with self.lock:
            return set(self.applied)

    # --- the endpoint ------------------------------------------------------------
    def _pick_fault(self) -> str:
        with self.lock:
            if self.plan:
                return self.plan.popleft()
            r = self.rng.random()
            for name, p in self.rates.items():
                if r < p:
                    return name
                r -= p
        return ""

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(n) if n else b""
        key = h.headers.get("Idempotency-Key", "")
        with self.lock:
            self.requests += 1
        if not key:
            with self.lock:
                self.missing_key += 1
            return self._reply(h, 400, {"error": "Idempotency-Key header required"})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._reply(h, 400, {"error": "body is not JSON"})
        fault = self._pick_fault()
        if fault:
            with self.lock:
                self.faults[fault] += 1
        if fault == "500":
            return self._reply(h, 500, {"error": "injected failure"})
        if fault == "timeout":
            time.sleep(self.timeout_delay_s)
        status, reply = self._apply(h.path, key, body)
        if fault == "drop":
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            h.close_connection = True
            return
        self._reply(h, status, reply)

    def _apply(self, path: str, key: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            if key in self.replies:
                self.replays += 1
                return self.replies[key]
            self.orders[key] = body
            if path.endswith("/cancel"):
                oid = path.rstrip("/").split("/")[-2]
                self.cancelled.add(oid)
                result = (200, {"status": "cancelled", "payment_status": "cancelled"})
            else:
                oid = str(body.get("order_id", ""))
                self.applied[oid] += 1
                result = (201, {"status": "accepted", "payment_status": "awaiting payment",
                                "payment_url": f"http://127.0.0.1:{self.port}/pay/{oid}",
                                "store_order": f"S-{len(self.applied):06d}"})
            self.replies[key] = result
            return result

    def _reply(self, h: BaseHTTPRequestHandler, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass      # the client already gave up (timeout) or was killed
