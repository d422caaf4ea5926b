"""Where the kiosk's catalogue comes from.

`catalog.path` empty (the default): the catalogue in the mirror's SQLite
database, the one `mirror catalog import` fills and the staff console sells
from. On first start, when it has no products, it is seeded from the bundled
`config/catalog.csv`. A `.csv` path is read as it is (nothing is written), and
a `.toml` path is the older TOML catalogue.

The kiosk reads the catalogue once, at start: `mirror catalog import` while it
runs changes stock at once (the console reads the database), products and
colours at the next restart.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from mirror.core.catalog import Catalog, CatalogError, Colour, Product, load_catalog
from mirror.core.config import CONFIG_DIR, Config

log = logging.getLogger(__name__)

SEED_CSV = CONFIG_DIR / "catalog.csv"


def _core(products) -> Catalog:
    """The session's view of the storage products, in catalogue order."""
    out = [Product(p.sku, p.name, p.price, tuple(Colour(c.name, c.hex) for c in p.colours),
                   tuple(p.sizes), p.part, p.category) for p in products]
    if not out:
        raise CatalogError("the catalogue has no products; run 'mirror catalog import FILE.csv'")
    return Catalog(tuple(out))


def _read_csv(path: Path) -> Catalog:
    from mirror.storage.catalogue import CatalogueError, parse_csv
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"{path}: cannot read the catalogue ({e.strerror or e}); set catalog.path to a "
                           "readable file") from None
    try:
        return _core(parse_csv(data, str(path)))
    except CatalogueError as e:
        raise CatalogError(str(e).splitlines()[0]) from None


def kiosk_catalog(cfg: Config, *, seed: bool = True, strict: bool = False) -> Catalog:
    """The catalogue the kiosk shows (CatalogError with one line for a bad catalogue file; a
    database that cannot be read logs an error and falls back to the bundled CSV, or with
    `strict` (check-config) is a CatalogError too).

    `seed=False` never writes: an empty database reads the bundled CSV instead."""
    if cfg.catalog.path:
        path = cfg.catalog_path()
        return _read_csv(path) if path.suffix.lower() == ".csv" else load_catalog(path)
    from mirror.storage.catalogue import Catalogue, CatalogueError, DatabaseError
    db_path = cfg.orders_path()
    try:
        if not seed and (not db_path.exists() or db_path.stat().st_size == 0):
            return _read_csv(SEED_CSV)          # nothing to read, and `seed=False` writes nothing (no schema)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with Catalogue(db_path) as cat:
            if cat.count() == 0:
                if not seed:
                    return _read_csv(SEED_CSV)
                n = cat.import_csv(SEED_CSV.read_bytes(), str(SEED_CSV))
                log.info("catalogue: the database had no products; seeded %d from %s", n, SEED_CSV)
            return _core(cat.list_products())
    except (DatabaseError, CatalogueError, OSError, sqlite3.Error) as e:   # sqlite3's own: pages found corrupt
        first = str(e).splitlines()[0]
        if strict and not _corrupt(e):
            raise CatalogError(f"{db_path}: cannot read the catalogue ({first}); check checkout.db_path") from None
        if strict:
            # `mirror run` moves a corrupt file aside and starts afresh (OrderJournal.open_checked): no
            # reason to keep the kiosk from starting (the unit runs check-config before it)
            log.warning("%s is corrupt (%s); mirror run will move it aside and start a fresh database",
                        db_path, first)
            return _read_csv(SEED_CSV)
        # the mirror still shows her the bundled garments; the checkout deals with a broken database itself
        log.error("%s: cannot read the catalogue (%s); showing the bundled %s until it is fixed "
                  "(mirror catalog import FILE.csv)", db_path, first, SEED_CSV.name)
        return _read_csv(SEED_CSV)


def _corrupt(e: BaseException) -> bool:
    """A damaged file (SQLite's own error, or the one our wrapper was raised from)."""
    from mirror.storage.orders import is_corruption
    return any(isinstance(x, sqlite3.Error) and is_corruption(x) for x in (e, e.__cause__, e.__context__))
