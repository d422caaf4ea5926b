"""Store members (clienteling), in the kiosk's one SQLite database.

Nothing here is read for a shopper unless she said yes at the mirror: the
staff feature asks for `profile()` only after her consent, and the web store
writes through its own token. What is kept per member id (the id her card's
NDEF record carries, see nfc/type4.py):

* `members`: her first name, the sizes staff noted as hers, when first and
  last seen;
* `member_notes`: short notes staff wrote (who, when);
* `member_looks`: looks she saved at the mirror while her profile was shared
  (SKU and colour; never a picture);
* `member_wishlist`: what the web store sent;
* her reservations are stock holds with her member id (catalogue.py), and her
  past orders are the order journal's rows with her member id.

`forget()` is the right to erasure: it deletes her rows, releases and
unlinks her reservations, and strips her id from the orders (their money
records stay, for the store's books, without her).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

from mirror.storage.catalogue import Store, transaction

MEMBER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
NAME_MAX = 40
NOTE_MAX = 300
LIST_MAX = 50

SCHEMA_STEPS: tuple[tuple[int, str], ...] = ((1, """
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL DEFAULT '',
    sizes TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    last_seen_at REAL
);
CREATE TABLE IF NOT EXISTS member_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    at REAL NOT NULL,
    by TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS member_looks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    at REAL NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    colour TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS member_wishlist (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id TEXT NOT NULL REFERENCES members (member_id) ON DELETE CASCADE,
    at REAL NOT NULL,
    sku TEXT NOT NULL,
    colour TEXT NOT NULL DEFAULT '',
    size TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS member_notes_by ON member_notes (member_id);
CREATE INDEX IF NOT EXISTS member_looks_by ON member_looks (member_id);
CREATE INDEX IF NOT EXISTS member_wishlist_by ON member_wishlist (member_id)
"""),)


class MemberError(ValueError):
    """Bad input about a member (one line)."""


class UnknownMember(MemberError):
    pass


def check_member_id(member_id) -> str:
    if not isinstance(member_id, str) or not MEMBER_ID_RE.fullmatch(member_id):
        raise MemberError("a member id is 1-64 letters, digits, '_', '.', ':' or '-'")
    return member_id


def clean_name(name) -> str:
    name = " ".join(str(name or "").split())[:NAME_MAX]
    return name if name.isprintable() else ""


class Members(Store):
    """Members, their notes, looks and wishlist."""
    PART, STEPS = "members", SCHEMA_STEPS

    # --- writing -----------------------------------------------------------------
    def seen(self, member_id: str, first_name: str = "", now: float | None = None) -> dict:
        """Make sure she exists (a tap with her consent, or the web store); a first name updates hers."""
        check_member_id(member_id)
        now = time.time() if now is None else now
        name = clean_name(first_name)
        with transaction(self.db) as db:
            db.execute("INSERT INTO members (member_id, first_name, created_at, last_seen_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (member_id) DO UPDATE SET last_seen_at=excluded.last_seen_at, "
                       "first_name=CASE WHEN excluded.first_name != '' THEN excluded.first_name ELSE first_name END",
                       (member_id, name, now, now))
        return self.get(member_id)

    def get(self, member_id: str) -> dict:
        r = self.db.execute("SELECT * FROM members WHERE member_id=?", (member_id,)).fetchone()
        if r is None:
            raise UnknownMember(f"no member {member_id[:64]!r} (forgotten, or never seen here)")
        return {"member_id": r["member_id"], "first_name": r["first_name"],
                "sizes": [s for s in r["sizes"].split("|") if s], "created_at": r["created_at"],
                "last_seen_at": r["last_seen_at"]}

    def exists(self, member_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM members WHERE member_id=?", (member_id,)).fetchone() is not None

    def set_sizes(self, member_id: str, sizes: list[str]) -> dict:
        clean = [" ".join(str(s).split())[:8] for s in sizes if str(s).strip()][:8]
        with transaction(self.db) as db:
            if db.execute("UPDATE members SET sizes=? WHERE member_id=?",
                          ("|".join(clean), member_id)).rowcount == 0:
                raise UnknownMember(f"no member {member_id[:64]!r}")
        return self.get(member_id)

    def add_note(self, member_id: str, by: str, text: str, now: float | None = None) -> dict:
        text = " ".join(str(text).split())[:NOTE_MAX]
        if not text:
            raise MemberError("the note is empty")
        now = time.time() if now is None else now
        with transaction(self.db) as db:
            if not self.exists(member_id):
                raise UnknownMember(f"no member {member_id[:64]!r}")
            cur = db.execute("INSERT INTO member_notes (member_id, at, by, text) VALUES (?, ?, ?, ?)",
                             (member_id, now, by, text))
        return {"id": cur.lastrowid, "at": now, "by": by, "text": text}

    def add_look(self, member_id: str, sku: str, name: str, colour: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with transaction(self.db) as db:
            if self.exists(member_id):
                db.execute("INSERT INTO member_looks (member_id, at, sku, name, colour) VALUES (?, ?, ?, ?, ?)",
                           (member_id, now, sku[:40], name[:80], colour[:40]))

    def add_wishlist(self, member_id: str, items: list[tuple[str, str, str]], now: float | None = None) -> int:
        """(sku, colour, size) items the web store sent; each SKU/colour/size once."""
        now = time.time() if now is None else now
        added = 0
        with transaction(self.db) as db:
            for sku, colour, size in items:
                if db.execute("SELECT 1 FROM member_wishlist WHERE member_id=? AND sku=? AND colour=? AND size=?",
                              (member_id, sku, colour, size)).fetchone() is None:
                    db.execute("INSERT INTO member_wishlist (member_id, at, sku, colour, size) VALUES (?, ?, ?, ?, ?)",
                               (member_id, now, sku, colour, size))
                    added += 1
        return added

    # --- reading -----------------------------------------------------------------------
    def profile(self, member_id: str, catalogue=None, now: float | None = None) -> dict:
        """Everything staff may see of her, after her yes: name, sizes, past orders here, saved
        looks, reservations, wishlist and notes (newest first, at most LIST_MAX of each)."""
        now = time.time() if now is None else now
        m = self.get(member_id)
        q = self.db.execute
        notes = [dict(r) for r in q("SELECT at, by, text FROM member_notes WHERE member_id=? ORDER BY id DESC "
                                    "LIMIT ?", (member_id, LIST_MAX))]
        looks = [dict(r) for r in q("SELECT at, sku, name, colour FROM member_looks WHERE member_id=? "
                                    "ORDER BY id DESC LIMIT ?", (member_id, LIST_MAX))]
        wishlist = [dict(r) for r in q("SELECT at, sku, colour, size FROM member_wishlist WHERE member_id=? "
                                       "ORDER BY id DESC LIMIT ?", (member_id, LIST_MAX))]
        orders, order_sizes = self._orders(member_id)
        holds = []
        if catalogue is not None:
            for h in catalogue.holds(state=None, member_id=member_id, limit=LIST_MAX):
                p = catalogue.find(h.sku)
                holds.append({"id": h.id, "sku": h.sku, "name": p.name if p else h.sku, "colour": h.colour,
                              "size": h.size, "source": h.source, "created_at": h.created_at,
                              "expires_at": h.expires_at,
                              "state": "expired" if h.state == "held" and h.expires_at <= now else h.state})
            for w in wishlist:
                p = catalogue.find(w["sku"])
                w["name"] = p.name if p else w["sku"]
        sizes = list(m["sizes"]) or [s for s, _ in sorted(order_sizes.items(), key=lambda kv: -kv[1])][:3]
        return {**m, "sizes": sizes, "sizes_noted": bool(m["sizes"]), "orders": orders, "looks": looks,
                "reservations": holds, "wishlist": wishlist, "notes": notes}

    def _orders(self, member_id: str) -> tuple[list[dict], dict[str, int]]:
        try:
            rows = self.db.execute("SELECT order_id, code, created_at, total, state, cart_json FROM orders "
                                   "WHERE member_id=? ORDER BY created_at DESC LIMIT ?",
                                   (member_id, LIST_MAX)).fetchall()
        except sqlite3.OperationalError:           # no order journal in this database yet
            return [], {}
        out, sizes = [], {}
        for r in rows:
            try:
                items = json.loads(r["cart_json"]).get("items") or []
            except (ValueError, AttributeError):
                items = []
            names = []
            for it in items:
                if isinstance(it, dict):
                    names.append(" ".join(str(it.get(k) or "") for k in ("name", "colour", "size")).strip())
                    if it.get("size"):
                        sizes[str(it["size"])] = sizes.get(str(it["size"]), 0) + 1
            out.append({"order_id": r["order_id"], "code": r["code"], "at": r["created_at"], "total": r["total"],
                        "state": r["state"], "items": names})
        return out, sizes

    # --- erasure --------------------------------------------------------------------------
    def forget(self, member_id: str, now: float | None = None) -> dict:
        """Delete everything about her; returns what was removed (counts, no personal data)."""
        now = time.time() if now is None else now
        with transaction(self.db) as db:
            if not self.exists(member_id):
                raise UnknownMember(f"no member {member_id[:64]!r} (already forgotten?)")
            counts = {t: db.execute(f"SELECT COUNT(*) FROM {t} WHERE member_id=?", (member_id,)).fetchone()[0]
                      for t in ("member_notes", "member_looks", "member_wishlist")}
            db.execute("DELETE FROM members WHERE member_id=?", (member_id,))      # notes, looks, wishlist cascade
            try:
                counts["reservations_released"] = db.execute(
                    "UPDATE stock_holds SET state='released', closed_at=? WHERE member_id=? AND state='held'",
                    (now, member_id)).rowcount
                db.execute("UPDATE stock_holds SET member_id='', for_name='' WHERE member_id=?", (member_id,))
            except sqlite3.OperationalError:
                counts["reservations_released"] = 0
            try:
                counts["orders_unlinked"] = db.execute(
                    "UPDATE orders SET member_id=NULL, card_id='m:forgotten' WHERE member_id=?",
                    (member_id,)).rowcount
            except sqlite3.OperationalError:
                counts["orders_unlinked"] = 0
        return counts
