"""Push-to-frame: says on the bus when a staff push first reaches the glass.

The probe remembers the newest `suggestions.pushed` (its push_id and the
monotonic time the staff request arrived) and, after each composed frame,
asks the suggestions overlay what it drew. The first frame that shows a card
of that push publishes `suggestions.shown` with `shown_at`; `mirror
bench-staff` measures push-to-frame from it. A newer push replaces the one
waiting (its cards replace the carousel, so the older one is never shown).
"""

from __future__ import annotations

import time
from typing import Callable

from mirror.core.bus import Event, EventBus
from mirror.core.feature import Feature


class PushProbe(Feature):
    name = "push_probe"

    def __init__(self, bus: EventBus, drawn: Callable[[], tuple[str, str] | None]):
        """`drawn()`: the (push_id, sku) the last composed frame showed, or None."""
        self.bus = bus
        self.drawn = drawn
        self._waiting: tuple[str, float] | None = None      # push_id, t_sent
        bus.subscribe("suggestions.pushed", self._on_pushed)

    def _on_pushed(self, ev: Event) -> None:
        self._waiting = (str(ev.data["push_id"]), float(ev.data.get("t_sent") or 0.0))

    def on_composed(self, frame) -> None:
        if self._waiting is None:
            return
        shown = self.drawn()
        if shown is None or shown[0] != self._waiting[0]:
            return
        push_id, t_sent = self._waiting
        self._waiting = None
        self.bus.publish("suggestions.shown", push_id=push_id, sku=shown[1], t_sent=t_sent,
                         shown_at=time.monotonic())
