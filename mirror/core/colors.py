"""Colour parsing and naming: hex values, catalogue names and hue angles."""

from __future__ import annotations

import colorsys
import math
import re

import cv2
import numpy as np

# Names shown on the colour ring, and accepted on the command line.
NAMED = {
    "black": "#1b1b1b", "white": "#f4f4f2", "grey": "#8a8a8a", "gray": "#8a8a8a",
    "red": "#c8102e", "crimson": "#b0103a", "coral": "#f26c4f", "orange": "#f08a24",
    "amber": "#e0a100", "yellow": "#f2d43d", "olive": "#7a7a2e", "lime": "#8cc63f",
    "green": "#2e8b57", "emerald": "#1f9e6e", "teal": "#138a8a", "turquoise": "#30c0c0",
    "cyan": "#3cb4e6", "sky": "#6fb7e8", "blue": "#1f4fbf", "navy": "#1b2a57",
    "indigo": "#3b2d8f", "violet": "#7a3fb8", "purple": "#6b2c91", "magenta": "#c2279b",
    "pink": "#e87aa8", "rose": "#d94f70", "burgundy": "#6d1a2c", "brown": "#6b4226",
    "beige": "#d8c7a3", "cream": "#f0e6cc",
}

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_HUE = re.compile(r"^(?:hue:)?(-?\d+(?:\.\d+)?)(?:deg)?$")


class ColorError(ValueError):
    pass


MAX_COLOR_CHARS = 100      # the longest colour string accepted (catalogue names are short)
MAX_HUE = 1e6              # degrees; larger (or inf/nan) is a typo, not a colour


def _shown(value: str, limit: int = 40) -> str:
    """The value as it goes into an error message: quoted, escaped, at most `limit` characters."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def hex_to_bgr(value: str) -> tuple[int, int, int]:
    m = _HEX.match(value.strip())
    if not m:
        raise ColorError(f"{value!r} is not a colour; expected '#RRGGBB'")
    h = m.group(1)
    return int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)


def bgr_to_hex(bgr) -> str:
    b, g, r = (int(round(c)) for c in bgr)
    return f"#{r:02x}{g:02x}{b:02x}"


def hue_to_bgr(hue_deg: float, sat: float = 0.8, val: float = 0.85) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360) / 360.0, sat, val)
    return int(b * 255), int(g * 255), int(r * 255)


def parse_color(value: str, catalog_colors: dict[str, str] | None = None) -> tuple[int, int, int]:
    """'#RRGGBB', a catalogue colour name, a basic colour name, or a hue ('hue:120', '120deg')."""
    if not isinstance(value, str):
        raise ColorError(f"a colour must be text, got {type(value).__name__}; use '#RRGGBB', 'hue:120' or a name")
    v = value.strip()
    if len(v) > MAX_COLOR_CHARS:
        raise ColorError(f"colour {v[:40]!r}... is {len(v)} characters long; use '#RRGGBB', a hue like 'hue:120', "
                         "or a colour name")
    if _HEX.match(v) and (v.startswith("#") or not v.isdigit()):
        return hex_to_bgr(v)
    key = v.lower()
    for table in (catalog_colors or {}, NAMED):
        for name, hx in table.items():
            if name.lower() == key:
                return hex_to_bgr(hx)
    m = _HUE.match(key)
    if m:
        hue = float(m.group(1))
        if not math.isfinite(hue) or abs(hue) > MAX_HUE:
            raise ColorError(f"hue {_shown(m.group(1))} is out of range; use degrees from 0 to 360, "
                             "like 'hue:120'")
        return hue_to_bgr(hue)
    known = sorted(set(list((catalog_colors or {}).keys()) + list(NAMED)))
    raise ColorError(f"unknown colour {_shown(value)}; use '#RRGGBB', a hue like 'hue:120', "
                     f"or a name such as {', '.join(known[:8])} ...")


_NAME_LAB = None


def nearest_name(bgr) -> str:
    """The closest name in NAMED, measured in Lab."""
    global _NAME_LAB
    if _NAME_LAB is None:
        names = [n for n in NAMED if n != "gray"]
        arr = np.array([[hex_to_bgr(NAMED[n]) for n in names]], np.uint8)
        _NAME_LAB = names, cv2.cvtColor(arr, cv2.COLOR_BGR2Lab)[0].astype(np.float32)
    names, labs = _NAME_LAB
    lab = cv2.cvtColor(np.array([[bgr]], np.uint8), cv2.COLOR_BGR2Lab)[0, 0].astype(np.float32)
    return names[int(np.argmin(((labs - lab) ** 2).sum(1)))]
