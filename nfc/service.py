"""The kiosk service for tap-to-checkout: the I/O around nfc.checkout.

Threads:
* `nfc-watch` and its `nfc-read` threads, one per card being read
  (nfc.readers.ReaderWatcher): publish `nfc.tap`, `nfc.read_failed`,
  `nfc.removed` and `nfc.status` on the bus;
* `checkout-writer`: writes and cancels orders in the journal (SQLite,
  synchronous) and publishes `checkout.saved` / `checkout.save_failed`; it also
  prunes the journal (`checkout.keep_days`) when it starts and then once a day;
* `start()` opens the journal with its integrity check (`OrderJournal.open_checked`):
  a corrupt file is moved aside and the kiosk runs on with a fresh one; one that
  cannot be opened at all (a read-only folder) is tried again on `checkout-retry`
  with backoff, and checkout starts once it opens;
* `outbox` (mirror.storage.orders.Outbox), only with a store URL: delivers orders
  and publishes `checkout.delivered`.

The main thread (bus handlers, `before_frame`, `on_composed`) only feeds the pure
state machine and reads its view: no disk or network there. The session
publishes `cart.changed`; `action.done` with action "cancel" is the cancel
gesture. `on_composed` measures tap-to-confirm: from pcscd's card-present
event to the first composed frame that shows the confirmation, and publishes
`checkout.confirm_shown` with it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

from mirror.core.backoff import delay_for
from mirror.core.bus import Event, EventBus
from mirror.core.config import Config
from mirror.core.feature import Feature
from mirror.storage.orders import OrderJournal, Outbox, StoreClient
from nfc import checkout as C
from nfc.overlay import CheckoutOverlay
from nfc.type4 import member_from_records

log = logging.getLogger(__name__)

JOURNAL_RETRY_S = 2.0        # a journal that cannot be opened is tried again after this, doubling ...
JOURNAL_RETRY_MAX_S = 60.0   # ... up to this


class CheckoutService(Feature):
    name = "checkout"
    PRUNE_INTERVAL_S = 86400.0        # prune at start, then once a day (on the writer thread)

    def __init__(self, cfg: Config, bus: EventBus, *, db_path: str | Path | None = None, watch: bool | None = None):
        self.cfg = cfg
        self.bus = bus
        self.db_path = Path(db_path) if db_path else cfg.orders_path()
        self.watch = cfg.nfc.enabled if watch is None else watch
        self.machine = C.Checkout(confirm_s=cfg.checkout.confirm_s)
        self.overlay = CheckoutOverlay()
        # the journal's salted UID hash, for the main thread: it needs nothing else of the
        # journal, so it keeps no connection (the writer and the outbox open their own)
        self.uid_hash: Callable[[bytes], str] | None = None
        self.watcher = None
        self.outbox: Outbox | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._view: C.CheckoutView | None = None
        self._measured_seq = 0
        self.last_prune: dict | None = None
        self.latencies_ms: list[float] = []
        self._stopping = threading.Event()
        self._journal_ready = threading.Event()
        self._retry: threading.Thread | None = None
        self._ready_hash: Callable[[bytes], str] | None = None
        for name in ("nfc.*", "cart.changed", "session.started", "session.ended", "action.done", "checkout.saved",
                     "checkout.save_failed", "checkout.delivered"):
            bus.subscribe(name, self._on_event)

    # --- lifecycle -----------------------------------------------------------
    def start(self, loop=None) -> None:
        try:
            # quick_check first (a corrupt file is moved aside, one ERROR line); creates the schema, the salt
            self.uid_hash = self._salted_hash()
        except Exception as e:                          # the kiosk runs on without checkout, and tries again
            log.error("checkout unavailable: cannot open the order journal %s: %s; trying again", self.db_path, e)
            self.machine.handle(C.ReaderStatus(False, f"Checkout unavailable: cannot open the order journal ({e})"))
            self._retry = threading.Thread(target=self._retry_journal, name="checkout-retry", daemon=True)
            self._retry.start()
            return
        self._start_parts()

    def _salted_hash(self) -> Callable[[bytes], str]:
        journal = OrderJournal.open_checked(self.db_path)
        try:
            return journal.uid_hash              # needs only the salt read at open, not the connection
        finally:
            journal.close()

    def _retry_journal(self) -> None:
        """Until the journal opens (its folder made writable, a disk remounted), off the
        frame loop: a write lock held elsewhere may keep the open waiting for seconds."""
        failures = 0
        while not self._stopping.is_set():
            failures += 1
            if self._stopping.wait(delay_for(failures, JOURNAL_RETRY_S, JOURNAL_RETRY_MAX_S)):
                return
            try:
                self._ready_hash = self._salted_hash()
            except Exception as e:
                log.debug("the order journal still cannot be opened: %s", e)
                continue
            self._journal_ready.set()
            return

    def _start_parts(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="checkout-writer", daemon=True)
        self._writer.start()
        co = self.cfg.checkout
        if co.store_url:
            self.outbox = Outbox(self.db_path, StoreClient(co.store_url, co.store_timeout_s, co.store_token),
                                 backoff_initial_s=co.retry_initial_s, backoff_max_s=co.retry_max_s,
                                 on_result=lambda **d: self.bus.publish("checkout.delivered", **d))
            self.outbox.start()
        if self.watch:
            from nfc.readers import ReaderWatcher
            n = self.cfg.nfc
            self.watcher = ReaderWatcher(lambda kind, **d: self.bus.publish(f"nfc.{kind}", **d),
                                         reader_filter=n.reader, poll_s=n.poll_s,
                                         backoff_initial_s=n.retry_initial_s, backoff_max_s=n.retry_max_s)
            self.watcher.start()
        log.info("checkout ready: orders in %s, %s", self.db_path,
                 f"store checkout {co.store_url}" if co.store_url else "pay at the till")

    def stop(self) -> None:
        self._stopping.set()
        if self.watcher is not None:
            self.watcher.stop()
        self._jobs.put(None)
        if self._writer is not None:
            self._writer.join(timeout=5)
        if self.outbox is not None:
            self.outbox.stop()

    # --- the writer thread (all journal writes) ----------------------------
    def _write_loop(self) -> None:
        journal = OrderJournal(self.db_path)
        co = self.cfg.checkout
        next_prune, first = time.monotonic(), True
        try:
            while True:
                wait = next_prune - time.monotonic()
                if wait <= 0:
                    self._prune(journal, at_start=first)
                    next_prune, first = time.monotonic() + self.PRUNE_INTERVAL_S, False
                    continue
                try:
                    cmd = self._jobs.get(timeout=wait)
                except queue.Empty:
                    continue
                if cmd is None:
                    return
                if isinstance(cmd, C.SaveOrder):
                    try:
                        order, created = journal.record_order(
                            key=cmd.key, session_id=cmd.session_id, card_id=cmd.card_id, member_id=cmd.member_id,
                            uid_hash=cmd.uid_hash, cart=cmd.cart, store=bool(co.store_url),
                            dedupe_window_s=co.dedupe_window_s, reservation_hold_s=co.reservation_hold_h * 3600)
                    except Exception as e:
                        log.exception("recording the order failed")
                        self.bus.publish("checkout.save_failed", key=cmd.key, error=str(e))
                        continue
                    self.bus.publish("checkout.saved", key=cmd.key, order_id=order.order_id, code=order.code,
                                     pay=order.pay, created=created, state=order.state,
                                     payment_status=order.payment_status, payment_url=order.payment_url)
                    if self.outbox is not None and created:
                        self.outbox.wake()
                elif isinstance(cmd, C.CancelOrder):
                    try:
                        journal.cancel_order(cmd.order_id)
                    except Exception:
                        log.exception("cancelling order %s failed", cmd.order_id)
                    if self.outbox is not None:
                        self.outbox.wake()
        finally:
            journal.close()

    def _prune(self, journal: OrderJournal, *, at_start: bool) -> None:
        keep_days = self.cfg.checkout.keep_days
        try:   # a full VACUUM (an old file's one-time conversion) only at start: it holds the write lock
            counts = journal.prune(time.time(), keep_days, full_vacuum=at_start)
        except Exception:
            log.exception("pruning the order journal failed; trying again in %.0f h", self.PRUNE_INTERVAL_S / 3600)
            return
        self.last_prune = counts
        deleted = {k: v for k, v in counts.items() if isinstance(v, int) and v and k != "free_pages"}
        if deleted or counts.get("vacuum") != "none":
            log.info("order journal pruned (older than %d days): %s; vacuum %s", keep_days,
                     ", ".join(f"{v} {k}" for k, v in deleted.items()) or "nothing deleted", counts.get("vacuum"))

    # --- main thread -----------------------------------------------------------
    def _run(self, commands: list) -> None:
        for cmd in commands:
            if isinstance(cmd, (C.SaveOrder, C.CancelOrder)):
                self._jobs.put(cmd)
            elif isinstance(cmd, C.Announce):
                self.bus.publish(cmd.name, **cmd.data)

    def _on_event(self, ev: Event) -> None:
        d = ev.data
        now = time.monotonic()
        m = self.machine
        if ev.name == "nfc.tap":
            if self.uid_hash is None:
                self._run(m.handle(C.ReadFailed("error", now)))
                return
            member = member_from_records(d.get("records") or [], self.cfg.nfc.member_record)
            uid_hash = self.uid_hash(d["uid"])
            self._run(m.handle(C.Tapped(member.id if member else None, uid_hash, member.name if member else "",
                                        d.get("t_present") or now, now)))
            if member:                  # the session asks her whether staff may see her profile
                self.bus.publish("member.tapped", member_id=member.id, first_name=member.name)
        elif ev.name == "nfc.read_failed":
            self._run(m.handle(C.ReadFailed(d.get("reason", "error"), now, d.get("t_present") or 0.0)))
        elif ev.name == "nfc.status" and self.uid_hash is not None:
            m.handle(C.ReaderStatus(bool(d.get("ok")), d.get("message", "")))
        elif ev.name == "cart.changed":
            m.handle(ev.payload)
        elif ev.name in ("session.started", "session.ended"):
            m.handle(ev.payload)
        elif ev.name == "action.done" and d.get("action") == "cancel":
            self._run(m.handle(C.CancelGesture(now)))
        elif ev.name == "checkout.saved":
            self._run(m.handle(C.Saved(d["key"], d["order_id"], d["code"], d["pay"], d["created"], now,
                                       d.get("state", "recorded"), d.get("payment_status"), d.get("payment_url"))))
        elif ev.name == "checkout.save_failed":
            self._run(m.handle(C.SaveFailed(d["key"], d["error"], now)))
        elif ev.name == "checkout.delivered":
            m.handle(ev.payload)

    def overlays(self):
        return [self.overlay]

    def before_frame(self, now: float) -> None:
        if self._journal_ready.is_set() and self.uid_hash is None:
            self._journal_ready.clear()
            self.uid_hash = self._ready_hash
            log.info("checkout available again: the order journal %s opened", self.db_path)
            self.machine.handle(C.ReaderStatus(True, ""))
            self._start_parts()
        self.machine.handle(C.Tick(time.monotonic()))
        self._view = self.overlay.view = self.machine.view(time.monotonic())

    def status(self) -> dict:
        v = self._view
        return {"checkout": v.kind if v is not None else "idle", "reader": v.status if v is not None else ""}

    def on_composed(self, frame) -> None:
        v = self._view
        if v is not None and v.kind == "confirmed" and v.seq > self._measured_seq:
            self._measured_seq = v.seq
            shown = time.monotonic()
            if v.t_present:
                ms = (shown - v.t_present) * 1000.0
                self.latencies_ms.append(ms)
                log.info("order %s confirmed on screen %.0f ms after the tap", v.order_id, ms)
                self.bus.publish("checkout.confirm_shown", order_id=v.order_id, seq=v.seq, latency_ms=ms,
                                 shown_at=shown)

