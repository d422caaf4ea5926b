"""The staff feature's control-socket commands (`mirror staff push`, `mirror bench-staff`).

* `staff.push` `{"skus": [...]}`: the same push as the console's
  `POST /staff/api/suggestions` (StaffFeature.push), audited as
  "control:<unix user>" (the socket names the caller, see mirror/app/control.py).
  Errors carry the HTTP status the API would answer with: 404 unknown SKU,
  409 nobody at the mirror, 400 bad input, 503 no carousel or no database.
* `staff.shown` `{"push_id"}`: when that push was sent and first composed on
  the mirror (`suggestions.shown`), both `time.monotonic()` in the kiosk: the
  bench on the same machine reads the same clock (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from typing import TYPE_CHECKING

from mirror.core.bus import Event

if TYPE_CHECKING:
    from mirror.staff.service import StaffFeature

PUSHES_KEPT = 256                        # push timings remembered for `staff.shown`
MAX_SKUS = 12                            # as the API (service.MAX_SUGGESTIONS)
MAX_SKU_LEN = 40


def _fail(status: int, error: str) -> dict:
    return {"ok": False, "status": status, "error": error}


class StaffCommands:
    def __init__(self, feature: "StaffFeature"):
        self.f = feature
        self.lock = threading.Lock()
        self.pushes: collections.OrderedDict[str, dict] = collections.OrderedDict()
        feature.bus.subscribe("suggestions.pushed", self._on_pushed)
        feature.bus.subscribe("suggestions.shown", self._on_shown)

    def commands(self) -> dict:
        return {"staff.push": self.push, "staff.shown": self.shown}

    # --- bus (main thread) -----------------------------------------------------------------
    def _on_pushed(self, ev: Event) -> None:
        with self.lock:
            self.pushes[str(ev.data["push_id"])] = {"t_sent": ev.data.get("t_sent"), "shown_at": None, "sku": ""}
            while len(self.pushes) > PUSHES_KEPT:
                self.pushes.popitem(last=False)

    def _on_shown(self, ev: Event) -> None:
        with self.lock:
            rec = self.pushes.get(str(ev.data["push_id"]))
            if rec is not None and rec["shown_at"] is None:
                rec.update(shown_at=ev.data["shown_at"], sku=ev.data["sku"])

    # --- commands (asyncio thread) --------------------------------------------------------------
    async def push(self, req: dict) -> dict:
        from mirror.staff.service import CardError
        from mirror.storage.catalogue import DatabaseError, UnknownProduct
        skus = req.get("skus")
        if (not isinstance(skus, list) or not 1 <= len(skus) <= MAX_SKUS
                or not all(isinstance(s, str) and 1 <= len(s.strip()) <= MAX_SKU_LEN for s in skus)):
            return _fail(400, f"expected \"skus\": a list of 1 to {MAX_SKUS} SKUs of 1 to {MAX_SKU_LEN} characters")
        who = f"control:{req.get('peer') or 'unknown'}"
        try:
            out = await self.f.push(who, [s.strip() for s in skus], None, deadline=req.get("deadline"))
        except CardError as e:
            return _fail(e.status, str(e))
        except UnknownProduct as e:
            return _fail(404, str(e))
        except (DatabaseError, sqlite3.Error) as e:
            return _fail(503, f"the staff database is unavailable: {e}")
        return {**out, "by": who}

    async def shown(self, req: dict) -> dict:
        push_id = req.get("push_id")
        with self.lock:
            rec = self.pushes.get(push_id) if isinstance(push_id, str) else None
            rec = dict(rec) if rec is not None else None
        if rec is None:
            return _fail(404, f"no recent push {str(push_id)[:40]!r}")
        return {"ok": True, "push_id": push_id, **rec}
