"""The product catalogue: garments, the colours each comes in, and sizes."""

from __future__ import annotations

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


def load_catalog(path: str | Path) -> Catalog:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{p}: catalogue file not found; set catalog.path to an existing file")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CatalogError(f"{p}: cannot read the catalogue ({e})")
    products = []
    for i, raw in enumerate(data.get("products", [])):
        where = f"{p}: products[{i}]"
        try:
            colours = tuple(Colour(str(c["name"]), str(c["hex"])) for c in raw["colours"])
            for c in colours:
                hex_to_bgr(c.hex)
            products.append(Product(str(raw["sku"]), str(raw["name"]), str(raw.get("price", "")),
                                    colours, tuple(str(s) for s in raw.get("sizes", []))))
        except KeyError as e:
            raise CatalogError(f"{where}: missing key {e.args[0]!r} (needs sku, name, colours)")
        except (TypeError, ColorError) as e:
            raise CatalogError(f"{where}: {e}")
        if not colours:
            raise CatalogError(f"{where}: a product needs at least one colour")
    if not products:
        raise CatalogError(f"{p}: no [[products]] in the catalogue")
    return Catalog(tuple(products))
