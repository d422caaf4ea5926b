"""The catalogue and this store's stock, in the kiosk's one SQLite database.

* Products: SKU, name, category (top, bottom, dress, shoes, make-up,
  accessory), the garment part the mirror recolours (upper, lower, dress,
  none), price (a decimal string), image file name, colours (name + #RRGGBB, in
  order: the recolour palette), sizes (in order), stock on hand per colour and
  size, and "goes with" links to other SKUs (directed, in order).
* The catalogue comes from a CSV file (format in config/README.md, "The
  catalogue CSV"). An import validates every row, reports each bad one by its
  line number, and replaces the whole catalogue in one transaction, so a failed
  import keeps nothing. An export writes the same format back out.
* Stock holds ("put one aside in her size"): a hold takes `qty` of one colour
  and size out of what is available until it is collected (the stock on hand
  goes down), released, or expires. Available = on hand - active holds, never
  below zero. A hold past its expiry no longer counts even before `expire(now)`
  marks it expired. Holds are not tied to the catalogue rows, so an import
  (a new stock count) keeps them.
* The tables live in the same file as the orders (Config.orders_path()),
  opened like the order journal: WAL, synchronous=FULL. Each part of the
  database keeps its schema version in the `meta` table (`schema.catalogue`,
  `schema.staff`); `migrate()` applies the steps above the stored version, and
  refuses a database written by a newer version.

Only sqlite and the standard library: no bus, render, vision or feature.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sqlite3
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Sequence

CATEGORIES = ("top", "bottom", "dress", "shoes", "make-up", "accessory")
PARTS = ("upper", "lower", "dress", "none")
# Which garment parts make sense for each category (the mirror recolours garments only).
PARTS_FOR = {"top": ("upper", "none"), "bottom": ("lower", "none"), "dress": ("dress", "upper", "none"),
             "shoes": ("none",), "make-up": ("none",), "accessory": ("none",)}
COLUMNS = ("sku", "name", "category", "part", "price", "image", "colours", "sizes", "stock", "goes_with")
HOLD_STATES = ("held", "collected", "released", "expired")

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PRODUCTS = 20000
MAX_COLOURS = 32
MAX_SIZES = 40
MAX_LINKS = 24
MAX_STOCK = 999999
MAX_HOLD_QTY = 100
SUMMARY_MAX_LINES = 20            # bad rows named in the one-line summary; the rest are counted

SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
HEX_RE = re.compile(r"#[0-9A-Fa-f]{6}")
PRICE_RE = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")
SIZE_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .+-]{0,14}[A-Za-z0-9+.])?")
COUNT_RE = re.compile(r"[0-9]{1,6}")
IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(?:png|jpg|jpeg|webp)", re.IGNORECASE)
NAME_MAX = 80
COLOUR_NAME_MAX = 40
COLOUR_NAME_FORBIDDEN = set("|:/=")


# --- the database file shared with the order journal ---------------------------
class DatabaseError(Exception):
    """The database cannot be used (one line for the user)."""


META_DDL = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"   # as orders.py


DATABASE_MODE = 0o640   # the kiosk writes; its group (staff running `mirror orders`) reads; nobody else


def create_private(path: Path) -> None:
    """Create the database file with DATABASE_MODE, whatever the umask: it holds orders,
    members and staff. SQLite gives its -wal and -shm the main file's mode. An existing
    file keeps its mode (the store may have set one on purpose); a file that cannot be
    made is left for SQLite to report as it would anyway."""
    with suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_MODE)
        try:
            os.fchmod(fd, DATABASE_MODE)          # the umask may have taken the group's read
        finally:
            os.close(fd)


def open_database(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection to the kiosk's database, set up like the order journal's (WAL, synchronous=FULL)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        create_private(p)
        db = sqlite3.connect(str(p), isolation_level=None, timeout=30.0)
    except (OSError, sqlite3.Error) as e:
        raise DatabaseError(f"cannot open the database {p} ({e}); check the path and its permissions")
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as e:
        db.close()
        raise DatabaseError(f"{p} is not a database the mirror can use ({e})")
    return db


@contextmanager
def transaction(db: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    else:
        db.execute("COMMIT")


def schema_version(db: sqlite3.Connection, part: str) -> int:
    db.execute(META_DDL)
    row = db.execute("SELECT value FROM meta WHERE key=?", (f"schema.{part}",)).fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite3.Connection, part: str, steps: Sequence[tuple[int, str]], where: str = "") -> int:
    """Bring `part`'s tables to the newest of `steps` ((version, DDL separated by ';'), ascending).

    Idempotent (every statement is IF NOT EXISTS and runs only above the stored
    version), all in one transaction. Returns the version now stored."""
    newest = steps[-1][0]
    try:
        with transaction(db):
            current = schema_version(db, part)
            if current > newest:
                raise DatabaseError(f"{where or 'the database'} was written by a newer mirror ({part} schema "
                                    f"{current}, this one knows up to {newest}); update the mirror")
            for version, ddl in steps:
                if version > current:
                    for stmt in ddl.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
            if current != newest:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"schema.{part}", str(newest)))
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot set up the {part} tables in {where or 'the database'} ({e})")
    return newest


SCHEMA_STEPS: tuple[tuple[int, str], ...] = ((1, """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY COLLATE NOCASE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL CHECK (category IN ('top', 'bottom', 'dress', 'shoes', 'make-up', 'accessory')),
    part TEXT NOT NULL CHECK (part IN ('upper', 'lower', 'dress', 'none')),
    price TEXT NOT NULL,
    image TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS product_colours (
    sku TEXT NOT NULL COLLATE NOCASE REFERENCES products (sku) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    hex TEXT NOT NULL,
    PRIMARY KEY (sku, name)
);
CREATE TABLE IF NOT EXISTS product_sizes (
    sku TEXT NOT NULL COLLATE NOCASE REFERENCES products (sku) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    size TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (sku, size)
);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT NOT NULL COLLATE NOCASE REFERENCES products (sku) ON DELETE CASCADE,
    colour TEXT NOT NULL COLLATE NOCASE,
    size TEXT NOT NULL COLLATE NOCASE,
    on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
    PRIMARY KEY (sku, colour, size)
);
CREATE TABLE IF NOT EXISTS goes_with (
    sku TEXT NOT NULL COLLATE NOCASE REFERENCES products (sku) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    other TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (sku, other)
);
CREATE TABLE IF NOT EXISTS stock_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL COLLATE NOCASE,
    colour TEXT NOT NULL COLLATE NOCASE,
    size TEXT NOT NULL COLLATE NOCASE,
    qty INTEGER NOT NULL CHECK (qty > 0),
    ref TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'collected', 'released', 'expired')),
    closed_at REAL
);
CREATE INDEX IF NOT EXISTS stock_holds_active ON stock_holds (state, sku, colour, size)
"""), (2, """
ALTER TABLE stock_holds ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE stock_holds ADD COLUMN member_id TEXT NOT NULL DEFAULT '';
ALTER TABLE stock_holds ADD COLUMN for_name TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS stock_holds_member ON stock_holds (member_id)
"""))
HOLD_SOURCES = ("", "mirror", "staff", "webstore")


# --- the model -------------------------------------------------------------------
@dataclass(frozen=True)
class Colour:
    name: str
    hex: str              # '#RRGGBB', upper case


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    part: str
    price: str            # decimal string with two places: '79.00'
    image: str            # file name, '' for none
    colours: tuple[Colour, ...]
    sizes: tuple[str, ...]
    stock: tuple[tuple[str, str, int], ...]    # (colour, size, on hand) for every colour x size, in order
    goes_with: tuple[str, ...]

    def on_hand(self, colour: str, size: str) -> int:
        c, s = colour.casefold(), size.casefold()
        for col, sz, n in self.stock:
            if col.casefold() == c and sz.casefold() == s:
                return n
        return 0

    def as_dict(self) -> dict:
        """JSON-ready; `stock` is {colour: {size: on hand}} in catalogue order."""
        stock: dict[str, dict[str, int]] = {}
        for col, sz, n in self.stock:
            stock.setdefault(col, {})[sz] = n
        return {"sku": self.sku, "name": self.name, "category": self.category, "part": self.part,
                "price": self.price, "image": self.image,
                "colours": [{"name": c.name, "hex": c.hex} for c in self.colours],
                "sizes": list(self.sizes), "stock": stock, "goes_with": list(self.goes_with)}


@dataclass(frozen=True)
class Hold:
    id: int
    sku: str
    colour: str
    size: str
    qty: int
    ref: str
    created_at: float
    expires_at: float
    state: str            # held | collected | released | expired
    closed_at: float | None
    source: str = ""      # mirror (her button), staff (the console), webstore, or "" (a script)
    member_id: str = ""   # the member it is put aside for, if known
    for_name: str = ""    # her first name, for the console ("Jenny reserved ...")

    def active(self, now: float) -> bool:
        return self.state == "held" and self.expires_at > now

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "Hold":
        return cls(r["id"], r["sku"], r["colour"], r["size"], r["qty"], r["ref"], r["created_at"],
                   r["expires_at"], r["state"], r["closed_at"], r["source"], r["member_id"], r["for_name"])


class CatalogueError(ValueError):
    """A request the catalogue cannot serve (one line for the user)."""


class UnknownProduct(CatalogueError):
    pass


class OutOfStock(CatalogueError):
    pass


class HoldError(CatalogueError):
    pass


# --- CSV ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str
    row: bool = True      # False: a problem with the file itself (empty, header, quoting)


class CatalogueImportError(CatalogueError):
    """Every problem of a CSV file; nothing was imported. str() is the one-line summary."""

    def __init__(self, source: str, problems: list[RowProblem]):
        self.source, self.problems = source, sorted(problems, key=lambda p: p.line)
        super().__init__(self.summary())

    @property
    def bad_lines(self) -> list[int]:
        return sorted({p.line for p in self.problems})

    def summary(self) -> str:
        lines = sorted({p.line for p in self.problems})
        rows = sorted({p.line for p in self.problems if p.row})
        shown = set(lines[:SUMMARY_MAX_LINES])
        detail = "; ".join(f"line {p.line}: {p.reason}" for p in self.problems if p.line in shown)
        if len(lines) > len(shown):
            detail += f"; and {len(lines) - len(shown)} more bad lines"
        head = f"{len(rows)} bad row{'s' if len(rows) != 1 else ''}" if rows else "bad file"
        return f"{self.source}: {head} ({detail}); nothing imported"


def _q(value: str, limit: int = 40) -> str:
    """A value from the file, quoted for a one-line message."""
    v = value if len(value) <= limit else value[:limit - 1] + "…"
    v = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in v)
    return "'" + v.replace("'", "\\'") + "'"


def _split(field: str, sep: str = "|") -> list[str]:
    field = field.strip()
    return [t.strip() for t in field.split(sep)] if field else []


def _decode(data: bytes) -> tuple[str, dict[int, str]]:
    """The text (bad bytes replaced) and {line: reason} for each line that is not UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    bad: dict[int, str] = {}
    try:
        return data.decode("utf-8"), bad
    except UnicodeDecodeError:
        pass
    for i, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad[i] = f"not UTF-8 (byte 0x{raw[e.start]:02X} at column {e.start + 1}: save the file as UTF-8)"
    return data.decode("utf-8", errors="replace"), bad


def _records(text: str):
    """(first line, last line, fields) of each CSV record, blank lines and '#' comment lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    last = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise _CsvBroken(last + 1, f"broken CSV quoting ({e}): a field with a comma, quote or line break "
                                       'goes in double quotes, with " written as ""')
        first, last = last + 1, reader.line_num
        if not fields or all(not f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        yield first, last, fields


class _CsvBroken(Exception):
    def __init__(self, line: int, reason: str):
        self.line, self.reason = line, reason


def _parse_row(get, problems: list[str]) -> dict | None:
    """Validate one record (get(column) -> str); append reasons to problems; the product fields or None."""
    sku = get("sku").strip()
    if not sku:
        problems.append("empty SKU")
    elif not SKU_RE.fullmatch(sku):
        problems.append(f"SKU {_q(sku)} must be 1-40 letters, digits, '.', '_' or '-', starting with a letter "
                        "or digit")
    name = get("name").strip()
    if not name:
        problems.append("empty name")
    elif len(name) > NAME_MAX or not name.isprintable():
        problems.append(f"name {_q(name)} must be 1-{NAME_MAX} printable characters")
    category = get("category").strip().lower()
    if category not in CATEGORIES:
        problems.append(f"category {_q(get('category').strip())} is not one of {', '.join(CATEGORIES)}")
    part = get("part").strip().lower()
    if part not in PARTS:
        problems.append(f"part {_q(get('part').strip())} is not one of {', '.join(PARTS)}")
    elif category in PARTS_FOR and part not in PARTS_FOR[category]:
        problems.append(f"part {_q(part)} does not fit category {_q(category)} (use "
                        f"{' or '.join(PARTS_FOR[category])}; the mirror recolours garments only)")
    price_raw = get("price").strip()
    price = ""
    if not PRICE_RE.fullmatch(price_raw):
        problems.append(f"price {_q(price_raw)} is not a decimal number like 79.00 (no currency sign)")
    else:
        price = f"{Decimal(price_raw):.2f}"
    image = get("image").strip()
    if image and not IMAGE_RE.fullmatch(image):
        problems.append(f"image {_q(image)} must be a plain file name ending in .png, .jpg, .jpeg or .webp")

    colours: list[Colour] = []
    seen: set[str] = set()
    named: set[str] = set()          # every colour name written, valid or not (no second error for its stock)
    raw_colours = _split(get("colours"))
    if not raw_colours:
        problems.append("no colours (write them like Navy:#1F2A44|Black:#111111)")
    elif len(raw_colours) > MAX_COLOURS:
        problems.append(f"{len(raw_colours)} colours, at most {MAX_COLOURS}")
    for tok in raw_colours[:MAX_COLOURS]:
        cname, sep, hexv = tok.rpartition(":")
        cname, hexv = cname.strip(), hexv.strip()
        named.add((cname if sep else tok).casefold())
        if not sep or not cname:
            problems.append(f"colour {_q(tok)} is not Name:#RRGGBB")
        elif not HEX_RE.fullmatch(hexv):
            problems.append(f"colour {_q(tok)} is not #RRGGBB")
        elif (len(cname) > COLOUR_NAME_MAX or not cname.isprintable()
              or COLOUR_NAME_FORBIDDEN.intersection(cname)):
            problems.append(f"colour name {_q(cname)} must be 1-{COLOUR_NAME_MAX} printable characters "
                            "without | : / =")
        elif cname.casefold() in seen:
            problems.append(f"colour {_q(cname)} is listed twice")
        else:
            seen.add(cname.casefold())
            colours.append(Colour(cname, hexv.upper()))

    sizes: list[str] = []
    raw_sizes = _split(get("sizes"))
    if not raw_sizes:
        problems.append("no sizes (write them like XS|S|M|L, or One size)")
    elif len(raw_sizes) > MAX_SIZES:
        problems.append(f"{len(raw_sizes)} sizes, at most {MAX_SIZES}")
    named_sizes = {t.casefold() for t in raw_sizes}
    for tok in raw_sizes[:MAX_SIZES]:
        if not SIZE_RE.fullmatch(tok):
            problems.append(f"size {_q(tok)} must be 1-16 letters, digits, spaces, '.', '+' or '-'")
        elif tok.casefold() in {s.casefold() for s in sizes}:
            problems.append(f"size {_q(tok)} is listed twice")
        else:
            sizes.append(tok)

    by_colour = {c.name.casefold(): c.name for c in colours}
    by_size = {s.casefold(): s for s in sizes}
    counts: dict[tuple[str, str], int] = {}
    for tok in _split(get("stock")):
        key, sep, n = tok.rpartition("=")
        col, slash, sz = key.partition("/")
        col, sz, n = col.strip(), sz.strip(), n.strip()
        if not sep or not slash or not col or not sz:
            problems.append(f"stock {_q(tok)} is not Colour/Size=N")
        elif not COUNT_RE.fullmatch(n):
            problems.append(f"stock {_q(tok)}: {_q(n)} is not a whole number from 0 to {MAX_STOCK}")
        elif col.casefold() not in by_colour and col.casefold() in named:
            pass                         # its colour is already reported as bad
        elif sz.casefold() not in by_size and sz.casefold() in named_sizes:
            pass
        elif col.casefold() not in by_colour:
            problems.append(f"stock {_q(tok)}: colour {_q(col)} is not in colours "
                            f"{'|'.join(c.name for c in colours) or '(none)'}")
        elif sz.casefold() not in by_size:
            problems.append(f"stock {_q(tok)}: size {_q(sz)} is not in sizes {'|'.join(sizes) or '(none)'}")
        else:
            k = (by_colour[col.casefold()], by_size[sz.casefold()])
            if k in counts:
                problems.append(f"stock for {k[0]}/{k[1]} is given twice")
            counts[k] = int(n)

    links = _split(get("goes_with"))
    if len(links) > MAX_LINKS:
        problems.append(f"{len(links)} goes_with links, at most {MAX_LINKS}")
    for tok in links:
        if not SKU_RE.fullmatch(tok):
            problems.append(f"goes_with {_q(tok)} is not a SKU")
        elif tok.casefold() == sku.casefold():
            problems.append(f"goes_with links {_q(tok)} to itself")
    if len({t.casefold() for t in links}) != len(links):
        problems.append("goes_with names a SKU twice")
    if problems:
        return None
    stock = tuple((c.name, s, counts.get((c.name, s), 0)) for c in colours for s in sizes)
    return {"sku": sku, "name": name, "category": category, "part": part, "price": price, "image": image,
            "colours": tuple(colours), "sizes": tuple(sizes), "stock": stock, "goes_with": tuple(links)}


def parse_csv(data: bytes | str, source: str = "catalog.csv", images_dir: str | os.PathLike | None = None
              ) -> list[Product]:
    """Every product of a catalogue CSV, or CatalogueImportError naming each bad row by its line number.

    With images_dir, each named image must exist in that folder."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise CatalogueImportError(source, [RowProblem(1, f"the file is {len(data)} bytes, more than "
                                                          f"{MAX_FILE_BYTES // (1024 * 1024)} MB", False)])
    text, bad_lines = _decode(data)
    problems: list[RowProblem] = []
    expected = ",".join(COLUMNS)
    if not text.strip():
        raise CatalogueImportError(source, [RowProblem(1, f"the file is empty, expected the header {expected} "
                                                          "and one row per product", False)])
    rows: list[tuple[int, dict]] = []
    first_sku_line: dict[str, int] = {}
    header: list[str] | None = None
    header_line = 1
    row_links: dict[int, list[str]] = {}      # line -> goes_with SKUs, also of rows that are bad otherwise
    try:
        for first, last, fields in _records(text):
            enc = [bad_lines[n] for n in range(first, last + 1) if n in bad_lines]
            if header is None:
                if enc:
                    raise CatalogueImportError(source, [RowProblem(first, enc[0], False)])
                header, header_line = [f.strip().lower() for f in fields], first
                missing = [c for c in COLUMNS if c not in header]
                unknown = [c for c in header if c not in COLUMNS]
                dup = sorted({c for c in header if header.count(c) > 1})
                reasons = []
                if missing:
                    reasons.append(f"the header misses {', '.join(missing)}")
                if unknown:
                    reasons.append(f"unknown column{'s' if len(unknown) > 1 else ''} "
                                   f"{', '.join(_q(c) for c in unknown)}")
                if dup:
                    reasons.append(f"column{'s' if len(dup) > 1 else ''} {', '.join(dup)} given twice")
                if reasons:
                    raise CatalogueImportError(source, [RowProblem(first, r + f" (expected {expected})", False)
                                                        for r in reasons])
                continue
            if enc:
                problems.extend(RowProblem(first, r) for r in enc[:1])
                if "sku" in header and header.index("sku") < len(fields):      # still a SKU that links may name
                    first_sku_line.setdefault(fields[header.index("sku")].strip().casefold(), first)
                continue
            if len(fields) != len(header):
                if "sku" in header and header.index("sku") < len(fields):      # still a SKU that links may name
                    first_sku_line.setdefault(fields[header.index("sku")].strip().casefold(), first)
                problems.append(RowProblem(first, f"{len(fields)} fields, expected {len(header)} ({expected}, "
                                                  "with a field that contains a comma in double quotes)"))
                continue
            if len(rows) + len(problems) >= MAX_PRODUCTS:
                problems.append(RowProblem(first, f"more than {MAX_PRODUCTS} products", False))
                break
            values = dict(zip(header, fields))
            row_links[first] = _split(values["goes_with"])
            reasons: list[str] = []
            parsed = _parse_row(lambda c: values.get(c, ""), reasons)
            sku = values["sku"].strip()
            if sku:
                if sku.casefold() in first_sku_line:
                    reasons.append(f"SKU {_q(sku)} is already on line {first_sku_line[sku.casefold()]}")
                    parsed = None
                else:
                    first_sku_line[sku.casefold()] = first
            if parsed is not None and images_dir is not None and parsed["image"]:
                if not (Path(images_dir) / parsed["image"]).is_file():
                    reasons.append(f"image {_q(parsed['image'])} is not in {images_dir}")
                    parsed = None
            problems.extend(RowProblem(first, r) for r in reasons)
            if parsed is not None:
                rows.append((first, parsed))
    except _CsvBroken as e:
        problems.append(RowProblem(e.line, e.reason, False))
    if header is None and not problems:
        problems.append(RowProblem(1, f"no header, expected {expected}", False))
    if header is not None and not rows and not problems:
        problems.append(RowProblem(header_line + 1, "no products after the header", False))
    # links: every SKU named must be in this file (a link to a row that is bad there is left to that row)
    canonical = {r["sku"].casefold(): r["sku"] for _, r in rows}
    known = set(first_sku_line)
    stopped = any(not p.row for p in problems)      # a broken file: rows after the break were not read
    for line, links in ({} if stopped else row_links).items():
        unknown = [t for t in links if SKU_RE.fullmatch(t) and t.casefold() not in known]
        if unknown:
            problems.append(RowProblem(line, f"goes_with names {', '.join(_q(t) for t in unknown)}, which "
                                             "is not a SKU in this file"))
    if problems:
        raise CatalogueImportError(source, problems)
    return [Product(**{**r, "goes_with": tuple(canonical.get(t.casefold(), t) for t in r["goes_with"])})
            for _, r in rows]


def products_to_csv(products: Iterable[Product]) -> str:
    """The CSV text of these products, in the format parse_csv reads (stock as the full colour x size grid)."""
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for p in products:
        w.writerow([p.sku, p.name, p.category, p.part, p.price, p.image,
                    "|".join(f"{c.name}:{c.hex}" for c in p.colours), "|".join(p.sizes),
                    "|".join(f"{c}/{s}={n}" for c, s, n in p.stock), "|".join(p.goes_with)])
    return out.getvalue()


# --- the store ----------------------------------------------------------------------
def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Store:
    """One part of the kiosk's database on one connection (use one per thread): opened,
    its tables brought to `STEPS` (as `PART` in `meta`), closed by `close()` or `with`."""
    PART = ""
    STEPS: tuple[tuple[int, str], ...] = ()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.db = open_database(self.path)
        try:
            migrate(self.db, self.PART, self.STEPS, str(self.path))
        except DatabaseError:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Catalogue(Store):
    """The catalogue, stock and stock holds."""
    PART, STEPS = "catalogue", SCHEMA_STEPS

    # --- import / export ---------------------------------------------------------
    def import_csv(self, data: bytes | str, source: str = "catalog.csv",
                   images_dir: str | os.PathLike | None = None) -> int:
        """Replace the catalogue with the CSV's products, all or nothing. Returns how many.

        Raises CatalogueImportError (every bad row by line number) and keeps the old catalogue.
        Stock holds are kept: they count against the new stock figures."""
        products = parse_csv(data, source, images_dir)
        self.replace(products)
        return len(products)

    def replace(self, products: Sequence[Product]) -> None:
        with transaction(self.db) as db:
            for table in ("goes_with", "stock", "product_sizes", "product_colours", "products"):
                db.execute(f"DELETE FROM {table}")
            for pos, p in enumerate(products):
                db.execute("INSERT INTO products (sku, position, name, category, part, price, image) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (p.sku, pos, p.name, p.category, p.part, p.price, p.image))
                db.executemany("INSERT INTO product_colours (sku, position, name, hex) VALUES (?, ?, ?, ?)",
                               [(p.sku, i, c.name, c.hex) for i, c in enumerate(p.colours)])
                db.executemany("INSERT INTO product_sizes (sku, position, size) VALUES (?, ?, ?)",
                               [(p.sku, i, s) for i, s in enumerate(p.sizes)])
                db.executemany("INSERT INTO stock (sku, colour, size, on_hand) VALUES (?, ?, ?, ?)",
                               [(p.sku, c, s, n) for c, s, n in p.stock])
            for p in products:
                db.executemany("INSERT INTO goes_with (sku, position, other) VALUES (?, ?, ?)",
                               [(p.sku, i, o) for i, o in enumerate(p.goes_with)])

    def export_csv(self) -> str:
        return products_to_csv(self.list_products())

    # --- reading -----------------------------------------------------------------
    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM products").fetchone()[0]

    def _hydrate(self, rows: list[sqlite3.Row]) -> list[Product]:
        if not rows:
            return []
        skus = [r["sku"] for r in rows]
        colours: dict[str, list[Colour]] = {}
        sizes: dict[str, list[str]] = {}
        stock: dict[str, dict[tuple[str, str], int]] = {}
        links: dict[str, list[str]] = {}
        for i in range(0, len(skus), 500):
            chunk = skus[i:i + 500]
            qs = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT sku, name, hex FROM product_colours WHERE sku IN ({qs}) "
                                     "ORDER BY sku, position", chunk):
                colours.setdefault(r[0].casefold(), []).append(Colour(r[1], r[2]))
            for r in self.db.execute(f"SELECT sku, size FROM product_sizes WHERE sku IN ({qs}) "
                                     "ORDER BY sku, position", chunk):
                sizes.setdefault(r[0].casefold(), []).append(r[1])
            for r in self.db.execute(f"SELECT sku, colour, size, on_hand FROM stock WHERE sku IN ({qs})", chunk):
                stock.setdefault(r[0].casefold(), {})[(r[1].casefold(), r[2].casefold())] = r[3]
            for r in self.db.execute(f"SELECT sku, other FROM goes_with WHERE sku IN ({qs}) "
                                     "ORDER BY sku, position", chunk):
                links.setdefault(r[0].casefold(), []).append(r[1])
        out = []
        for r in rows:
            k = r["sku"].casefold()
            cs, ss, st = colours.get(k, []), sizes.get(k, []), stock.get(k, {})
            grid = tuple((c.name, s, st.get((c.name.casefold(), s.casefold()), 0)) for c in cs for s in ss)
            out.append(Product(r["sku"], r["name"], r["category"], r["part"], r["price"], r["image"], tuple(cs),
                               tuple(ss), grid, tuple(links.get(k, []))))
        return out

    def list_products(self, category: str | None = None) -> list[Product]:
        return self.search("", category=category, limit=None)

    def search(self, text: str = "", category: str | None = None, limit: int | None = 100) -> list[Product]:
        """Products whose SKU, name or a colour name contains `text` (any case), in catalogue order."""
        where, args = [], []
        if category is not None:
            if category not in CATEGORIES:
                raise CatalogueError(f"category {_q(category)} is not one of {', '.join(CATEGORIES)}")
            where.append("category=?")
            args.append(category)
        text = (text or "").strip()
        if text:
            pat = _like(text)
            where.append("(sku LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM "
                         "product_colours c WHERE c.sku=products.sku AND c.name LIKE ? ESCAPE '\\'))")
            args += [pat, pat, pat]
        sql = "SELECT * FROM products" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        return self._hydrate(self.db.execute(sql, args).fetchall())

    def find(self, sku: str) -> Product | None:
        rows = self.db.execute("SELECT * FROM products WHERE sku=?", (sku,)).fetchall()
        found = self._hydrate(rows)
        return found[0] if found else None

    def get(self, sku: str) -> Product:
        p = self.find(sku)
        if p is None:
            raise UnknownProduct(f"no product with SKU {_q(sku)} in the catalogue")
        return p

    def goes_with(self, sku: str) -> list[Product]:
        """The products linked from `sku`, in the order the catalogue lists them."""
        p = self.get(sku)
        found = {q.sku.casefold(): q for q in self._hydrate(self.db.execute(
            f"SELECT * FROM products WHERE sku IN ({','.join('?' * len(p.goes_with))})",
            p.goes_with).fetchall())} if p.goes_with else {}
        return [found[o.casefold()] for o in p.goes_with if o.casefold() in found]

    # --- stock -------------------------------------------------------------------
    def _variant(self, sku: str, colour: str, size: str) -> tuple[Product, str, str, int]:
        p = self.get(sku)
        col = next((c.name for c in p.colours if c.name.casefold() == str(colour).casefold()), None)
        if col is None:
            raise CatalogueError(f"{p.sku} has no colour {_q(str(colour))} (colours: "
                                 f"{'|'.join(c.name for c in p.colours)})")
        sz = next((s for s in p.sizes if s.casefold() == str(size).casefold()), None)
        if sz is None:
            raise CatalogueError(f"{p.sku} has no size {_q(str(size))} (sizes: {'|'.join(p.sizes)})")
        return p, col, sz, p.on_hand(col, sz)

    def _held(self, sku: str, colour: str, size: str, now: float) -> int:
        return self.db.execute("SELECT COALESCE(SUM(qty), 0) FROM stock_holds WHERE state='held' AND "
                               "expires_at>? AND sku=? AND colour=? AND size=?",
                               (now, sku, colour, size)).fetchone()[0]

    def stock(self, sku: str, colour: str, size: str, now: float | None = None) -> int:
        """How many of this colour and size are available: on hand minus active holds, at least 0."""
        now = time.time() if now is None else now
        p, col, sz, on_hand = self._variant(sku, colour, size)
        return max(0, on_hand - self._held(p.sku, col, sz, now))

    def stock_levels(self, sku: str, now: float | None = None) -> list[dict]:
        """[{colour, size, on_hand, held, available}] for every colour x size of the product."""
        now = time.time() if now is None else now
        p = self.get(sku)
        held: dict[tuple[str, str], int] = {}
        for r in self.db.execute("SELECT colour, size, SUM(qty) FROM stock_holds WHERE state='held' AND "
                                 "expires_at>? AND sku=? GROUP BY colour, size", (now, p.sku)):
            held[(r[0].casefold(), r[1].casefold())] = r[2]
        out = []
        for col, sz, n in p.stock:
            h = held.get((col.casefold(), sz.casefold()), 0)
            out.append({"colour": col, "size": sz, "on_hand": n, "held": h, "available": max(0, n - h)})
        return out

    # --- holds ---------------------------------------------------------------------
    def reserve(self, sku: str, colour: str, size: str, *, hold_s: float, qty: int = 1, ref: str = "",
                now: float | None = None, source: str = "", member_id: str = "", for_name: str = "") -> Hold:
        """Hold `qty` of this colour and size for `hold_s` seconds; OutOfStock if fewer are available."""
        if source not in HOLD_SOURCES:
            raise HoldError(f"hold source {_q(source)} is not one of {', '.join(HOLD_SOURCES[1:])}")
        now = time.time() if now is None else now
        if not isinstance(hold_s, (int, float)) or not math.isfinite(hold_s) or hold_s <= 0:
            raise HoldError(f"hold time must be a positive number of seconds, got {hold_s!r}")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= MAX_HOLD_QTY:
            raise HoldError(f"quantity must be a whole number from 1 to {MAX_HOLD_QTY}, got {qty!r}")
        with transaction(self.db) as db:
            p, col, sz, on_hand = self._variant(sku, colour, size)
            held = self._held(p.sku, col, sz, now)
            available = max(0, on_hand - held)
            if available < qty:
                raise OutOfStock(f"{p.sku} {col}/{sz}: {available} available ({on_hand} on hand, {held} held), "
                                 f"cannot hold {qty}")
            cur = db.execute("INSERT INTO stock_holds (sku, colour, size, qty, ref, created_at, expires_at, source, "
                             "member_id, for_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (p.sku, col, sz, qty, str(ref)[:200], now, now + hold_s, source, str(member_id)[:64],
                              str(for_name)[:40]))
            return self._hold(cur.lastrowid)

    def _hold(self, hold_id: int) -> Hold:
        r = self.db.execute("SELECT * FROM stock_holds WHERE id=?", (hold_id,)).fetchone()
        if r is None:
            raise HoldError(f"no stock hold {hold_id}")
        return Hold.from_row(r)

    def get_hold(self, hold_id: int) -> Hold:
        return self._hold(hold_id)

    def release(self, hold_id: int, now: float | None = None) -> Hold:
        """Give a held item back to the shelf (also one whose time is up but not yet marked)."""
        now = time.time() if now is None else now
        with transaction(self.db) as db:
            h = self._hold(hold_id)
            if h.state != "held":
                raise HoldError(f"stock hold {hold_id} is already {h.state}")
            db.execute("UPDATE stock_holds SET state='released', closed_at=? WHERE id=?", (now, hold_id))
            return self._hold(hold_id)

    def collect(self, hold_id: int, now: float | None = None) -> Hold:
        """The shopper took the held item: the stock on hand goes down by its quantity (never below 0)."""
        now = time.time() if now is None else now
        with transaction(self.db) as db:
            h = self._hold(hold_id)
            if h.state != "held":
                raise HoldError(f"stock hold {hold_id} is already {h.state}")
            if h.expires_at <= now:
                raise HoldError(f"stock hold {hold_id} expired at "
                                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(h.expires_at))}; "
                                "its item went back to the shelf")
            db.execute("UPDATE stock SET on_hand=MAX(0, on_hand-?) WHERE sku=? AND colour=? AND size=?",
                       (h.qty, h.sku, h.colour, h.size))
            db.execute("UPDATE stock_holds SET state='collected', closed_at=? WHERE id=?", (now, hold_id))
            return self._hold(hold_id)

    def expire(self, now: float | None = None) -> list[Hold]:
        """Mark every hold whose time is up as expired (its stock is available again); returns them."""
        now = time.time() if now is None else now
        with transaction(self.db) as db:
            ids = [r[0] for r in db.execute("SELECT id FROM stock_holds WHERE state='held' AND expires_at<=?",
                                            (now,))]
            if ids:
                db.executemany("UPDATE stock_holds SET state='expired', closed_at=? WHERE id=?",
                               [(now, i) for i in ids])
            return [self._hold(i) for i in ids]

    def holds(self, state: str | None = "held", sku: str | None = None, limit: int = 500,
              member_id: str | None = None) -> list[Hold]:
        """Stock holds, newest first; state None for all."""
        if state is not None and state not in HOLD_STATES:
            raise HoldError(f"hold state {_q(state)} is not one of {', '.join(HOLD_STATES)}")
        where, args = [], []
        if state is not None:
            where.append("state=?")
            args.append(state)
        if sku is not None:
            where.append("sku=?")
            args.append(sku)
        if member_id is not None:
            where.append("member_id=?")
            args.append(member_id)
        sql = ("SELECT * FROM stock_holds" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT ?")
        return [Hold.from_row(r) for r in self.db.execute(sql, args + [int(limit)])]
