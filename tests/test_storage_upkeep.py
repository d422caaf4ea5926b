"""The order database stays bounded and survives corruption (issue 11, "Operations"):
prune of old finished rows, the integrity check at start, a corrupt file moved aside
while the kiosk runs on with a fresh journal. Real SQLite files throughout."""

import logging
import os
import sqlite3
import time

from mirror.storage.orders import OrderJournal, OutboxItem, move_aside
from nfc.checkout import idempotency_key

DAY = 86400.0
NOW = time.time()
CART = {"items": [{"sku": "DRESS-0930", "name": "Wrap dress", "colour": "Navy", "size": "S", "price": "79.00",
                   "qty": 1}], "reserve": False}


def record(j, card, *, store, at, cart=CART, **kw):
    key = idempotency_key(f"s-{card}", card, cart)
    order, created = j.record_order(key=key, session_id=f"s-{card}", card_id=card, member_id=None,
                                    uid_hash=j.uid_hash(card.encode()), cart=cart, store=store, now=at,
                                    dedupe_window_s=0, **kw)
    assert created
    return order


def deliver(j, order, *, at, outcome="ok"):
    row = j.db.execute("SELECT id, order_id, kind, idem_key, body, attempts FROM outbox WHERE order_id=? "
                       "AND done_at IS NULL", (order.order_id,)).fetchone()
    item = OutboxItem(*row)
    attempt = j.begin_attempt(item, at)
    j.finish_attempt(item, attempt, outcome=outcome, now=at, http_status=201 if outcome == "ok" else 422,
                     reply='{"payment_status": "pending"}')


def count(db, table, where="1"):
    return db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0]


def test_prune_deletes_old_finished_orders_and_keeps_pending_recent_and_held_ones(tmp_path):
    j = OrderJournal(tmp_path / "o.db")
    old, recent = NOW - 200 * DAY, NOW - 10 * DAY
    sent_old = record(j, "m:A", store=True, at=old)
    deliver(j, sent_old, at=old + 60)
    rejected_old = record(j, "m:B", store=True, at=old)
    deliver(j, rejected_old, at=old + 60, outcome="rejected")
    till_old = record(j, "m:C", store=False, at=old, cart=dict(CART, reserve=True), reservation_hold_s=3600)
    cancelled_old = record(j, "m:D", store=False, at=old)
    assert j.cancel_order(cancelled_old.order_id, now=old + 30)
    # never deleted: a pending order (the store has not taken it after 200 days), a cancel still
    # to be sent, a recent delivered one, and an old one whose item is still put aside
    cancel_pending = record(j, "m:F", store=True, at=old)
    deliver(j, cancel_pending, at=old + 60)
    assert j.cancel_order(cancel_pending.order_id, now=old + 120)           # its cancel is in the outbox
    pending_old = record(j, "m:E", store=True, at=old + 200)
    sent_recent = record(j, "m:G", store=True, at=recent)
    deliver(j, sent_recent, at=recent + 60)
    held_old = record(j, "m:H", store=False, at=old, cart=dict(CART, reserve=True), reservation_hold_s=400 * DAY)
    # an item put aside for the pending order, expired long ago: that reservation goes, the order stays
    j.db.execute("INSERT INTO reservations (order_id, sku, created_at, expires_at) VALUES (?, 'X', ?, ?)",
                 (pending_old.order_id, old, old + 3600))
    # the audit and stock-hold tables other parts of the kiosk keep in the same file
    j.db.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, "
                 "action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}')")
    j.db.executemany("INSERT INTO audit (at, who, action) VALUES (?, 'cli:root', 'staff.add_user')",
                     [(old,), (old,), (recent,)])
    j.db.execute("CREATE TABLE stock_holds (id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL, "
                 "created_at REAL NOT NULL, expires_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'held', "
                 "closed_at REAL)")
    j.db.executemany("INSERT INTO stock_holds (sku, created_at, expires_at, state, closed_at) VALUES ('X', ?, ?, ?, ?)",
                     [(old, old + DAY, "collected", old + 10), (old, old + DAY, "expired", old + DAY),
                      (recent, recent + DAY, "released", recent + 5), (old, NOW + DAY, "held", None)])
    deliveries_before = count(j.db, "deliveries")

    counts = j.prune(NOW, 90)

    kept = {r[0] for r in j.db.execute("SELECT order_id FROM orders")}
    assert kept == {pending_old.order_id, cancel_pending.order_id, sent_recent.order_id, held_old.order_id}
    assert count(j.db, "deliveries") == deliveries_before - 2               # sent_old's and rejected_old's
    assert count(j.db, "deliveries", f"order_id='{cancel_pending.order_id}'") == 1
    assert count(j.db, "outbox", "done_at IS NULL") == 2                    # pending_old's create, the cancel
    assert count(j.db, "reservations") == 1 and j.list_reservations(NOW)[0]["order_id"] == held_old.order_id
    assert count(j.db, "audit") == 1 and count(j.db, "stock_holds") == 2
    assert {k: counts[k] for k in ("orders", "outbox", "deliveries", "reservations", "holds", "audit")} == {
        "orders": 4, "outbox": 2, "deliveries": 2, "reservations": 2, "holds": 2, "audit": 2}
    assert counts["vacuum"] == "none"                                       # too little freed to be worth it
    assert j.db.execute("PRAGMA foreign_key_check").fetchall() == []
    # nothing more to do the second time; the journal still works
    again = j.prune(NOW, 90)
    assert all(again[k] == 0 for k in ("orders", "outbox", "deliveries", "reservations", "holds", "audit"))
    assert len(j.list_orders()) == 4
    record(j, "m:I", store=True, at=NOW)
    j.close()


def test_space_is_given_back_only_when_much_was_deleted(tmp_path):
    big = {"items": [{"sku": f"S{i}", "name": "x" * 300, "price": "1.00"} for i in range(12)], "reserve": False}
    # a file this journal created is incremental: freed pages go back without a full VACUUM
    j = OrderJournal(tmp_path / "new.db")
    assert j.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    for i in range(150):
        record(j, f"m:{i}", store=False, at=NOW - 200 * DAY, cart=big)
    pages = j.db.execute("PRAGMA page_count").fetchone()[0]
    j.VACUUM_MIN_FREE_PAGES = 64                                            # "much", scaled to this test
    counts = j.prune(NOW, 90)
    assert counts["orders"] == 150 and counts["vacuum"] == "incremental" and counts["free_pages"] == 0
    assert j.db.execute("PRAGMA page_count").fetchone()[0] < pages / 4
    assert os.path.getsize(tmp_path / "new.db-wal") == 0                    # the -wal was checkpointed and truncated
    j.close()

    # a file from before (auto_vacuum off): the free pages are reused, a full VACUUM only when asked (at start)
    path = tmp_path / "old.db"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    plain.commit()
    plain.close()
    j = OrderJournal(path)
    assert j.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    for i in range(150):
        record(j, f"m:{i}", store=False, at=NOW - 200 * DAY - i, cart=big)
    j.VACUUM_MIN_FREE_PAGES = 64
    j.PRUNE_BATCH = 40                                                       # several transactions
    first = j.prune(NOW - 200 * DAY - 74.5 + 90 * DAY, 90)                   # the older half
    assert first["orders"] == 75 and first["vacuum"] == "none" and first["free_pages"] > 64
    second = j.prune(NOW, 90, full_vacuum=True)
    assert second["orders"] == 75 and second["vacuum"] == "full" and second["free_pages"] == 0
    assert j.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2            # converted: incremental from now on
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.close()


def _journal_with_orders(path, n=40):
    j = OrderJournal(path)
    for i in range(n):
        record(j, f"m:{i}", store=True, at=NOW - i)
    return j


def _errors(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def _check_fresh_journal_works(path):
    j = OrderJournal(path)
    assert j.db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert j.list_orders() == []
    order = record(j, "m:new", store=True, at=time.time())
    assert [o["order_id"] for o in j.list_orders()] == [order.order_id]
    j.close()


def test_garbage_file_is_moved_aside_with_its_wal_and_shm_and_a_fresh_journal_starts(tmp_path, caplog):
    path = tmp_path / "orders.db"
    _journal_with_orders(path).close()                                       # checkpointed into the main file
    reader = sqlite3.connect(path)
    assert count(reader, "orders") == 40
    # a crash image: the main file, its -wal and -shm (the kiosk died without closing) ...
    crash = tmp_path / "crash"
    crash.mkdir()
    for suffix in ("", "-wal", "-shm"):
        assert (tmp_path / f"orders.db{suffix}").exists()
        (crash / f"orders.db{suffix}").write_bytes((tmp_path / f"orders.db{suffix}").read_bytes())
    reader.close()
    path = crash / "orders.db"
    garbage = os.urandom(path.stat().st_size)
    path.write_bytes(garbage)                                                # ... whose main file is overwritten
    wal = (crash / "orders.db-wal").read_bytes()

    with caplog.at_level(logging.INFO):
        fresh = OrderJournal.open_checked(path, now=time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1)))
    moved = crash / "orders.db.corrupt-20260304-050607"
    errors = _errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    text = errors[0].getMessage()
    assert "\n" not in text and str(moved) in text and "fresh" in text and "file is not a database" in text
    assert "(with its -wal, -shm)" in text
    assert moved.read_bytes() == garbage and (crash / "orders.db.corrupt-20260304-050607-wal").read_bytes() == wal
    assert (crash / "orders.db.corrupt-20260304-050607-shm").exists()
    fresh.close()
    _check_fresh_journal_works(path)
    # the same second again: a second copy does not overwrite the first
    path.write_bytes(garbage)
    OrderJournal.open_checked(path, now=time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))).close()
    assert (crash / "orders.db.corrupt-20260304-050607-2").read_bytes() == garbage and moved.read_bytes() == garbage


def test_file_truncated_mid_page_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "orders.db"
    _journal_with_orders(path, n=80).close()                                 # the last close checkpoints
    assert not (tmp_path / "orders.db-wal").exists()
    data = path.read_bytes()
    assert len(data) > 16 * 4096
    cut = len(data) * 2 // 3 + 1234                                          # not on a page boundary
    path.write_bytes(data[:cut])

    with caplog.at_level(logging.INFO):
        OrderJournal.open_checked(path).close()
    errors = _errors(caplog)
    assert len(errors) == 1 and "corrupt" in errors[0].getMessage()
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("orders.db.corrupt-")]
    assert len(moved) == 1 and moved[0].read_bytes() == data[:cut] and str(moved[0]) in errors[0].getMessage()
    _check_fresh_journal_works(path)


def test_a_healthy_or_missing_file_is_never_moved(tmp_path, caplog):
    path = tmp_path / "state" / "orders.db"
    with caplog.at_level(logging.INFO):
        OrderJournal.open_checked(path).close()                              # no file yet: created
        j = OrderJournal.open_checked(path)
        record(j, "m:1", store=False, at=NOW)
        other = OrderJournal.open_checked(path)                              # while another connection has it open
        assert len(other.list_orders()) == 1
        other.close()
        j.close()
    assert not _errors(caplog)
    assert sorted(p.name for p in path.parent.iterdir()) == ["orders.db"]
    # move_aside on its own: the main file and whichever side files exist
    (path.parent / "orders.db-shm").write_bytes(b"x")
    target = move_aside(path, now=NOW)
    assert target.exists() and not path.exists() and (path.parent / f"{target.name}-shm").exists()


def test_checkout_service_starts_on_a_corrupt_journal_and_takes_orders(tmp_path, caplog):
    from mirror.core import config
    from mirror.core.bus import EventBus
    from mirror.core.catalog import load_catalog
    from mirror.app.demo import checkout_timeline
    from mirror.core.session import Session
    from nfc.service import CheckoutService
    cfg = config.load(None, env={})
    assert cfg.checkout.keep_days == 90
    db_path = tmp_path / "orders.db"
    db_path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))          # the right magic, garbage after it
    session = Session(load_catalog(cfg.catalog_path()), cfg.actions.model_dump())
    bus = EventBus()
    session.attach(bus)
    svc = CheckoutService(cfg, bus, db_path=db_path, watch=False)
    with caplog.at_level(logging.INFO):
        svc.start(None)
        try:
            for name, data in session.announce():
                bus.publish(name, **data)
            bus.dispatch()
            bus.publish("presence.changed", present=True)                    # a shopper at the mirror
            bus.dispatch()
            tap = checkout_timeline(1.0)[0]
            bus.publish(tap.event, **tap.data)
            deadline, view = time.monotonic() + 10, None
            while time.monotonic() < deadline:
                bus.dispatch()
                svc.before_frame(time.monotonic())
                view = svc.overlay.view
                if view is not None and view.kind == "confirmed" and svc.last_prune is not None:
                    break
                time.sleep(0.01)
            assert view.kind == "confirmed" and view.title.startswith("Got it, Jenny: order ")
            assert svc.last_prune is not None and svc.last_prune["orders"] == 0   # pruned at start, writer thread
        finally:
            svc.stop()
    errors = _errors(caplog)
    assert len(errors) == 1 and "corrupt" in errors[0].getMessage()
    assert not [r for r in caplog.records if "checkout unavailable" in r.getMessage()]
    moved = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(moved) == 1
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT code FROM orders").fetchall() == [(view.code,)]
    db.close()
