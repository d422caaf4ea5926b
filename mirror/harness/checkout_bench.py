"""`mirror bench-checkout`: random taps through a real pcscd and vpcd.

The bench starts its own fresh pcscd (mirror.harness.pcscd, private socket and vpcd
ports, so a system pcscd is left alone), its own loopback store checkout that
fails on purpose (mirror.harness.store_server: 500s, slow replies past the client's
timeout, replies dropped after the order was taken), and the checkout host
(`mirror checkout-host`, mirror.harness.checkout_host: the kiosk's real session, checkout service,
order journal, outbox and compositor) as a child process.

Then, shopper after shopper, it sets up a cart on the host's bus (new session,
product, colour, size, sometimes "put one aside" or an accepted suggestion)
and presents cards through vpcd's socket protocol: single taps, double taps
(sometimes from a phone that randomises its UID), cards pulled mid-read, a
different card during an open checkout, a cancel gesture. With --chaos the
host is also SIGKILLed: at the named crash points (before/after the order
write, before delivery, after delivery before the reply is recorded) and at
random moments, then restarted; the shopper taps again if she never saw a
confirmation.

At the end the store stops failing, the outbox drains, and the bench checks
the store and the journal:
* lost: orders the shopper saw confirmed that are missing from the journal
  or never reached the store;
* duplicated: shoppers (cards) with more than one live order, plus orders the
  store applied more than once.

tap_to_confirm_* is measured from pcscd's card-present event (the return of
SCardGetStatusChange) to the first composed frame that shows the
confirmation; connect_to_confirm_* from the socket connect of the card (this
includes vpcd/pcscd's presence polling).
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ndef

from mirror.core.config import PROJECT_ROOT
from mirror.harness.pcscd import PcscdError, PrivatePcscd
from mirror.harness.store_server import StoreServer
from mirror.harness.vpcd import Card, Type4Tag

READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
CRASH_MODES = ("before_write", "after_write", "before_delivery", "after_delivery", "sigkill")


class BenchError(Exception):
    pass


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Host:
    """The checkout host child process and its event stream."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.events: queue.Queue = queue.Queue()

    def start(self, crashpoint: str = "") -> None:
        env = dict(self.env)
        if crashpoint:
            env["MIRROR_TEST_CRASHPOINT"] = crashpoint
        else:
            env.pop("MIRROR_TEST_CRASHPOINT", None)
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "mirror", "checkout-host"], cwd=str(PROJECT_ROOT),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, env=env,
                                     text=True, bufsize=1)
        logf.close()
        self.events = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.events), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen, q: queue.Queue) -> None:
        for line in proc.stdout:
            try:
                q.put(json.loads(line))
            except ValueError:
                pass
        q.put({"ev": "exited"})

    def send(self, event: str, **data) -> None:
        try:
            self.proc.stdin.write(json.dumps({"publish": event, "data": data}) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def arm(self, crashpoint: str) -> None:
        try:
            self.proc.stdin.write(json.dumps({"crashpoint": crashpoint}) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            try:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.kill()


class Bench:
    def __init__(self, taps: int, *, chaos: bool, seed: int, progress: bool, workdir: Path,
                 kill_rate: float = 0.05):
        self.taps_target = taps
        self.chaos = chaos
        self.kill_rate = kill_rate
        self.rng = random.Random(seed)
        self.seed = seed
        self.progress = progress
        self.dir = workdir
        self.db_path = workdir / "orders.db"
        self.presentations = 0
        self.counts = {"single": 0, "double": 0, "pulled_mid_read": 0, "other_card_refused": 0,
                       "cancelled": 0, "kills": 0, "retaps_after_kill": 0, "unexpected": 0}
        self.latency_ms: list[float] = []
        self.connect_ms: list[float] = []
        self.detect_ms: list[float] = []
        self.confirmed: dict[str, int] = {}         # order id -> shopper
        self.cancelled_orders: set[str] = set()
        self.slot_busy = [False, False]             # a card is on it, or its removal is not seen yet
        self.next_slot = 0
        self.connect_at: dict[int, float] = {}      # slot -> monotonic socket connect
        self.host: Host | None = None
        self.t0 = time.monotonic()

    # --- host events ----------------------------------------------------------
    def _note(self, ev: dict) -> None:
        name = ev.get("ev")
        if name == "nfc.removed" and ev.get("reader") in READERS:
            self.slot_busy[READERS.index(ev["reader"])] = False
        elif name == "nfc.tap" and ev.get("reader") in READERS:
            slot = READERS.index(ev["reader"])
            if slot in self.connect_at:
                self.detect_ms.append((ev["t_present"] - self.connect_at[slot]) * 1000)

    def wait_for(self, names: tuple[str, ...], timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.host.events.get(timeout=left)
            except queue.Empty:
                return None
            self._note(ev)
            if ev.get("ev") == "exited":
                return ev
            if ev.get("ev") in names:
                return ev

    def drain(self) -> None:
        while True:
            try:
                self._note(self.host.events.get_nowait())
            except queue.Empty:
                return

    # --- host lifecycle -----------------------------------------------------------
    def start_host(self) -> None:
        self.host.start()
        ev = self.wait_for(("ready",), 60)
        if ev is None or ev.get("ev") != "ready":
            raise BenchError(f"the checkout host did not start; see {self.host.log_path}")
        st = self.wait_for(("nfc.status",), 15)
        if st is None or not st.get("ok"):
            raise BenchError(f"the checkout host sees no reader ({st}); see {self.host.log_path}")

    def restart_host(self) -> None:
        for card in list(self._cards_on):
            card.remove()
        self._cards_on.clear()
        if self.host.alive:
            self.host.stop()
        time.sleep(0.45)                    # pcscd notices removals within one 400 ms poll
        self.slot_busy = [False, False]
        self.start_host()

    # --- cards ----------------------------------------------------------------------
    def present(self, card: Card) -> int:
        """Put the card on a free reader; returns the slot."""
        deadline = time.monotonic() + 5
        while True:
            free = [s for s in (self.next_slot, 1 - self.next_slot) if not self.slot_busy[s]]
            if free:
                break
            if time.monotonic() > deadline:
                raise BenchError("a reader never reported its card removed")
            self.wait_for(("nfc.removed",), 0.5)
        slot = free[0]
        self.next_slot = 1 - slot
        self.slot_busy[slot] = True
        card.insert(port=self.ports[slot])
        self.connect_at[slot] = card.connected_at
        self._cards_on.add(card)
        self.presentations += 1
        return slot

    def lift(self, card: Card) -> None:
        card.remove()
        self._cards_on.discard(card)

    def make_card(self, shopper: int, kind: str, pull: bool = False) -> Card:
        uid = bytes([0x04]) + self.rng.randbytes(6)
        member = f"M{self.seed % 100000:05d}{shopper:06d}"
        if kind == "uid":
            return Card(uid, pull_after_apdus=self.rng.randint(1, 2) if pull else None)
        records = [ndef.Record("urn:nfc:ext:store.example:member", "", f"id={member}&name=Shopper{shopper}".encode())]
        if self.rng.random() < 0.5:        # a long multi-record message, read in many chunks
            records.append(ndef.TextRecord("Loyalty terms " * self.rng.randint(20, 200)))
            records.append(ndef.UriRecord(f"https://store.example/member?member={member}"))
        msg = b"".join(ndef.message_encoder(records))
        mle = self.rng.choice([0x3B, 0x80, 0xFF])
        chunks = (len(msg) + mle - 1) // mle
        return Type4Tag(uid, msg, mle=mle, version=self.rng.choice([2, 2, 2, 1]),
                        pull_after_reads=self.rng.randint(1, chunks + 1) if pull else None)

    def same_card(self, card: Card, new_uid: bool = False) -> Card:
        """The same card (or a phone with the same member record but a fresh random UID)."""
        uid = bytes([0x08]) + self.rng.randbytes(6) if new_uid else card.uid
        if isinstance(card, Type4Tag):
            msg = card.nlen_file[2:]
            return Type4Tag(uid, msg, mle=card.mle, version=card.version)
        return Card(card.uid)

    # --- one shopper -------------------------------------------------------------------
    def setup_shopper(self, spec: dict) -> None:
        h = self.host
        h.send("presence.changed", present=False)
        h.send("presence.changed", present=True)
        h.send("product.select", sku=spec["sku"])
        for _ in range(spec["colour_steps"]):
            h.send("action.requested", action="next_color", source="bench")
        h.send("size.select", size=spec["size"])
        if spec["reserve"]:
            h.send("reserve.requested", on=True)
        if spec["suggestion"]:
            h.send("suggestion.accepted", **spec["suggestion"])
        marker = self.rng.getrandbits(32)
        h.send("bench.marker", id=marker)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ev = self.wait_for(("bench.marker",), 1.0)
            if ev and ev.get("ev") == "exited":
                raise BenchError(f"the checkout host died setting up a shopper; see {self.host.log_path}")
            if ev and ev.get("id") == marker:
                return
        raise BenchError("the checkout host did not take the shopper's cart")

    def tap_until_confirmed(self, shopper: int, card: Card, sigkill: bool = False) -> str | None:
        """Present the card; returns the confirmed order id (None if the host died first)."""
        slot = self.present(card)
        if sigkill:
            # Kill the host at a random moment shortly after it saw the card:
            # during the read, the write, the confirmation or the delivery.
            self.wait_for(("nfc.tap",), 1.5)
            time.sleep(self.rng.uniform(0.0, 0.08))
            self.host.kill()
        ev = self.wait_for(("checkout.confirm_shown", "nfc.read_failed", "checkout.refused"), 4.0)
        if ev is not None and ev["ev"] == "checkout.confirm_shown":
            self.latency_ms.append(ev["latency_ms"])
            self.connect_ms.append((ev["shown_at"] - self.connect_at[slot]) * 1000)
            self.confirmed[ev["order_id"]] = shopper
            self.lift(card)
            return ev["order_id"]
        self.lift(card)
        if ev is None or ev["ev"] != "exited":
            self.counts["unexpected"] += 1
        return None

    def shopper(self, n: int) -> None:
        rng = self.rng
        sku, sizes, colours = rng.choice(self.products)
        spec = {"sku": sku, "colour_steps": rng.randrange(colours), "size": rng.choice(sizes),
                "reserve": rng.random() < 0.15,
                "suggestion": {"sku": "SHOE-0101", "name": "Block-heel sandal", "colour": "Tan", "size": "38",
                               "price": "59.00"} if rng.random() < 0.2 else None}
        self.setup_shopper(spec)
        card_kind = "uid" if rng.random() < 0.2 else "tag"
        r = rng.random()
        scenario = ("pull" if r < 0.12 else "double" if r < 0.30 else "other" if r < 0.36 else
                    "cancel" if r < 0.42 else "single")
        crash = rng.choice(CRASH_MODES) if self.chaos and rng.random() < self.kill_rate else ""
        card = self.make_card(n, card_kind)
        if scenario == "pull":
            pulled = self.make_card(n, card_kind, pull=True)
            self.present(pulled)
            ev = self.wait_for(("nfc.read_failed", "checkout.confirm_shown"), 4.0)
            self.lift(pulled)
            if ev and ev["ev"] == "nfc.read_failed":
                self.counts["pulled_mid_read"] += 1
            elif ev and ev["ev"] == "checkout.confirm_shown":     # pulled after the last read: a full read
                self.confirmed[ev["order_id"]] = n
                return
            else:
                self.counts["unexpected"] += 1
        if crash and crash != "sigkill":
            self.host.arm(crash)
        order = self.tap_until_confirmed(n, card, sigkill=crash == "sigkill")
        if crash:
            if self.host.alive and crash != "sigkill":
                # Delivery crash points fire a moment after the write.
                self.wait_for(("exited",), 3.0)
            if self.host.alive:
                self.host.arm("")           # the crash point was not reached
            else:
                self.counts["kills"] += 1
                self.restart_host()
                if order is None:           # she never saw a confirmation: she taps again
                    self.counts["retaps_after_kill"] += 1
                    self.setup_shopper(spec)
                    order = self.tap_until_confirmed(n, self.same_card(card))
        if order is None:
            return
        if scenario == "double":
            self.counts["double"] += 1
            again = self.same_card(card, new_uid=card_kind == "tag" and rng.random() < 0.5)
            self.present(again)
            ev = self.wait_for(("checkout.repeat", "checkout.confirm_shown", "checkout.refused"), 4.0)
            self.lift(again)
            if ev is None or ev["ev"] not in ("checkout.repeat", "checkout.confirm_shown") or \
                    ev.get("order_id") != order:
                self.counts["unexpected"] += 1
        elif scenario == "other":
            other = self.make_card(n + 10_000_000, "tag")
            self.present(other)
            ev = self.wait_for(("checkout.refused", "checkout.confirm_shown"), 4.0)
            self.lift(other)
            if ev and ev["ev"] == "checkout.refused":
                self.counts["other_card_refused"] += 1
            else:
                self.counts["unexpected"] += 1
        elif scenario == "cancel":
            self.host.send("action.requested", action="cancel", source="bench")
            ev = self.wait_for(("checkout.cancelled",), 3.0)
            if ev and ev.get("order_id") == order:
                self.counts["cancelled"] += 1
                self.cancelled_orders.add(order)
            else:
                self.counts["unexpected"] += 1
        else:
            self.counts["single"] += 1

    # --- the run -------------------------------------------------------------------------
    def run(self, pcscd_env: dict, ports: tuple[int, int]) -> dict:
        from mirror.core.catalog import load_catalog
        from mirror.core.config import CONFIG_DIR
        self.ports = ports
        self._cards_on: set[Card] = set()
        cat = load_catalog(CONFIG_DIR / "catalog.toml")
        self.products = [(p.sku, list(p.sizes), len(p.colours)) for p in cat.products]
        store = StoreServer(rates={"500": 0.08, "timeout": 0.04, "drop": 0.04}, timeout_delay_s=0.8,
                            seed=self.seed).start()
        env = dict(os.environ)
        env.update(pcscd_env)
        env.update({"MIRROR_CHECKOUT_STORE_URL": store.url, "MIRROR_CHECKOUT_DB_PATH": str(self.db_path),
                    "MIRROR_CHECKOUT_STORE_TIMEOUT_S": "0.4", "MIRROR_CHECKOUT_RETRY_INITIAL_S": "0.05",
                    "MIRROR_CHECKOUT_RETRY_MAX_S": "1.0", "MIRROR_CHECKOUT_ENABLED": "true",
                    "MIRROR_NFC_ENABLED": "true", "MIRROR_NFC_READER": "Virtual PCD",
                    "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONUNBUFFERED": "1"})
        env.pop("DISPLAY", None)
        self.host = Host(env, self.dir / "host.log")
        try:
            self.start_host()
            shopper = 0
            last_report = time.monotonic()
            while self.presentations < self.taps_target:
                self.shopper(shopper)
                shopper += 1
                if self.progress and (time.monotonic() - last_report > 5 or self.presentations >= self.taps_target):
                    last_report = time.monotonic()
                    print(f"bench-checkout: {min(self.presentations, self.taps_target)}/{self.taps_target} taps, "
                          f"{len(self.confirmed)} confirmed, tap-to-confirm p95 "
                          f"{percentile(self.latency_ms, 95):.0f} ms, kills {self.counts['kills']}, "
                          f"{time.monotonic() - self.t0:.0f} s", file=sys.stderr, flush=True)
            # The store stops failing; the outbox must drain everything.
            store.rates = {}
            store.plan.clear()
            if not self.host.alive:
                self.restart_host()
            pending = self._pending()
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                time.sleep(0.2)
                self.drain()
                pending = self._pending()
            self.host.stop()
            return self._verify(store, shopper, pending)
        finally:
            for card in list(self._cards_on):
                card.remove()
            if self.host.alive:
                self.host.kill()
            store.close()

    def _pending(self) -> int:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL").fetchone()[0]
        finally:
            db.close()

    def _verify(self, store: StoreServer, shoppers: int, pending: int) -> dict:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("SELECT order_id, card_id, state, pay FROM orders").fetchall()
            attempts = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
            interrupted = db.execute("SELECT COUNT(*) FROM deliveries WHERE outcome='interrupted'").fetchone()[0]
        finally:
            db.close()
        orders = {r[0]: r for r in rows}
        applied = store.order_ids()
        lost = [o for o in self.confirmed if o not in orders or orders[o][3] == "store" and o not in applied]
        by_card: dict[str, int] = {}
        for oid, card_id, state, _pay in rows:
            if state != "cancelled":
                by_card[card_id] = by_card.get(card_id, 0) + 1
        dup_shoppers = sum(n - 1 for n in by_card.values() if n > 1)
        dup_store = sum(n - 1 for n in store.applied.values() if n > 1)
        undelivered = [o for o, r in orders.items() if r[3] == "store" and o not in applied]
        seconds = time.monotonic() - self.t0
        return {
            "taps": self.presentations, "orders": len(orders), "lost": len(lost),
            "duplicated": dup_shoppers + dup_store,
            "tap_to_confirm_p50_ms": round(percentile(self.latency_ms, 50), 1),
            "tap_to_confirm_p95_ms": round(percentile(self.latency_ms, 95), 1),
            "connect_to_confirm_p50_ms": round(percentile(self.connect_ms, 50), 1),
            "connect_to_confirm_p95_ms": round(percentile(self.connect_ms, 95), 1),
            "pcscd_detect_p50_ms": round(percentile(self.detect_ms, 50), 1),
            "confirmations_measured": len(self.latency_ms),
            "shoppers": shoppers, "confirmed_orders": len(self.confirmed),
            "cancelled_orders": len(self.cancelled_orders),
            "single_taps": self.counts["single"], "double_taps": self.counts["double"],
            "pulled_mid_read": self.counts["pulled_mid_read"],
            "other_card_refused": self.counts["other_card_refused"],
            "kills": self.counts["kills"], "retaps_after_kill": self.counts["retaps_after_kill"],
            "unexpected_outcomes": self.counts["unexpected"],
            "store_requests": store.requests, "store_replays": store.replays,
            "store_faults": dict(store.faults), "delivery_attempts": attempts,
            "interrupted_deliveries": interrupted, "undelivered": len(undelivered), "outbox_pending": pending,
            "seed": self.seed, "seconds": round(seconds, 1),
        }


def run_bench(taps: int, *, chaos: bool = False, seed: int | None = None, progress: bool = True,
              kill_rate: float = 0.05) -> dict:
    seed = random.randrange(1 << 30) if seed is None else seed
    with tempfile.TemporaryDirectory(prefix="mirror-bench-checkout-") as tmp:
        work = Path(tmp)
        try:
            daemon = PrivatePcscd(work / "pcscd").start()
        except (PcscdError, OSError) as e:
            raise BenchError(f"cannot start a private pcscd with the vpcd reader: {e}") from None
        try:
            if progress:
                print(f"bench-checkout: fresh pcscd (vpcd on ports {daemon.vpcd_ports[0]}/{daemon.vpcd_ports[1]}), "
                      f"{taps} taps{' with kills' if chaos else ''}, seed {seed}", file=sys.stderr, flush=True)
            bench = Bench(taps, chaos=chaos, seed=seed, progress=progress, workdir=work, kill_rate=kill_rate)
            return bench.run(daemon.env(), daemon.vpcd_ports)
        finally:
            daemon.close()
