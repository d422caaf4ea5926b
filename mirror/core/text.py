"""Text from outside (a tag, a store's reply, a friend's name) made safe to show."""

from __future__ import annotations

import unicodedata


def without_controls(text: str) -> str:
    """`text` without control and format characters (Unicode category C: a NUL, an
    escape sequence, a line break, a bidi override), which a font refuses or draws as
    boxes, and a database row or a terminal should not obey."""
    return "".join(ch for ch in str(text) if unicodedata.category(ch)[0] != "C")


def printable(text: str) -> str:
    """`without_controls`, trimmed: for a value (an id, a status), not a laid-out line."""
    return without_controls(text).strip()
