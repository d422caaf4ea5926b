"""The order journal: SQLite, written before the shopper is told, never lost.

* One file, WAL mode, `synchronous=FULL`: when `record_order` returns, the
  order is on disk and survives a power cut. Only then does the kiosk show
  the confirmation.
* Every order carries an idempotency key derived from the session, the card
  and the cart (nfc.checkout.idempotency_key). The key is UNIQUE, so a double
  tap returns the order already written. A re-tap of the same card with the
  same cart within `dedupe_window_s` returns it too, which covers a crash or
  power cut between the write and the confirmation (the restarted kiosk has a
  new session, the shopper taps again, and gets the same order).
* Delivery to the store's checkout goes through an outbox table in the same
  transaction as the order. The `Outbox` worker POSTs each entry with an
  `Idempotency-Key` header, retries with exponential backoff and jitter,
  and records every attempt (`deliveries`), the store's reply and the
  payment status. A kill at any point leaves the entry in the outbox; after
  a restart it is sent again with the same key, so the store (which dedupes
  by key) applies it exactly once.
* With no store URL the order waits "pay at the till" under a short code.
* A reservation ("put one aside in my size") is a row with an expiry.
* Privacy: the member id and a salted hash of the card UID, never the UID or
  anything else from the tag. The salt is random per database.
* Upkeep (the kiosk runs for months): `OrderJournal.open_checked` runs
  `PRAGMA quick_check` once, when the kiosk opens the journal at start (not on
  the writer's or the outbox's own connections); a corrupt file is moved aside
  to `NAME.corrupt-YYYYmmdd-HHMMSS` with its -wal/-shm, one ERROR line says
  where, and a fresh journal is started. `prune(now, keep_days)` deletes old
  finished orders, reservations, holds and audit rows (see its docstring for
  what is never deleted and when space is given back).

Crash points for tests: with `MIRROR_TEST_CRASHPOINT=<name>` in the
environment the process SIGKILLs itself at that point of the real code path
(`before_write`, `after_write`, `before_delivery`, `after_delivery`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import secrets
import signal
import socket
import sqlite3
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from mirror.core.backoff import delay_for, jitter_factor
from mirror.core.canonical import canonical_json
from mirror.core.text import printable
from mirror.storage.catalogue import create_private

log = logging.getLogger(__name__)

CRASHPOINT_ENV = "MIRROR_TEST_CRASHPOINT"
CRASHPOINTS = ("before_write", "after_write", "before_delivery", "after_delivery")
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"   # no 0/O, 1/I/L
REPLY_MAX_CHARS = 2000


def crashpoint(name: str) -> None:
    """Tests only: die here, hard, when MIRROR_TEST_CRASHPOINT names this point."""
    if os.environ.get(CRASHPOINT_ENV) == name:
        log.warning("crash point %s reached: SIGKILL", name)
        for h in logging.getLogger().handlers:
            h.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def cart_total(cart: dict) -> str:
    total = Decimal(0)
    for item in cart.get("items", []):
        try:
            total += Decimal(str(item.get("price") or 0)) * int(item.get("qty", 1))
        except (InvalidOperation, ValueError):
            pass
    return f"{total:.2f}"


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    session_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    member_id TEXT,
    uid_hash TEXT NOT NULL,
    cart_hash TEXT NOT NULL,
    cart_json TEXT NOT NULL,
    total TEXT NOT NULL,
    pay TEXT NOT NULL CHECK (pay IN ('store', 'till')),
    state TEXT NOT NULL,
    payment_status TEXT,
    payment_url TEXT,
    store_reply TEXT,
    cancelled_at REAL
);
CREATE INDEX IF NOT EXISTS orders_by_card_cart ON orders (card_id, cart_hash, created_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    kind TEXT NOT NULL CHECK (kind IN ('create', 'cancel')),
    idem_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    done_at REAL,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (done_at, next_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_order ON deliveries (order_id);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    sku TEXT NOT NULL,
    name TEXT,
    colour TEXT,
    size TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'held'
);
"""


@dataclass(frozen=True)
class Order:
    order_id: str
    idem_key: str
    code: str
    created_at: float
    state: str
    pay: str
    member_id: str | None
    total: str
    cart: dict
    payment_status: str | None = None
    payment_url: str | None = None

    @property
    def short_id(self) -> str:
        return self.order_id[:4] + "…"

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "Order":
        return cls(r["order_id"], r["idem_key"], r["code"], r["created_at"], r["state"], r["pay"],
                   r["member_id"], r["total"], json.loads(r["cart_json"]), r["payment_status"], r["payment_url"])

    def as_dict(self) -> dict:
        return {"order_id": self.order_id, "code": self.code, "state": self.state, "pay": self.pay,
                "created_at": self.created_at, "total": self.total, "payment_status": self.payment_status,
                "payment_url": self.payment_url}


@dataclass(frozen=True)
class OutboxItem:
    id: int
    order_id: str
    kind: str
    idem_key: str
    body: str
    attempts: int


def is_corruption(e: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT ("database disk image is malformed") or SQLITE_NOTADB ("file is not a database"),
    as opposed to a locked, unreadable or full disk, which must never get a healthy file moved aside."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(e).lower()
    return "malformed" in text or "not a database" in text


def integrity_problem(path: str | os.PathLike) -> str | None:
    """`PRAGMA quick_check` of the database file (with its -wal): None when it is fine or absent, else
    why it is corrupt, on one line. Errors that are not corruption are raised."""
    p = Path(path)
    if not p.exists():
        return None
    db = None
    try:
        db = sqlite3.connect(str(p), isolation_level=None, timeout=30.0)
        db.execute("PRAGMA busy_timeout=30000")
        rows = [str(r[0]) for r in db.execute("PRAGMA quick_check(20)").fetchall()]
    except sqlite3.DatabaseError as e:
        if is_corruption(e):
            return str(e)
        raise
    finally:
        if db is not None:
            db.close()
    if rows == ["ok"]:
        return None
    text = "; ".join(" ".join(r.split()) for r in rows)
    return f"quick_check: {text[:300]}" + ("…" if len(text) > 300 else "")


SIDE_FILES = ("-wal", "-shm", "-journal")


def move_aside(path: str | os.PathLike, now: float | None = None) -> Path:
    """Rename a database and its -wal/-shm to NAME.corrupt-YYYYmmdd-HHMMSS[-N] (+ the same suffixes,
    so the copy opens with its log for salvage); returns the new path of the main file. The
    side files go first, so a fresh database never meets a stale -wal."""
    p = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    target, n = p.with_name(f"{p.name}.corrupt-{stamp}"), 1
    while any(Path(f"{target}{s}").exists() for s in ("",) + SIDE_FILES):
        n += 1
        target = p.with_name(f"{p.name}.corrupt-{stamp}-{n}")
    for suffix in SIDE_FILES + ("",):
        src = Path(f"{p}{suffix}")
        if src.exists():
            os.replace(src, f"{target}{suffix}")
    try:                                               # make the renames durable
        fd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return target


class JournalOpenError(Exception):
    """The file cannot be read as an order journal; the message is one line for the user."""


class OrderJournal:
    """One connection to the order database (use one per thread)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        # Only takes effect on a new file (before its first table): prune() can then give freed
        # pages back with a cheap `incremental_vacuum`; an older file is converted by prune's VACUUM.
        self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=30000")
        with self.tx():
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            if self.db.execute("SELECT 1 FROM meta WHERE key='uid_salt'").fetchone() is None:
                self.db.execute("INSERT INTO meta (key, value) VALUES ('uid_salt', ?)", (secrets.token_hex(16),))
        self._salt = bytes.fromhex(self.db.execute("SELECT value FROM meta WHERE key='uid_salt'").fetchone()[0])

    REPORT_TABLES = ("orders", "outbox", "deliveries", "reservations")

    @classmethod
    def open_read_only(cls, path: str | os.PathLike) -> "OrderJournal":
        """The journal opened for reading only (sqlite `mode=ro`), for reports: it creates no
        file or folder, never converts the database (no WAL switch, no schema), and works on a
        read-only mount. Only `list_orders`/`list_reservations` (and `get`) may be used on it.
        Raises JournalOpenError with a one-line reason when the file is not an order journal."""
        p = Path(path)
        if not p.exists():
            raise JournalOpenError(f"no order journal at {p}; set checkout.db_path or pass --db")
        if p.is_dir():
            raise JournalOpenError(f"{p} is a folder, not an order journal; pass the orders.db file inside it")
        if not p.is_file():
            raise JournalOpenError(f"{p} is not a regular file, so not an order journal; pass the orders.db file")
        if p.stat().st_size == 0:
            raise JournalOpenError(f"{p} is empty (0 bytes), not an order journal; pass the kiosk's orders.db")
        # A WAL journal in use (or left by a crash) has its -wal beside it: read it with the log
        # (mode=ro uses the -shm that exists). Without a -wal every commit is in the file itself,
        # and `immutable` reads it without making a -wal/-shm (which mode=ro alone would create).
        wal = p.with_name(p.name + "-wal").exists()
        uri = "file:" + urllib.parse.quote(str(p.resolve()), safe="/") + "?mode=ro" + ("" if wal else "&immutable=1")
        self = cls.__new__(cls)
        self.path, self._salt = p, None          # uid_hash() is for the writer only
        try:
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        except sqlite3.Error as e:
            raise JournalOpenError(f"cannot open {p} read-only ({e}); check the path and its permissions")
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout=30000")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as e:
            self.db.close()
            if wal and isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
                raise JournalOpenError(f"cannot read {p} read-only: its log {p.name}-wal needs {p.name}-shm, "
                                       "which cannot be made here; copy the orders.db* files to a writable "
                                       "folder and pass the copy")
            raise JournalOpenError(f"{p} is not an order journal ({e}); pass the kiosk's orders.db")
        missing = [t for t in cls.REPORT_TABLES if t not in tables]
        if missing:
            self.db.close()
            raise JournalOpenError(f"{p} is not an order journal (no table {', '.join(missing)}); "
                                   "pass the kiosk's orders.db")
        return self

    @classmethod
    def open_checked(cls, path: str | os.PathLike, *, now: float | None = None) -> "OrderJournal":
        """The kiosk's own open at start: `PRAGMA quick_check` first, and a corrupt database (check
        not "ok", or "file is not a database") is moved aside with its -wal/-shm (`move_aside`), with
        one ERROR line, and a fresh journal is opened in its place. Other errors (locked, I/O,
        permissions) are raised as they are: a healthy file is never moved for them."""
        p = Path(path)
        problem = integrity_problem(p)
        if problem is None:
            try:
                return cls(p)
            except sqlite3.DatabaseError as e:
                if not is_corruption(e):
                    raise
                problem = str(e)
        moved = move_aside(p, now)
        sides = [s for s in SIDE_FILES if Path(f"{moved}{s}").exists()]
        log.error("order database %s is corrupt (%s): moved it aside to %s%s and started a fresh, empty journal; "
                  "orders not yet delivered, the catalogue and staff users stay in the moved file", p, problem,
                  moved, f" (with its {', '.join(sides)})" if sides else "")
        return cls(p)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # --- privacy ---------------------------------------------------------
    def uid_hash(self, uid: bytes) -> str:
        """Salted hash of a card UID: recognises the same card, reveals nothing."""
        return hmac.new(self._salt, bytes(uid), hashlib.sha256).hexdigest()[:32]

    # --- orders ----------------------------------------------------------
    def _new_code(self) -> str:
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
            if self.db.execute("SELECT 1 FROM orders WHERE code=?", (code,)).fetchone() is None:
                return code

    def record_order(self, *, key: str, session_id: str, card_id: str, member_id: str | None, uid_hash: str,
                     cart: dict, store: bool, now: float | None = None, dedupe_window_s: float = 600.0,
                     reservation_hold_s: float = 86400.0) -> tuple[Order, bool]:
        """Write the order (durably) or return the one it duplicates.

        Returns (order, created). Committed with synchronous=FULL before it returns.
        """
        now = time.time() if now is None else now
        cart_json = canonical_json(cart)
        cart_hash = hashlib.sha256(cart_json.encode()).hexdigest()[:32]
        crashpoint("before_write")
        with self.tx() as db:
            row = db.execute("SELECT * FROM orders WHERE idem_key=?", (key,)).fetchone()
            if row is None and dedupe_window_s > 0:
                row = db.execute(
                    "SELECT * FROM orders WHERE card_id=? AND cart_hash=? AND created_at>=? AND state!='cancelled' "
                    "ORDER BY created_at DESC LIMIT 1", (card_id, cart_hash, now - dedupe_window_s)).fetchone()
            if row is not None:
                return Order.from_row(row), False
            order_id = secrets.token_hex(8).upper()
            code = self._new_code()
            total = cart_total(cart)
            pay = "store" if store else "till"
            state = "recorded" if store else "pay_at_till"
            db.execute(
                "INSERT INTO orders (order_id, idem_key, code, created_at, updated_at, session_id, card_id, "
                "member_id, uid_hash, cart_hash, cart_json, total, pay, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (order_id, key, code, now, now, session_id, card_id, member_id, uid_hash, cart_hash, cart_json,
                 total, pay, state))
            if store:
                body = {"order_id": order_id, "code": code, "created_at": now, "items": cart.get("items", []),
                        "total": total, "member_id": member_id, "reserve": bool(cart.get("reserve"))}
                db.execute("INSERT INTO outbox (order_id, kind, idem_key, body, next_at, created_at) "
                           "VALUES (?, 'create', ?, ?, ?, ?)", (order_id, key, canonical_json(body), now, now))
            if cart.get("reserve"):
                for item in cart.get("items", [])[:1]:      # the garment she is wearing
                    db.execute("INSERT INTO reservations (order_id, sku, name, colour, size, created_at, expires_at) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (order_id, item.get("sku", ""), item.get("name"), item.get("colour"),
                                item.get("size"), now, now + reservation_hold_s))
            order = Order(order_id, key, code, now, state, pay, member_id, total, cart)
        crashpoint("after_write")
        log.info("order %s recorded (code %s, %s)", order_id, code, pay)
        return order, True

    def cancel_order(self, order_id: str, now: float | None = None) -> bool:
        """Cancel an order; the store is told through the outbox. False if already cancelled."""
        now = time.time() if now is None else now
        with self.tx() as db:
            row = db.execute("SELECT * FROM orders WHERE order_id=?", (order_id,)).fetchone()
            if row is None or row["state"] == "cancelled":
                return False
            db.execute("UPDATE orders SET state='cancelled', cancelled_at=?, updated_at=? WHERE order_id=?",
                       (now, now, order_id))
            db.execute("UPDATE reservations SET state='released' WHERE order_id=? AND state='held'", (order_id,))
            if row["pay"] == "store":
                body = {"order_id": order_id, "action": "cancel"}
                db.execute("INSERT OR IGNORE INTO outbox (order_id, kind, idem_key, body, next_at, created_at) "
                           "VALUES (?, 'cancel', ?, ?, ?, ?)",
                           (order_id, row["idem_key"] + ":cancel", canonical_json(body), now, now))
        log.info("order %s cancelled", order_id)
        return True

    def get(self, order_id: str) -> Order | None:
        row = self.db.execute("SELECT * FROM orders WHERE order_id=?", (order_id,)).fetchone()
        return Order.from_row(row) if row else None

    # --- outbox ------------------------------------------------------------
    def recover_in_flight(self, now: float | None = None) -> int:
        """Attempts that were in flight when the process died: mark them, retry now."""
        now = time.time() if now is None else now
        with self.tx() as db:
            n = db.execute("UPDATE deliveries SET outcome='interrupted', finished_at=? WHERE outcome='in_flight'",
                           (now,)).rowcount
            if n:
                db.execute("UPDATE outbox SET next_at=? WHERE done_at IS NULL", (now,))
        if n:
            log.warning("%d store deliveries were interrupted by a restart; sending them again", n)
        return n

    def next_due(self, now: float) -> tuple[OutboxItem | None, float | None]:
        """The next entry due now (cancel only after its create), and when the next one is due."""
        row = self.db.execute(
            "SELECT o.* FROM outbox o WHERE o.done_at IS NULL AND NOT EXISTS ("
            " SELECT 1 FROM outbox p WHERE p.order_id=o.order_id AND p.id<o.id AND p.done_at IS NULL) "
            "ORDER BY o.next_at, o.id LIMIT 1").fetchone()
        if row is None:
            return None, None
        if row["next_at"] > now:
            return None, row["next_at"]
        return OutboxItem(row["id"], row["order_id"], row["kind"], row["idem_key"], row["body"], row["attempts"]), now

    def pending_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL").fetchone()[0]

    def begin_attempt(self, item: OutboxItem, now: float) -> int:
        with self.tx() as db:
            db.execute("UPDATE outbox SET attempts=attempts+1 WHERE id=?", (item.id,))
            cur = db.execute("INSERT INTO deliveries (outbox_id, order_id, kind, attempt, started_at, outcome) "
                             "VALUES (?, ?, ?, ?, ?, 'in_flight')",
                             (item.id, item.order_id, item.kind, item.attempts + 1, now))
            return cur.lastrowid

    def finish_attempt(self, item: OutboxItem, attempt_id: int, *, outcome: str, now: float,
                       http_status: int | None = None, error: str | None = None, reply: str | None = None,
                       retry_at: float | None = None) -> None:
        """Record an attempt. outcome 'ok' or 'rejected' closes the entry; anything else retries at retry_at."""
        reply = reply[:REPLY_MAX_CHARS] if reply else reply
        with self.tx() as db:
            db.execute("UPDATE deliveries SET finished_at=?, outcome=?, http_status=?, error=? WHERE id=?",
                       (now, outcome, http_status, error, attempt_id))
            if outcome in ("ok", "rejected"):
                db.execute("UPDATE outbox SET done_at=?, outcome=? WHERE id=?", (now, outcome, item.id))
                payment_status, payment_url = _payment_of(reply)
                if item.kind == "create":
                    new_state = "sent" if outcome == "ok" else "rejected"
                    db.execute("UPDATE orders SET state=CASE WHEN state='cancelled' THEN state ELSE ? END, "
                               "payment_status=?, payment_url=?, store_reply=?, updated_at=? WHERE order_id=?",
                               (new_state, payment_status if outcome == "ok" else "rejected", payment_url, reply,
                                now, item.order_id))
                else:
                    db.execute("UPDATE orders SET payment_status=?, updated_at=? WHERE order_id=?",
                               ("cancelled" if outcome == "ok" else "cancel rejected", now, item.order_id))
            else:
                db.execute("UPDATE outbox SET next_at=?, outcome=? WHERE id=?",
                           (retry_at if retry_at is not None else now, outcome, item.id))

    # --- upkeep: keep the database bounded --------------------------------
    PRUNE_BATCH = 500                 # orders per transaction: the outbox thread never waits long
    FINISHED_ORDER_STATES = ("sent", "pay_at_till", "cancelled", "rejected")
    VACUUM_MIN_FREE_PAGES = 1024      # 4 MiB at the default page size ...
    VACUUM_MIN_FREE_SHARE = 0.25      # ... and a quarter of the file: "much was deleted"

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self.db.execute("SELECT * FROM pragma_table_info(?)", (table,))}

    def prune(self, now: float, keep_days: float, *, full_vacuum: bool = False) -> dict:
        """Delete what is finished and older than `keep_days`; returns the counts per table, plus
        `vacuum` ("none", "incremental", "full" or "failed") and `free_pages` left in the file.

        * Orders that are done for the mirror (sent to the store, pay at the till, cancelled,
          rejected), last changed before the cutoff, with their outbox entries and deliveries
          and reservations. Never an order still `recorded`, one with an outbox entry not done
          (a cancel still to send), or one with a reservation still held.
          "pay_at_till" counts as done: the mirror never hears back from the till, so with
          no store configured (the default) nothing else would ever bound the file.
        * Finished reservations (released, or held past their expiry) whose expiry is older.
        * If the tables exist (other parts of the same file): finished stock holds
          (`stock_holds`: collected/released/expired, closed before the cutoff) and
          `audit` rows (`at` before the cutoff).

        Space: deleted rows leave free pages that SQLite reuses, so the file does not grow
        past its high-water mark anyway. Only when much was freed (VACUUM_MIN_*) is it given
        back: with `PRAGMA incremental_vacuum` when the file has auto_vacuum=INCREMENTAL
        (every file this journal created), which frees just those pages quickly; an older
        file gets one full `VACUUM` (which also converts it) only when `full_vacuum` is true,
        which the kiosk passes at start only: VACUUM rewrites the whole file, holds the write
        lock meanwhile, needs as much free disk again, and in WAL mode first writes the whole
        file into the -wal. After either, `wal_checkpoint(TRUNCATE)` shrinks the -wal back."""
        cutoff = now - keep_days * 86400.0
        counts = {k: 0 for k in ("orders", "outbox", "deliveries", "reservations", "holds", "audit")}
        states = ",".join(f"'{s}'" for s in self.FINISHED_ORDER_STATES)

        def res_finished(r: str) -> str:
            return (f"({r}.state IN ('collected', 'released', 'expired') OR ({r}.state='held' AND "
                    f"{r}.expires_at<=:now)) AND {r}.expires_at<:cutoff")

        params = {"now": now, "cutoff": cutoff, "n": self.PRUNE_BATCH}
        while True:
            with self.tx() as db:
                ids = [r[0] for r in db.execute(
                    f"SELECT o.order_id FROM orders o WHERE o.state IN ({states}) AND o.updated_at<:cutoff "
                    "AND NOT EXISTS (SELECT 1 FROM outbox b WHERE b.order_id=o.order_id AND b.done_at IS NULL) "
                    "AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id=o.order_id "
                    f"AND NOT ({res_finished('r')})) LIMIT :n", params)]
                if ids:
                    q = ",".join("?" * len(ids))
                    for table in ("deliveries", "outbox", "reservations", "orders"):
                        counts[table] += db.execute(f"DELETE FROM {table} WHERE order_id IN ({q})", ids).rowcount
            if len(ids) < self.PRUNE_BATCH:
                break
        with self.tx() as db:
            counts["reservations"] += db.execute(
                f"DELETE FROM reservations WHERE id IN (SELECT r.id FROM reservations r WHERE {res_finished('r')})",
                {"now": now, "cutoff": cutoff}).rowcount
        if {"state", "closed_at", "expires_at"} <= self._columns("stock_holds"):
            with self.tx() as db:
                counts["holds"] = db.execute(
                    "DELETE FROM stock_holds WHERE state IN ('collected', 'released', 'expired') "
                    "AND COALESCE(closed_at, expires_at)<?", (cutoff,)).rowcount
        if "at" in self._columns("audit"):
            while True:
                with self.tx() as db:
                    n = db.execute("DELETE FROM audit WHERE rowid IN (SELECT rowid FROM audit WHERE at<? LIMIT ?)",
                                   (cutoff, self.PRUNE_BATCH * 10)).rowcount
                counts["audit"] += n
                if n < self.PRUNE_BATCH * 10:
                    break
        counts["vacuum"] = self._reclaim(full_vacuum)
        counts["free_pages"] = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return counts

    def _reclaim(self, full_vacuum: bool) -> str:
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        if free < max(self.VACUUM_MIN_FREE_PAGES, pages * self.VACUUM_MIN_FREE_SHARE):
            return "none"
        incremental = self.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        if not incremental and not full_vacuum:
            return "none"                              # the free pages are reused; VACUUM waits for a start
        try:
            if incremental:
                # Python's sqlite3 steps a PRAGMA once, and each step of incremental_vacuum frees one
                # page: so one statement per page, inside transactions (one fsync per chunk).
                for start in range(0, free, 4096):
                    with self.tx() as db:
                        for _ in range(min(4096, free - start)):
                            db.execute("PRAGMA incremental_vacuum")
            else:
                self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")           # VACUUM converts the file
                self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as e:         # busy, or no disk for the copy: try again next time
            log.warning("order journal: giving back %d free pages failed (%s); they are reused meanwhile", free, e)
            return "failed"
        return "incremental" if incremental else "full"

    # --- staff view --------------------------------------------------------
    def list_orders(self, limit: int = 200) -> list[dict]:
        rows = self.db.execute("SELECT * FROM orders ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        out = []
        for r in rows:
            d = Order.from_row(r).as_dict()
            d["member_id"] = r["member_id"]
            d["items"] = json.loads(r["cart_json"]).get("items", [])
            d["deliveries"] = [dict(x) for x in self.db.execute(
                "SELECT kind, attempt, started_at, finished_at, outcome, http_status, error FROM deliveries "
                "WHERE order_id=? ORDER BY id", (r["order_id"],))]
            pending = self.db.execute("SELECT kind, attempts, next_at FROM outbox WHERE order_id=? AND done_at IS NULL "
                                      "ORDER BY id LIMIT 1", (r["order_id"],)).fetchone()
            d["outbox"] = dict(pending) if pending else None
            out.append(d)
        return out

    def list_reservations(self, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        rows = self.db.execute("SELECT r.*, o.code FROM reservations r JOIN orders o USING (order_id) "
                               "ORDER BY r.expires_at").fetchall()
        out = []
        for r in rows:
            d = dict(r)
            if d["state"] == "held" and d["expires_at"] <= now:
                d["state"] = "expired"
            out.append(d)
        return out


PAYMENT_STATUS_MAX = 60      # shown on the mirror as "Store checkout: <status>"
PAYMENT_URL_MAX = 300        # shown as "Pay on your phone: <url>"


def _payment_of(reply: str | None) -> tuple[str | None, str | None]:
    """The payment status and link in the store's JSON reply, each None unless it is a
    plain piece of text the mirror can show: a store that nests them, sends numbers or
    a link that is no http(s) URL must not stop its own order's delivery (nor the others
    queued behind it)."""
    try:
        data = json.loads(reply) if reply else None
    except (ValueError, RecursionError):      # not JSON, or nested past the parser's depth
        return None, None
    if not isinstance(data, dict):
        return None, None

    def text(v, most: int) -> str | None:
        return (printable(v)[:most] or None) if isinstance(v, str) else None

    status = text(data.get("payment_status"), PAYMENT_STATUS_MAX) or text(data.get("status"), PAYMENT_STATUS_MAX)
    url = data.get("payment_url")
    url = url.strip() if isinstance(url, str) else ""
    if not (len(url) <= PAYMENT_URL_MAX and url.startswith(("https://", "http://")) and url.isprintable()
            and " " not in url):
        url = None            # cut or cleaned, a link would lead somewhere else
    return status, url


# --- delivery to the store's checkout ------------------------------------------
class StoreClient:
    """POSTs JSON to the store's checkout with an Idempotency-Key header."""

    def __init__(self, url: str, timeout_s: float = 5.0, token: str = ""):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"store URL {url!r} is not an http(s) URL")
        self.url, self.u, self.timeout, self.token = url, u, timeout_s, token

    def post(self, item: OutboxItem) -> tuple[int, str]:
        """(status, body); raises OSError / http.client errors on transport failure."""
        u = self.u
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        conn = cls(u.hostname, u.port, timeout=self.timeout)
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        if item.kind == "cancel":
            path = path.rstrip("/") + f"/{item.order_id}/cancel"
        headers = {"Content-Type": "application/json", "Idempotency-Key": item.idem_key,
                   "User-Agent": "smart-mirror-checkout/1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request("POST", path, body=item.body.encode("utf-8"), headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(64 * 1024).decode("utf-8", "replace")
        finally:
            conn.close()


def classify(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status in (408, 425, 429) or status >= 500:
        return f"http_{status}"
    return "rejected"


OUTBOX_ERROR_MAX_S = 60.0   # longest pause after the outbox's own failures (not the store's)


class Outbox:
    """Delivers outbox entries on its own thread, forever, until stopped."""

    def __init__(self, db_path: str | os.PathLike, client: StoreClient, *, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 300.0, on_result: Callable[..., None] | None = None, seed: int | None = None):
        self.db_path = db_path
        self.client = client
        self.backoff_initial = backoff_initial_s
        self.backoff_max = backoff_max_s
        self.on_result = on_result
        self.rng = random.Random(seed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout + 2)

    def run(self) -> None:
        journal = None
        failures = 0
        while not self._stop.is_set():
            try:
                if journal is None:
                    journal = OrderJournal(self.db_path)
                    journal.recover_in_flight()
                item, due = journal.next_due(time.time())
                if item is None:
                    failures = 0                  # a pass that worked: the next error starts short again
                    wait = 1.0 if due is None else max(0.0, min(1.0, due - time.time()))
                    self._wake.wait(wait)
                    self._wake.clear()
                    continue
                self.deliver(journal, item)
                failures = 0
            except Exception as e:
                # the thread must outlive anything: a dead outbox delivers nothing, silently
                failures += 1
                wait = delay_for(failures, 1.0, OUTBOX_ERROR_MAX_S, 1.0)
                log.exception("outbox: %s; trying again in %.0f s", "database error" if isinstance(e, sqlite3.Error)
                              else "unexpected error", wait)
                if journal is not None:
                    journal.close()
                journal = None
                self._stop.wait(wait)
        if journal is not None:
            journal.close()

    def deliver(self, journal: OrderJournal, item: OutboxItem) -> str:
        attempt_id = journal.begin_attempt(item, time.time())
        crashpoint("before_delivery")
        status, body, error = None, None, None
        try:
            status, body = self.client.post(item)
            outcome = classify(status)
        except socket.timeout:
            outcome, error = "timeout", f"no reply within {self.client.timeout:g} s"
        except (OSError, http.client.HTTPException) as e:
            outcome, error = "conn_error", f"{type(e).__name__}: {e}"[:300]
        except Exception as e:
            # not the network: the request could not even be made (a header the
            # token broke). Its message may quote the token, so it is not kept.
            outcome, error = "conn_error", (f"{type(e).__name__} while making the request; check "
                                            "checkout.store_url and checkout.store_token")
        crashpoint("after_delivery")
        now = time.time()
        retry_at = None
        if outcome not in ("ok", "rejected"):
            retry_at = now + delay_for(item.attempts + 1, self.backoff_initial, self.backoff_max,
                                       jitter_factor(self.rng))
            log.warning("outbox: %s of order %s failed (%s%s); retry in %.1f s", item.kind, item.order_id, outcome,
                        f": {error}" if error else "", retry_at - now)
        elif outcome == "rejected":
            log.error("outbox: the store rejected the %s of order %s (HTTP %s): %s", item.kind, item.order_id,
                      status, (body or "")[:200])
        journal.finish_attempt(item, attempt_id, outcome=outcome, now=now, http_status=status, error=error,
                               reply=body if outcome in ("ok", "rejected") else None, retry_at=retry_at)
        if self.on_result is not None and outcome in ("ok", "rejected"):
            order = journal.get(item.order_id)
            self.on_result(order_id=item.order_id, kind=item.kind, outcome=outcome,
                           payment_status=order.payment_status if order else None,
                           payment_url=order.payment_url if order else None)
        return outcome
