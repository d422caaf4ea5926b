"""Draws the example catalogue's product pictures (config/catalog-images/*.png).

Flat 240x240 drawings made with OpenCV polygons and circles, one per product
of config/catalog.csv, in the product's first colour. Not product code: run it
by hand after changing the example catalogue, from the repository root:

    .venv/bin/python tests/draw_catalog_images.py [OUT_DIR]

The output depends only on this file, the CSV and OpenCV's drawing (4.11 here).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZE = 240
BG = (239, 243, 245)            # BGR of #F5F3EF
LINE = cv2.LINE_AA


def bgr(hex_: str) -> tuple[int, int, int]:
    h = hex_.lstrip("#")
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def outline_of(c: tuple[int, int, int]) -> tuple[int, int, int]:
    """A darker edge, or a mid grey for very dark colours."""
    if sum(c) < 150:
        return (110, 110, 110)
    return tuple(int(v * 0.55) for v in c)


def poly(img, pts, fill, edge) -> None:
    p = np.array(pts, np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [p], fill, LINE)
    cv2.polylines(img, [p], True, edge, 2, LINE)


def tank_top(img, c, e):
    poly(img, [(88, 40), (100, 40), (104, 78), (136, 78), (140, 40), (152, 40), (154, 86), (168, 110),
               (168, 206), (72, 206), (72, 110), (86, 86)], c, e)
    for x in range(84, 160, 10):
        cv2.line(img, (x, 120), (x, 200), e, 1, LINE)


def shirt(img, c, e):
    poly(img, [(96, 38), (144, 38), (186, 60), (214, 140), (190, 148), (168, 96), (168, 210), (72, 210),
               (72, 96), (50, 148), (26, 140), (54, 60)], c, e)
    poly(img, [(96, 38), (120, 66), (106, 78)], c, e)
    poly(img, [(144, 38), (120, 66), (134, 78)], c, e)
    cv2.line(img, (120, 66), (120, 210), e, 2, LINE)
    for y in range(90, 206, 24):
        cv2.circle(img, (128, y), 3, e, -1, LINE)


def wrap_dress(img, c, e):
    poly(img, [(98, 28), (142, 28), (160, 50), (158, 104), (200, 222), (40, 222), (82, 104), (80, 50)], c, e)
    cv2.line(img, (98, 28), (150, 104), e, 2, LINE)
    cv2.line(img, (142, 28), (120, 70), e, 2, LINE)
    cv2.rectangle(img, (82, 100), (158, 110), e, -1, LINE)
    cv2.line(img, (150, 110), (170, 150), e, 3, LINE)


def slip_dress(img, c, e):
    cv2.line(img, (96, 26), (94, 64), e, 2, LINE)
    cv2.line(img, (144, 26), (146, 64), e, 2, LINE)
    poly(img, [(92, 64), (120, 76), (148, 64), (152, 120), (176, 222), (64, 222), (88, 120)], c, e)


def jeans(img, c, e):
    poly(img, [(74, 30), (166, 30), (178, 222), (134, 222), (121, 96), (118, 96), (106, 222), (62, 222)], c, e)
    cv2.line(img, (74, 44), (167, 44), e, 2, LINE)
    cv2.line(img, (120, 44), (120, 96), e, 2, LINE)
    cv2.ellipse(img, (92, 44), (14, 16), 0, 0, 90, e, 2, LINE)
    cv2.ellipse(img, (148, 44), (14, 16), 0, 90, 180, e, 2, LINE)


def skirt(img, c, e):
    poly(img, [(84, 36), (156, 36), (196, 212), (44, 212)], c, e)
    cv2.rectangle(img, (84, 36), (156, 50), e, -1, LINE)
    for i in range(1, 8):
        top = 84 + i * 72 / 8
        bottom = 44 + i * 152 / 8
        cv2.line(img, (int(top), 52), (int(bottom), 210), e, 1, LINE)


def heels(img, c, e):
    poly(img, [(206, 140), (218, 140), (210, 214), (204, 214)], e, e)                  # the stiletto
    poly(img, [(22, 204), (28, 182), (50, 168), (90, 162), (116, 170), (150, 150), (184, 114), (206, 106),
               (216, 128), (212, 146), (166, 170), (120, 198), (70, 210)], c, e)
    cv2.ellipse(img, (184, 104), (26, 18), 0, 150, 390, e, 3, LINE)                    # ankle strap
    cv2.line(img, (24, 204), (70, 210), e, 4, LINE)                                    # the sole
    cv2.line(img, (70, 210), (120, 198), e, 4, LINE)


def sneakers(img, c, e):
    poly(img, [(26, 176), (30, 138), (70, 128), (118, 96), (160, 92), (200, 110), (214, 150), (214, 176)], c, e)
    cv2.rectangle(img, (26, 172), (214, 190), (90, 90, 90), -1, LINE)
    for i in range(4):
        x = 98 + i * 16
        cv2.line(img, (x, 118 - i * 4), (x + 14, 130 - i * 4), e, 2, LINE)
    cv2.line(img, (40, 158), (200, 158), e, 1, LINE)


def lipstick(img, c, e):
    grey = (60, 60, 66)
    poly(img, [(92, 130), (148, 130), (148, 222), (92, 222)], grey, (30, 30, 30))
    poly(img, [(98, 96), (142, 96), (142, 132), (98, 132)], (170, 175, 180), (90, 90, 90))
    poly(img, [(102, 96), (102, 52), (138, 28), (138, 96)], c, e)


def palette(img, c, e):
    cv2.rectangle(img, (28, 56), (212, 184), (50, 50, 52), -1, LINE)
    cv2.rectangle(img, (28, 56), (212, 184), (20, 20, 20), 2, LINE)
    for row in range(2):
        for col in range(3):
            k = 0.6 + 0.25 * ((row * 3 + col) % 3)
            shade = tuple(min(255, int(v * k + 20 * row)) for v in c)
            cv2.circle(img, (70 + col * 50, 94 + row * 52), 20, shade, -1, LINE)
            cv2.circle(img, (70 + col * 50, 94 + row * 52), 20, (20, 20, 20), 1, LINE)


def bag(img, c, e):
    cv2.ellipse(img, (120, 96), (70, 66), 0, 180, 360, e, 4, LINE)                     # strap
    cv2.rectangle(img, (46, 96), (194, 206), c, -1, LINE)
    cv2.rectangle(img, (46, 96), (194, 206), e, 2, LINE)
    poly(img, [(46, 96), (194, 96), (184, 150), (56, 150)], c, e)                      # flap
    cv2.circle(img, (120, 146), 6, (80, 170, 200), -1, LINE)


def scarf(img, c, e):
    poly(img, [(40, 40), (200, 40), (160, 120), (200, 200), (120, 170), (40, 200), (80, 120)], c, e)
    for i in range(0, 6):
        cv2.circle(img, (70 + i * 20, 80 + (i % 2) * 80), 8, e, 2, LINE)
    for x in range(44, 200, 8):
        cv2.line(img, (x, 200 if x < 120 else 200), (x - 2, 214), e, 1, LINE)


def hoops(img, c, e):
    for cx in (80, 160):
        cv2.circle(img, (cx, 36), 5, e, -1, LINE)
        cv2.circle(img, (cx, 120), 56, e, 12, LINE)
        cv2.circle(img, (cx, 120), 56, c, 8, LINE)


DRAW = {"TOP-0412": tank_top, "SHIRT-2207": shirt, "DRESS-0930": wrap_dress, "DRESS-0744": slip_dress,
        "BOT-1105": jeans, "SKIRT-0618": skirt, "SHOE-0301": heels, "SHOE-0315": sneakers, "MAKE-0101": lipstick,
        "MAKE-0120": palette, "ACC-0210": bag, "ACC-0233": scarf, "ACC-0250": hoops}


def draw(sku: str, hex_: str) -> np.ndarray:
    img = np.full((SIZE, SIZE, 3), BG, np.uint8)
    c = bgr(hex_)
    DRAW[sku](img, c, outline_of(c))
    return img


def main(out_dir: str | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from mirror.storage.catalogue import parse_csv
    out = Path(out_dir) if out_dir else ROOT / "config" / "catalog-images"
    out.mkdir(parents=True, exist_ok=True)
    for p in parse_csv((ROOT / "config" / "catalog.csv").read_bytes(), "config/catalog.csv"):
        if p.sku in DRAW and p.image:
            cv2.imwrite(str(out / p.image), draw(p.sku, p.colours[0].hex))
            print(out / p.image)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
