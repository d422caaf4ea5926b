"""The event bus: parts of the kiosk talk only through named notifications.

Any thread may `publish`; delivery happens on the thread that calls
`dispatch()` (the kiosk's main loop), so subscribers never race each other.
Every name and its payload are registered in `mirror/core/events.py`;
publishing an unknown name or a wrong payload raises at once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mirror.core import events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    name: str
    data: dict = field(default_factory=dict)
    ts: float = field(default_factory=time.monotonic)

    @property
    def payload(self) -> Any:
        """The typed payload (a dataclass from mirror.core.events)."""
        return events.payload(self.name, self.data)


Handler = Callable[[Event], None]


class EventBus:
    def __init__(self, max_pending: int = 10_000):
        self._lock = threading.Lock()
        self._pending: collections.deque[Event] = collections.deque(maxlen=max_pending)
        self._subs: dict[str, list[Handler]] = collections.defaultdict(list)
        self.history: collections.deque[Event] = collections.deque(maxlen=200)

    def subscribe(self, name: str, handler: Handler) -> None:
        """`name` is an exact event name, a prefix ending in '.*', or '*'."""
        with self._lock:
            self._subs[name].append(handler)

    def publish(self, name: str, /, **data) -> Event:
        ev = Event(name, events.as_dict(events.payload(name, data)))
        with self._lock:
            self._pending.append(ev)
        return ev

    def dispatch(self, limit: int = 1000) -> int:
        """Deliver pending events; returns how many were delivered."""
        n = 0
        while n < limit:
            with self._lock:
                if not self._pending:
                    break
                ev = self._pending.popleft()
                handlers = self._handlers_for(ev.name)
            self.history.append(ev)
            for h in handlers:
                try:
                    h(ev)
                except Exception:  # one faulty subscriber must not stop the kiosk
                    log.exception("handler for %s failed", ev.name)
            n += 1
        return n

    def _handlers_for(self, name: str) -> list[Handler]:
        out = list(self._subs.get(name, ()))
        parts = name.split(".")
        for i in range(1, len(parts)):
            out += self._subs.get(".".join(parts[:i]) + ".*", [])
        out += self._subs.get("*", [])
        return out
