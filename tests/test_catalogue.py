"""The catalogue and stock in SQLite (issue 10): CSV import/export, search, stock holds, and the
`mirror catalog` commands end to end. Real SQLite, in the same file as the order journal."""

import os
import sqlite3
import subprocess
import sys

import cv2
import pytest

from mirror.core.catalog import load_catalog
from mirror.storage.catalogue import (CATEGORIES, COLUMNS, Catalogue, CatalogueError, CatalogueImportError,
                                      DatabaseError, HoldError, OutOfStock, UnknownProduct, parse_csv)
from mirror.storage.orders import OrderJournal
from tests.conftest import ROOT

EXAMPLE = ROOT / "config" / "catalog.csv"
IMAGES = ROOT / "config" / "catalog-images"
HEADER = ",".join(COLUMNS)
GOOD_LINES = [
    HEADER,                                                                                     # line 1
    "DRESS-0930,Wrap dress,dress,dress,79.00,dress-0930.png,Emerald:#1F9E6E|Navy:#1B2A57,XS|S|M|L,"
    "Emerald/S=2|Navy/M=1,SHOE-0301|MAKE-0101",                                                # line 2
    "SHOE-0301,Strappy high heels,shoes,none,95,,Nude:#D9B49A,38|39,Nude/38=1|Nude/39=0,DRESS-0930",  # line 3
    'MAKE-0101,"Satin lipstick, poppy",make-up,none,19.5,,Poppy red:#C8102E,One size,'
    "Poppy red/One size=12,",                                                                   # line 4
    "TOP-0412,Ribbed tank top,top,upper,29.90,,Black:#1B1B1B|Ivory:#F1EAD8,XS|S,Black/XS=3,",  # line 5
]


def csv_of(lines) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def with_line(n: int, text) -> bytes:
    lines = [ln.encode() for ln in GOOD_LINES]
    lines[n - 1] = text if isinstance(text, bytes) else text.encode()
    return b"\n".join(lines) + b"\n"


GOOD = csv_of(GOOD_LINES)


@pytest.fixture
def cat(tmp_path):
    c = Catalogue(tmp_path / "orders.db")
    assert c.import_csv(GOOD) == 4
    yield c
    c.close()


# --- the shipped example ---------------------------------------------------------------------
def test_example_catalogue_imports_round_trips_and_keeps_the_toml_seed(tmp_path):
    data = EXAMPLE.read_bytes()
    with Catalogue(tmp_path / "orders.db") as c:
        assert c.import_csv(data, images_dir=IMAGES) == len(parse_csv(data)) >= 12
        products = c.list_products()
        assert {p.category for p in products} == set(CATEGORIES)
        exported = c.export_csv()
        assert parse_csv(exported) == parse_csv(data) == products       # same products, in the same order
        c.import_csv(exported)
        assert c.export_csv() == exported                              # byte for byte
        for p in products:
            assert all(c.find(o) is not None for o in p.goes_with)
            img = cv2.imread(str(IMAGES / p.image))
            assert img is not None and img.shape == (240, 240, 3), p.image
        # the seed: today's catalog.toml products keep their SKUs, names, prices, sizes and colours
        for old in load_catalog(ROOT / "config" / "catalog.toml").products:
            new = c.get(old.sku)
            assert (new.name, new.price, new.sizes) == (old.name, old.price, old.sizes)
            assert [(x.name, x.hex) for x in new.colours] == [(x.name, x.hex.upper()) for x in old.colours]
    assert (IMAGES / "PROVENANCE.md").is_file()


def test_lives_in_the_order_journal_file_with_a_schema_version(tmp_path):
    path = tmp_path / "orders.db"
    j = OrderJournal(path)
    with Catalogue(path) as c:
        c.import_csv(GOOD)
        assert c.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.db.execute("PRAGMA synchronous").fetchone()[0] == 2           # FULL
    with Catalogue(path) as c:                                                # opening again changes nothing
        assert c.count() == 4
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "outbox", "reservations", "products", "stock", "stock_holds", "goes_with"} <= tables
    assert j.list_orders() == []                                              # the journal still works
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema.catalogue'").fetchone()[0] == "2"
    db.execute("UPDATE meta SET value='99' WHERE key='schema.catalogue'")
    db.commit()
    with pytest.raises(DatabaseError, match="newer mirror"):
        Catalogue(path)
    j.close()


def test_a_version_1_database_keeps_its_holds_and_gains_who_they_are_for(tmp_path):
    from mirror.storage.catalogue import SCHEMA_STEPS, migrate, open_database
    path = tmp_path / "orders.db"
    db = open_database(path)
    migrate(db, "catalogue", SCHEMA_STEPS[:1])                                 # as the last release left it
    db.execute("INSERT INTO stock_holds (sku, colour, size, qty, created_at, expires_at) "
               "VALUES ('DRESS-0930', 'Emerald', 'S', 1, 1000.0, 9e9)")
    db.close()
    with Catalogue(path) as c:
        c.import_csv(GOOD)
        [old] = c.holds()
        assert (old.size, old.source, old.member_id, old.for_name) == ("S", "", "", "")
        new = c.reserve("DRESS-0930", "Emerald", "S", hold_s=60, source="webstore", member_id="M7",
                        for_name="Jenny")
        assert [h.id for h in c.holds(member_id="M7")] == [new.id] and new.for_name == "Jenny"
        with pytest.raises(CatalogueError, match="hold source"):
            c.reserve("TOP-0412", "Black", "XS", hold_s=60, source="mars")


# --- broken files ------------------------------------------------------------------------------------
BROKEN = [
    ("wrong column count", with_line(4, "MAKE-0101,Satin lipstick,make-up,none,19.5"),
     4, "5 fields, expected 10"),
    ("bad hex", with_line(3, "SHOE-0301,Heels,shoes,none,95,,Nude:#D9B4,38,,"), 3,
     "colour 'Nude:#D9B4' is not #RRGGBB"),
    ("unknown category", with_line(5, "TOP-0412,Tank,hat,upper,29.90,,Black:#1B1B1B,S,,"), 5,
     "category 'hat' is not one of top, bottom, dress, shoes, make-up, accessory"),
    ("stock for a size that does not exist", with_line(2, GOOD_LINES[1].replace("Navy/M=1", "Navy/XXL=2")), 2,
     "stock 'Navy/XXL=2': size 'XXL' is not in sizes XS|S|M|L"),
    ("stock for a colour that does not exist", with_line(5, GOOD_LINES[4].replace("Black/XS=3", "Teal/XS=3")), 5,
     "stock 'Teal/XS=3': colour 'Teal' is not in colours Black|Ivory"),
    ("duplicate SKU", with_line(5, GOOD_LINES[4].replace("TOP-0412", "dress-0930")), 5,
     "SKU 'dress-0930' is already on line 2"),
    ("goes_with to an unknown SKU", with_line(3, GOOD_LINES[2].replace(",DRESS-0930", ",DRESS-0930|BAG-9")), 3,
     "goes_with names 'BAG-9', which is not a SKU in this file"),
    ("non-UTF-8 bytes", with_line(4, b"MAKE-0101,Satin \xe9,make-up,none,19.5,,Red:#C8102E,One size,,"), 4,
     "not UTF-8 (byte 0xE9"),
    ("bad price", with_line(4, GOOD_LINES[3].replace(",19.5,", ",EUR 19,")), 4, "price 'EUR 19' is not a decimal"),
    ("part that does not fit", with_line(3, GOOD_LINES[2].replace(",none,", ",upper,")), 3,
     "part 'upper' does not fit category 'shoes'"),
    ("broken quoting", with_line(4, 'MAKE-0101,"Satin" lipstick,make-up,none,19.5,,Red:#C8102E,One size,,'), 4,
     "broken CSV quoting"),
    ("no colours", with_line(5, "TOP-0412,Tank,top,upper,29.90,,,S,,"), 5, "no colours"),
    ("empty file", b"", 1, "the file is empty"),
    ("only blank lines", b"\n\n  \n", 1, "the file is empty"),
    ("header only", csv_of([HEADER]), 2, "no products after the header"),
    ("header without a column", csv_of([HEADER.replace(",part", "")] + GOOD_LINES[1:]), 1,
     "the header misses part"),
]


@pytest.mark.parametrize("what,data,line,reason", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_is_reported_by_line_and_nothing_is_kept(cat, what, data, line, reason):
    before = cat.export_csv()
    with pytest.raises(CatalogueImportError) as err:
        cat.import_csv(data, source="catalog.csv")
    e = err.value
    assert e.bad_lines == [line], str(e)
    summary = str(e)
    assert summary.startswith("catalog.csv: ") and summary.endswith("; nothing imported")
    assert f"line {line}: {reason}" in summary
    assert "\n" not in summary
    assert cat.export_csv() == before                     # the old catalogue, whole


def test_every_bad_row_is_reported_at_once_and_nothing_is_kept(tmp_path):
    lines = list(GOOD_LINES)
    lines[2] = lines[2].replace("#D9B49A", "#12")                                   # line 3
    lines[3] = "MAKE-0101,Satin lipstick,make-up"                                    # line 4
    lines[4] = lines[4].replace(",top,", ",hat,").replace("Black/XS=3", "Black/XL=1")  # line 5, twice
    lines.append("")                                                                 # a blank line 6 is skipped
    lines.append(GOOD_LINES[1].replace("DRESS-0930", "DRESS-0931").replace("MAKE-0101", "NOPE-1"))  # line 7
    with Catalogue(tmp_path / "o.db") as c:
        with pytest.raises(CatalogueImportError) as err:
            c.import_csv(csv_of(lines), source="shop.csv")
        e = err.value
        assert e.bad_lines == [3, 4, 5, 7]
        s = str(e)
        assert s.startswith("shop.csv: 4 bad rows (line 3: colour 'Nude:#12' is not #RRGGBB; line 4: 3 fields")
        assert "line 5: category 'hat'" in s and "line 5: stock 'Black/XL=1'" in s and "line 7: goes_with" in s
        assert c.count() == 0 and c.db.execute("SELECT COUNT(*) FROM stock").fetchone()[0] == 0


def test_images_are_checked_when_asked(tmp_path):
    with Catalogue(tmp_path / "o.db") as c:
        with pytest.raises(CatalogueImportError, match=r"line 2: image 'dress-0930.png' is not in"):
            c.import_csv(GOOD, images_dir=tmp_path)
        (tmp_path / "dress-0930.png").write_bytes(b"png")
        assert c.import_csv(GOOD, images_dir=tmp_path) == 4


# --- reading ---------------------------------------------------------------------------------------------
def test_list_search_get_and_goes_with(cat):
    assert [p.sku for p in cat.list_products()] == ["DRESS-0930", "SHOE-0301", "MAKE-0101", "TOP-0412"]
    assert [p.sku for p in cat.search("lipstick")] == ["MAKE-0101"]
    assert [p.sku for p in cat.search("navy")] == ["DRESS-0930"]                  # by colour name
    assert [p.sku for p in cat.search("", category="shoes")] == ["SHOE-0301"]
    assert [p.sku for p in cat.search("e", category="top")] == ["TOP-0412"]
    assert cat.search("%") == [] and cat.search("_") == []                       # no SQL wildcards
    with pytest.raises(CatalogueError, match="category 'hats'"):
        cat.search("", category="hats")
    d = cat.get("dress-0930")                                                     # any case
    assert d.sku == "DRESS-0930" and d.part == "dress" and d.price == "79.00"
    assert [c.name for c in d.colours] == ["Emerald", "Navy"] and d.sizes == ("XS", "S", "M", "L")
    assert d.on_hand("Emerald", "S") == 2 and d.on_hand("Navy", "XS") == 0
    assert d.as_dict()["stock"]["Navy"] == {"XS": 0, "S": 0, "M": 1, "L": 0}
    assert cat.get("MAKE-0101").name == "Satin lipstick, poppy" and cat.get("MAKE-0101").price == "19.50"
    assert [p.sku for p in cat.goes_with("DRESS-0930")] == ["SHOE-0301", "MAKE-0101"]
    assert cat.goes_with("TOP-0412") == []
    with pytest.raises(UnknownProduct, match="no product with SKU 'NOPE'"):
        cat.get("NOPE")
    assert cat.find("NOPE") is None


# --- stock holds ---------------------------------------------------------------------------------------------
def test_holds_reserve_release_collect_never_below_zero(cat):
    t0 = 1_000_000.0
    assert cat.stock("DRESS-0930", "Emerald", "S", now=t0) == 2
    h1 = cat.reserve("DRESS-0930", "emerald", "s", hold_s=3600, ref="reservation:1", now=t0)
    assert (h1.colour, h1.size, h1.state, h1.expires_at) == ("Emerald", "S", "held", t0 + 3600)
    h2 = cat.reserve("DRESS-0930", "Emerald", "S", hold_s=3600, now=t0)
    assert cat.stock("DRESS-0930", "Emerald", "S", now=t0) == 0
    with pytest.raises(OutOfStock, match="0 available \\(2 on hand, 2 held\\)"):
        cat.reserve("DRESS-0930", "Emerald", "S", hold_s=3600, now=t0)
    lv = {(x["colour"], x["size"]): x for x in cat.stock_levels("DRESS-0930", now=t0)}
    assert lv[("Emerald", "S")] == {"colour": "Emerald", "size": "S", "on_hand": 2, "held": 2, "available": 0}
    assert cat.release(h1.id, now=t0 + 1).state == "released"
    assert cat.stock("DRESS-0930", "Emerald", "S", now=t0 + 1) == 1
    with pytest.raises(HoldError, match="already released"):
        cat.release(h1.id)
    assert cat.collect(h2.id, now=t0 + 2).state == "collected"              # she took it: one fewer on hand
    assert cat.get("DRESS-0930").on_hand("Emerald", "S") == 1
    assert cat.stock("DRESS-0930", "Emerald", "S", now=t0 + 2) == 1
    with pytest.raises(HoldError, match="already collected"):
        cat.collect(h2.id)
    with pytest.raises(CatalogueError, match="no colour 'Teal'"):
        cat.reserve("DRESS-0930", "Teal", "S", hold_s=60)
    with pytest.raises(CatalogueError, match="no size 'XXL'"):
        cat.stock("DRESS-0930", "Navy", "XXL")
    with pytest.raises(UnknownProduct):
        cat.reserve("NOPE", "Navy", "S", hold_s=60)
    with pytest.raises(HoldError):
        cat.reserve("DRESS-0930", "Navy", "M", hold_s=60, qty=0)
    with pytest.raises(HoldError):
        cat.reserve("DRESS-0930", "Navy", "M", hold_s=0)
    with pytest.raises(HoldError, match="no stock hold 999"):
        cat.release(999)
    # a new stock count below what is held: holds survive the import, availability stays at 0
    h3 = cat.reserve("DRESS-0930", "Navy", "M", hold_s=3600, now=t0)
    cat.import_csv(GOOD.replace(b"Navy/M=1", b"Navy/M=0"))
    assert cat.stock("DRESS-0930", "Navy", "M", now=t0) == 0
    assert [h.id for h in cat.holds()] == [h3.id]
    cat.collect(h3.id, now=t0 + 5)
    assert cat.get("DRESS-0930").on_hand("Navy", "M") == 0


def test_expired_holds_release_by_themselves(cat):
    t0 = 2_000_000.0
    h = cat.reserve("SHOE-0301", "Nude", "38", hold_s=60, now=t0)
    assert cat.stock("SHOE-0301", "Nude", "38", now=t0 + 30) == 0
    assert cat.stock("SHOE-0301", "Nude", "38", now=t0 + 61) == 1                # counted out before expire()
    assert cat.expire(now=t0 + 30) == []
    gone = cat.expire(now=t0 + 61)
    assert [(x.id, x.state, x.closed_at) for x in gone] == [(h.id, "expired", t0 + 61)]
    assert cat.expire(now=t0 + 62) == []
    with pytest.raises(HoldError, match="already expired"):
        cat.collect(h.id)
    late = cat.reserve("SHOE-0301", "Nude", "38", hold_s=60, now=t0 + 100)
    with pytest.raises(HoldError, match="expired at"):                            # too late, even unmarked
        cat.collect(late.id, now=t0 + 200)
    assert cat.get("SHOE-0301").on_hand("Nude", "38") == 1
    assert {x.state for x in cat.holds(state=None)} == {"expired", "held"}


# --- the command line --------------------------------------------------------------------------------------
def mirror(tmp_path, *args, stdin=""):
    env = dict(os.environ, MIRROR_CHECKOUT_DB_PATH=str(tmp_path / "state" / "orders.db"))
    return subprocess.run([sys.executable, "-m", "mirror", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def one_error_line(r) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_cli_catalog_import_and_export(tmp_path):
    db = tmp_path / "state" / "orders.db"
    r = mirror(tmp_path, "catalog", "export")
    assert "no database at" in one_error_line(r) and not db.exists()            # a read creates nothing
    (tmp_path / "empty.csv").write_bytes(b"")
    one_error_line(mirror(tmp_path, "catalog", "import", str(tmp_path / "empty.csv")))
    assert not db.exists()                                                        # nor does a bad file
    r = mirror(tmp_path, "catalog", "import", str(EXAMPLE), "--images", str(IMAGES))
    assert r.returncode == 0, r.stderr
    n = len(parse_csv(EXAMPLE.read_bytes()))
    assert f"{n} products imported" in r.stdout
    r = mirror(tmp_path, "catalog", "export")
    assert r.returncode == 0 and parse_csv(r.stdout) == parse_csv(EXAMPLE.read_bytes())
    exported = r.stdout
    out = tmp_path / "out.csv"
    r = mirror(tmp_path, "catalog", "export", "--out", str(out))
    assert r.returncode == 0 and out.read_text(encoding="utf-8") == exported

    bad = tmp_path / "catalog.csv"
    lines = list(GOOD_LINES)
    lines[2] = lines[2].replace("#D9B49A", "#12")
    lines[4] = lines[4].replace(",top,", ",hat,")
    bad.write_bytes(csv_of(lines))
    err = one_error_line(mirror(tmp_path, "catalog", "import", str(bad)))
    assert err.startswith(f"mirror: error: {bad}: 2 bad rows (line 3: colour 'Nude:#12' is not #RRGGBB; line 5: ")
    assert err.endswith("; nothing imported")
    assert mirror(tmp_path, "catalog", "export").stdout == exported              # nothing imported
    bad.write_bytes(b"")
    assert "line 1: the file is empty" in one_error_line(mirror(tmp_path, "catalog", "import", str(bad)))
    assert "no such file" in one_error_line(mirror(tmp_path, "catalog", "import", str(tmp_path / "nope.csv")))
    assert "does not exist" in one_error_line(mirror(tmp_path, "catalog", "export", "--out",
                                                     str(tmp_path / "no" / "x.csv")))

    from mirror.storage.staff import StaffUsers
    with StaffUsers(db) as u:
        entries = u.list_audit(10)
    assert [e["action"] for e in entries] == ["catalog.import"]                   # only the change is audited
    assert entries[0]["who"].startswith("cli:") and entries[0]["detail"]["products"] == n


def test_pages_found_corrupt_while_reading_the_catalogue_do_not_stop_the_kiosk(tmp_path, monkeypatch):
    """A sound header with damaged pages: SQLite says so only when a query reaches them,
    and its own error (not our wrapper) used to end check-config and mirror run in a
    traceback, before the journal's check could move the file aside."""
    import sqlite3
    from mirror.app.catalog_source import kiosk_catalog
    from mirror.core import config
    from mirror.storage.catalogue import Catalogue
    cfg = config.load(None, env={"MIRROR_CHECKOUT_DB_PATH": str(tmp_path / "o.db")})
    kiosk_catalog(cfg)                                        # seeded: a real database

    def damaged(self):
        raise sqlite3.DatabaseError("database disk image is malformed")
    monkeypatch.setattr(Catalogue, "list_products", damaged)
    bundled = kiosk_catalog(cfg)                              # the kiosk shows the bundled garments
    assert bundled.products
    assert kiosk_catalog(cfg, seed=False, strict=True).products     # check-config: a warning, not a refusal
    monkeypatch.setattr(Catalogue, "list_products", lambda self: (_ for _ in ()).throw(
        sqlite3.OperationalError("unable to open database file")))
    with pytest.raises(Exception, match="cannot read the catalogue"):
        kiosk_catalog(cfg, seed=False, strict=True)           # what run cannot mend is still refused


def test_check_config_leaves_an_empty_database_file_as_it_found_it(tmp_path):
    """It used to write the catalogue's tables into it (0 -> 69,632 bytes)."""
    from mirror.app.catalog_source import kiosk_catalog
    from mirror.core import config
    empty = tmp_path / "orders.db"
    empty.touch()
    cfg = config.load(None, env={"MIRROR_CHECKOUT_DB_PATH": str(empty)})
    assert kiosk_catalog(cfg, seed=False, strict=True).products        # the bundled garments
    assert empty.stat().st_size == 0 and sorted(x.name for x in tmp_path.iterdir()) == ["orders.db"]
