"""The product catalogue: garments, the colours each comes in, and sizes."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mirror.core.colors import ColorError, hex_to_bgr


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Colour:
    name: str
    hex: str

    @property
    def bgr(self) -> tuple[int, int, int]:
        return hex_to_bgr(self.hex)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: str
    colours: tuple[Colour, ...]
    sizes: tuple[str, ...]
    part: str = "full"            # what the mirror recolours: upper, lower, dress, full (all her clothing) or none
    category: str = "top"


PARTS = ("upper", "lower", "dress", "full", "none")


@dataclass(frozen=True)
class Catalog:
    products: tuple[Product, ...]

    def get(self, sku: str) -> Product:
        for p in self.products:
            if p.sku == sku:
                return p
        raise CatalogError(f"no product with SKU {sku!r}; known: {', '.join(p.sku for p in self.products)}")

    def colour_table(self) -> dict[str, str]:
        return {c.name: c.hex for p in self.products for c in p.colours}


def _kind(value) -> str:
    """How a TOML value is named in an error message."""
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), f"a {type(value).__name__}")


def _line_of(text: str, key: str) -> str:
    """' (line N)' where a top-level `key = ...` or `[key]` is written, or '' if it is not found."""
    k = re.escape(key)
    m = re.search(rf"^[ \t]*(\"?{k}\"?[ \t]*=|\[[ \t]*{k}[ \t]*\])", text, re.MULTILINE)
    return f" (line {text.count(chr(10), 0, m.start()) + 1})" if m else ""


def _table_line(text: str, name: str, index: int) -> str:
    """' (line N)' of the index-th `[[name]]` header, or '' if there are not that many."""
    heads = list(re.finditer(rf"^[ \t]*\[\[[ \t]*{re.escape(name)}[ \t]*\]\]", text, re.MULTILINE))
    return f" (line {text.count(chr(10), 0, heads[index].start()) + 1})" if index < len(heads) else ""


def load_catalog(path: str | Path) -> Catalog:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise CatalogError(f"{p}: catalogue file not found; set catalog.path to an existing file")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CatalogError(f"{p}: cannot read the catalogue ({e})")
    raw_products = data.get("products", [])
    if not isinstance(raw_products, list):
        raise CatalogError(f"{p}{_line_of(text, 'products')}: 'products' is {_kind(raw_products)}, expected a "
                           "list of [[products]] tables")
    products = []
    for i, raw in enumerate(raw_products):
        where = f"{p}{_table_line(text, 'products', i)}: products[{i}]"
        if not isinstance(raw, dict):
            raise CatalogError(f"{where}: is {_kind(raw)}, expected a table (write each product as [[products]] "
                               "with sku, name, colours)")
        try:
            raw_colours = raw["colours"]
            if not isinstance(raw_colours, list):
                raise CatalogError(f"{where}.colours: is {_kind(raw_colours)}, expected a list like "
                                   "[{ name = \"Black\", hex = \"#1b1b1b\" }]")
            for j, c in enumerate(raw_colours):
                if not isinstance(c, dict):
                    raise CatalogError(f"{where}.colours[{j}]: is {_kind(c)}, expected a table "
                                       "{ name = ..., hex = \"#RRGGBB\" }")
                for key in ("name", "hex"):
                    if key in c and not isinstance(c[key], str):
                        raise CatalogError(f"{where}.colours[{j}].{key}: is {_kind(c[key])}, expected a string")
            sizes = raw.get("sizes", [])
            if not isinstance(sizes, list):
                raise CatalogError(f"{where}.sizes: is {_kind(sizes)}, expected a list like [\"S\", \"M\"]")
            colours = tuple(Colour(str(c["name"]), str(c["hex"])) for c in raw_colours)
            for c in colours:
                hex_to_bgr(c.hex)
            part = raw.get("part", "full")
            if part not in PARTS:
                raise CatalogError(f"{where}.part: got {part!r}, expected one of {', '.join(PARTS)}")
            products.append(Product(str(raw["sku"]), str(raw["name"]), str(raw.get("price", "")),
                                    colours, tuple(str(s) for s in sizes), part))
        except KeyError as e:
            raise CatalogError(f"{where}: missing key {e.args[0]!r} (needs sku, name, colours)")
        except (TypeError, ColorError) as e:
            raise CatalogError(f"{where}: {e}")
        if not colours:
            raise CatalogError(f"{where}: a product needs at least one colour")
    if not products:
        raise CatalogError(f"{p}: no [[products]] in the catalogue")
    return Catalog(tuple(products))
