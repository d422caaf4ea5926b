"""The seam every feature (the friend call, the checkout, the staff console)
plugs into the kiosk through.

A feature talks to the rest of the kiosk only through the bus it was built
with and the overlays it hands the compositor. The app calls, in order:

* `start(loop)` before the first frame; `loop` is the kiosk's asyncio loop
  (on its own thread), for a feature with network I/O;
* `before_frame(now)` on the main thread before each frame is composed: a
  feature refreshes its overlays' views here (it must be quick);
* `on_composed(frame)` with each finished picture (render's ComposedFrame);
* `stop()` on the way out.

It may also offer routes for the web host (`routes()`), commands for the
control socket (`commands()`) and a line of health (`status()`). The base
class gives no-op defaults, so a feature defines only what it uses.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

Command = Callable[[dict], Awaitable[dict]]


class Feature:
    name = "feature"

    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def stop(self) -> None:
        pass

    def overlays(self) -> list[Any]:
        """render.compositor.Overlay objects to draw on every frame."""
        return []

    def before_frame(self, now: float) -> None:
        pass

    def on_composed(self, frame: Any) -> None:
        pass

    def routes(self) -> dict[str, Any]:
        """Listener name ("public" or "staff") -> a fastapi.APIRouter."""
        return {}

    def commands(self) -> dict[str, Command]:
        """Control-socket command name -> async handler(request) -> reply."""
        return {}

    def status(self) -> dict:
        return {}
