"""Staff users and the audit trail, in the kiosk's one SQLite database.

* A staff user is a name (unique whatever the case, 1-40 printable
  characters, no ':' so that a name never looks like 'cli:root') and a PIN of
  at least 5 digits. Only an argon2id hash of the PIN is stored (argon2-cffi,
  `HASH_PARAMS`); a hash made with other parameters is replaced by a new one
  at the next successful `verify`.
* The staff console logs in with the PIN alone, so two users may not share a
  PIN: `add_user` refuses a PIN that another user has (it says so to the admin
  who runs it, never to the console). `verify(None, pin)` checks the PIN
  against every user, all of them every time, and `verify(name, pin)` against
  that user or a dummy hash, so the time taken says little about who exists.
  One check costs ~25 ms on one core here (login scales with the staff count).
* The audit table: who (a staff name, or 'cli:<unix user>'), what (a short
  action name), when (unix time) and a JSON detail. Never a PIN or a hash.

Tables created and migrated like the catalogue's (`schema.staff` in `meta`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mirror.storage.catalogue import Store, transaction

# argon2id, 19 MiB, 2 passes, 1 lane (OWASP's minimum): ~25 ms on one core, so a login does not
# take both cores from the vision loop. Change them and the stored hashes follow at the next login.
HASH_PARAMS = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}

PIN_RE = re.compile(r"[0-9]{5,64}")
NAME_MAX = 40
ACTION_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
DETAIL_MAX_CHARS = 4000

SCHEMA_STEPS: tuple[tuple[int, str], ...] = ((1, """
CREATE TABLE IF NOT EXISTS staff_users (
    name_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_login_at REAL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at)
"""),)


class StaffError(ValueError):
    """Bad input for a staff user (one line for the user)."""


def default_hasher() -> PasswordHasher:
    return PasswordHasher(**HASH_PARAMS)


def check_pin(pin) -> str:
    if not isinstance(pin, str) or not pin:
        raise StaffError("no PIN given")
    if not pin.isascii() or not pin.isdigit():
        raise StaffError("a PIN is digits only (0-9)")
    if len(pin) < 5:
        raise StaffError(f"a PIN needs at least 5 digits, this one has {len(pin)}")
    if not PIN_RE.fullmatch(pin):
        raise StaffError("a PIN has at most 64 digits")
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    if steps in ({0}, {1}, {-1}):
        # the first PINs anyone guesses; staff log in with the PIN alone
        raise StaffError("a PIN of one digit repeated or a run (11111, 12345, 98765) is the first one guessed; "
                         "choose another")
    return pin


def check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise StaffError("a staff name needs 1 to 40 characters")
    if name != name.strip():
        raise StaffError(f"staff name {name!r} starts or ends with a space")
    if len(name) > NAME_MAX:
        raise StaffError(f"a staff name has at most {NAME_MAX} characters, this one has {len(name)}")
    if not name.isprintable():
        raise StaffError(f"staff name {name!r} has a character that cannot be printed")
    if ":" in name:
        raise StaffError(f"staff name {name!r} has a ':' (reserved for names like cli:root in the audit)")
    return name


def _key(name: str) -> str:
    return name.casefold()


class StaffUsers(Store):
    """Staff users and the audit table."""
    PART, STEPS = "staff", SCHEMA_STEPS

    def __init__(self, path: str | os.PathLike, *, hasher: PasswordHasher | None = None):
        self.ph = hasher or default_hasher()
        self._dummy: str | None = None
        super().__init__(path)

    # --- users ----------------------------------------------------------------
    def _pin_taken(self, pin: str, except_key: str | None = None) -> bool:
        taken = False
        for r in self.db.execute("SELECT name_key, pin_hash FROM staff_users").fetchall():
            if r["name_key"] != except_key and self._check(r["pin_hash"], pin):
                taken = True          # keep going: the same work whoever has it
        return taken

    def _check(self, pin_hash: str, pin: str) -> bool:
        try:
            return self.ph.verify(pin_hash, pin)
        except (VerificationError, InvalidHashError):
            return False

    def add_user(self, name: str, pin: str, *, by: str | None = None, now: float | None = None) -> dict:
        """Add a user; with `by`, the audit entry is written in the same transaction."""
        now = time.time() if now is None else now
        check_name(name)
        check_pin(pin)
        pin_hash = self.ph.hash(pin)
        with transaction(self.db) as db:
            row = db.execute("SELECT name FROM staff_users WHERE name_key=?", (_key(name),)).fetchone()
            if row is not None:
                raise StaffError(f"there is already a staff user {row['name']!r}; remove it first or pick "
                                 "another name")
            if self._pin_taken(pin):
                raise StaffError("another staff user has this PIN (staff log in with the PIN alone); "
                                 "choose another PIN")
            db.execute("INSERT INTO staff_users (name_key, name, pin_hash, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?)", (_key(name), name, pin_hash, now, now))
            if by is not None:
                self._audit(by, "staff.add_user", {"name": name}, now)
        return {"name": name, "created_at": now, "last_login_at": None}

    def remove_user(self, name: str, *, by: str | None = None, now: float | None = None) -> str:
        """Remove a user (any case of the name); returns the name as stored. StaffError if none."""
        now = time.time() if now is None else now
        if not isinstance(name, str):
            raise StaffError("no staff name given")
        with transaction(self.db) as db:
            row = db.execute("SELECT name FROM staff_users WHERE name_key=?", (_key(name),)).fetchone()
            if row is None:
                raise StaffError(f"no staff user {name!r}; `mirror staff list-users` lists them")
            db.execute("DELETE FROM staff_users WHERE name_key=?", (_key(name),))
            if by is not None:
                self._audit(by, "staff.remove_user", {"name": row["name"]}, now)
        return row["name"]

    def set_pin(self, name: str, pin: str, *, by: str | None = None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        check_pin(pin)
        pin_hash = self.ph.hash(pin)
        with transaction(self.db) as db:
            row = db.execute("SELECT name FROM staff_users WHERE name_key=?", (_key(str(name)),)).fetchone()
            if row is None:
                raise StaffError(f"no staff user {name!r}; `mirror staff list-users` lists them")
            if self._pin_taken(pin, except_key=_key(name)):
                raise StaffError("another staff user has this PIN; choose another PIN")
            db.execute("UPDATE staff_users SET pin_hash=?, updated_at=? WHERE name_key=?",
                       (pin_hash, now, _key(name)))
            if by is not None:
                self._audit(by, "staff.set_pin", {"name": row["name"]}, now)

    def list_users(self) -> list[dict]:
        """[{name, created_at, last_login_at}] by name; never the hash."""
        return [dict(r) for r in self.db.execute(
            "SELECT name, created_at, last_login_at FROM staff_users ORDER BY name_key")]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM staff_users").fetchone()[0]

    def verify(self, name: str | None, pin: str, now: float | None = None) -> str | None:
        """The user's name if the PIN is right (for `name`, or for whoever has it when name is None), else None.

        Every candidate is checked every time (a dummy hash when there is none), so the time does not
        tell whether a name exists or whose PIN matched. A match made with old argon2 parameters is
        rehashed, and the login time is stored."""
        now = time.time() if now is None else now
        if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
            return None
        if name is None:
            rows = self.db.execute("SELECT name_key, name, pin_hash FROM staff_users").fetchall()
        elif isinstance(name, str):
            rows = self.db.execute("SELECT name_key, name, pin_hash FROM staff_users WHERE name_key=?",
                                   (_key(name),)).fetchall()
        else:
            return None
        if not rows:
            self._check(self._dummy_hash(), pin)
            return None
        match = None
        for r in rows:
            if self._check(r["pin_hash"], pin) and match is None:
                match = r
        if match is None:
            return None
        new_hash = None
        try:
            if self.ph.check_needs_rehash(match["pin_hash"]):
                new_hash = self.ph.hash(pin)
        except InvalidHashError:
            new_hash = self.ph.hash(pin)
        with transaction(self.db) as db:
            if new_hash is not None:
                db.execute("UPDATE staff_users SET pin_hash=?, updated_at=? WHERE name_key=? AND pin_hash=?",
                           (new_hash, now, match["name_key"], match["pin_hash"]))
            db.execute("UPDATE staff_users SET last_login_at=? WHERE name_key=?", (now, match["name_key"]))
        return match["name"]

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.ph.hash("dummy-" + secrets.token_hex(8))
        return self._dummy

    # --- audit ----------------------------------------------------------------
    def _audit(self, who: str, action: str, detail: dict | None, now: float) -> int:
        if not isinstance(who, str) or not who.strip() or len(who) > 100 or not who.isprintable():
            raise StaffError(f"audit: 'who' must be 1-100 printable characters, got {who!r}")
        if not isinstance(action, str) or not ACTION_RE.fullmatch(action):
            raise StaffError(f"audit: action {action!r} must be a short lower-case name like staff.add_user")
        try:
            text = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise StaffError(f"audit: the detail is not JSON ({e})")
        if len(text) > DETAIL_MAX_CHARS:
            raise StaffError(f"audit: the detail has {len(text)} characters, at most {DETAIL_MAX_CHARS}")
        cur = self.db.execute("INSERT INTO audit (at, who, action, detail) VALUES (?, ?, ?, ?)",
                              (now, who, action, text))
        return cur.lastrowid

    def audit(self, who: str, action: str, detail: dict | None = None, now: float | None = None) -> int:
        """Write one audit entry (committed, synchronous=FULL); returns its id."""
        now = time.time() if now is None else now
        with transaction(self.db):
            return self._audit(who, action, detail, now)

    def list_audit(self, limit: int = 100) -> list[dict]:
        """The newest `limit` entries, newest first: [{id, at, who, action, detail (a dict)}]."""
        limit = max(0, min(int(limit), 100000))
        out = []
        for r in self.db.execute("SELECT id, at, who, action, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)):
            d = dict(r)
            try:
                d["detail"] = json.loads(d["detail"])
            except ValueError:
                d["detail"] = {"raw": d["detail"]}
            out.append(d)
        return out
