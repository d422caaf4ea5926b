"""The kiosk's asyncio loop, on its own thread: the web host, the control
socket and the features' network I/O (the call's WebRTC peers) live here,
while the main thread composes frames."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any, Coroutine

log = logging.getLogger(__name__)


class AsyncThread:
    def __init__(self, name: str = "aio"):
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()
            self.loop.close()
        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(10)

    def submit(self, coro: Coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine, timeout: float = 10.0) -> Any:
        """Run a coroutine on the loop and wait for its result (from another thread)."""
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self._thread = None
