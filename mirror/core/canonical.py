"""Canonical JSON: the one byte-stable encoding used for hashes and keys.

Sorted keys, no spaces, UTF-8 kept as is. Order idempotency keys and cart
hashes are computed from it, so changing it changes every key: don't.
"""

from __future__ import annotations

import json


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
